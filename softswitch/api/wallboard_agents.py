"""The wallboard's agents panel as a bounded answer: per-state counts of the tenant and one page of agents,
filtered by queue, state and a search text (name, agent id or phone), sorted by name or by time in state.

The page asks for what it shows (`limit` rows at most); the counts come from the ACD's per-state and per-queue
index (acd/roster.py), kept current on every change, so a query never rebuilds them, and a page looks at the
agents up to its end only: in a name order made once per config, or a state's agents in the order they entered
it (longest in state first). Only a search text looks at every agent's cached text (one substring test each).
"""

from __future__ import annotations

import heapq
import itertools
import re
from dataclasses import dataclass

from acd.agent_state import STATES

from .wallboard_data import reason_words, state_counts

MAX_LIMIT = 200
MAX_SEARCH = 64
SORTS = ("name", "time")
STATE_FILTERS = (*STATES, "signed_in")          # signed_in: any state but offline


class QueryError(ValueError):
    """A query the panel cannot answer (the API says 400 with this text)."""


@dataclass(frozen=True)
class AgentQuery:
    queue: str = ""
    state: str = ""
    search: str = ""
    sort: str = "name"
    offset: int = 0
    limit: int = 50


def _int(raw: str, name: str, low: int, high: int) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise QueryError(f"{name} must be a whole number from {low} to {high}")
    n = int(raw)
    if not low <= n <= high:
        raise QueryError(f"{name} must be a whole number from {low} to {high}")
    return n


def parse_query(params, queues) -> AgentQuery:
    """The query string's queue, state, q (search), sort, offset and limit, checked."""
    queue = params.get("queue", "")
    if queue and queue not in queues:
        raise QueryError(f"no skill queue {queue[:64]!r}")
    state = params.get("state", "")
    if state and state not in STATE_FILTERS:
        raise QueryError("state must be one of " + ", ".join(STATE_FILTERS))
    search = params.get("q", "")
    if len(search) > MAX_SEARCH:
        raise QueryError(f"q is longer than {MAX_SEARCH} characters")
    sort = params.get("sort", "name")
    if sort not in SORTS:
        raise QueryError("sort must be name or time")
    offset = _int(params.get("offset", "0"), "offset", 0, 10_000_000)
    limit = _int(params.get("limit", "50"), "limit", 1, MAX_LIMIT)
    return AgentQuery(queue, state, " ".join(search.lower().split()), sort, offset, limit)


class NameOrder:
    """The tenant's agents sorted by name then id, with the text a search matches: built once per config
    (a reload makes a new one) and per set of agents, not per query."""

    def __init__(self) -> None:
        self._for: tuple = ()
        self.ids: list[str] = []
        self.rank: dict[str, int] = {}
        self.names: dict[str, str] = {}
        self.texts: list[str] = []          # in the order of ids

    def refresh(self, acd, config) -> None:
        key = (config, acd, len(acd.agents))
        if len(self._for) == 3 and self._for[0] is config and self._for[1] is acd and self._for[2] == key[2]:
            return
        names = {}
        if config is not None:
            by_id = {a.id: a.account for a in config.agents}
            employees = {e.account: e.name for e in config.employees}
            names = {i: employees.get(by_id.get(i, ""), "") for i in acd.agents}
        keyed = sorted((_natural(names.get(i, "")), len(i), i) for i in acd.agents)
        self.ids = [k[2] for k in keyed]
        self.rank = {i: n for n, i in enumerate(self.ids)}
        self.names = names
        agents = acd.agents
        self.texts = [f"{names.get(i, '')} {i} {agents[i].softphone}".lower() for i in self.ids]
        self._for = key


_DIGITS = re.compile(r"\d+")


def _pad(m: re.Match) -> str:
    return m.group().zfill(20)


def _natural(text: str) -> str:
    """Sort key that reads numbers as numbers: "Agent 2" before "Agent 10" (digit runs padded); empty last."""
    return _DIGITS.sub(_pad, text.lower()) if text else "\uffff"


NOT_OFFLINE = tuple(s for s in STATES if s != "offline")


def _total(acd, q: AgentQuery) -> int:
    """How many agents match a query without a search text, from the ACD's counts."""
    roster = acd.roster
    if q.queue:
        counts = roster.counts.get(q.queue, {})
        if q.state == "signed_in":
            return len(roster.members.get(q.queue, ())) - counts.get("offline", 0)
        return counts.get(q.state, 0) if q.state else len(roster.members.get(q.queue, ()))
    if q.state == "signed_in":
        return len(acd.agents) - len(roster.by_state.get("offline", ()))
    return len(roster.by_state.get(q.state, ())) if q.state else len(acd.agents)


def _matches(acd, q: AgentQuery):
    """The test an agent passes for the query's queue and state (None: every agent passes)."""
    members = acd.roster.members.get(q.queue, {}) if q.queue else None
    state = q.state
    if not state:
        return None if members is None else (lambda a: a.id in members)
    if state == "signed_in":
        return (lambda a: a.state != "offline") if members is None else \
            (lambda a: a.state != "offline" and a.id in members)
    return (lambda a: a.state == state) if members is None else (lambda a: a.state == state and a.id in members)


def _by_name(acd, order: NameOrder, q: AgentQuery):
    """The matching agents in name order, lazily. A small index (a rare state, a small queue) is sorted; a
    large one is found by walking the name order, which stops once the page is full."""
    agents, roster = acd.agents, acd.roster
    test = _matches(acd, q)
    if test is None:
        return (agents[i] for i in order.ids if i in agents)
    if q.state == "signed_in":
        pool = [i for s in NOT_OFFLINE for i in roster.by_state.get(s, ())]
    elif q.state:
        pool = roster.by_state.get(q.state, {})
    else:
        pool = roster.members.get(q.queue, {})
    if len(pool) * 8 < len(order.ids):
        rank = order.rank
        return (a for a in (agents[i] for i in sorted(pool, key=lambda i: rank.get(i, 1 << 30))) if test(a))
    return (a for a in (agents.get(i) for i in order.ids) if a is not None and test(a))


def _by_time(acd, q: AgentQuery):
    """The matching agents, longest in their state first, lazily: each state's index is kept in the order its
    agents entered it, so the states' lists are merged, not sorted."""
    states = (q.state,) if q.state and q.state != "signed_in" else NOT_OFFLINE if q.state else STATES
    by_state = acd.roster.by_state
    merged = heapq.merge(*(by_state.get(s, {}).values() for s in states), key=lambda a: a.since)
    members = acd.roster.members.get(q.queue, {}) if q.queue else None
    return merged if members is None else (a for a in merged if a.id in members)


def _searched(acd, order: NameOrder, q: AgentQuery) -> list:
    """The agents whose name, id or phone holds the search text, in the asked order, filtered (all of them:
    the total is theirs)."""
    text = q.search
    agents = acd.agents
    hits = [agents[i] for i, t in zip(order.ids, order.texts) if text in t and i in agents]
    test = _matches(acd, q)
    if test is not None:
        hits = [a for a in hits if test(a)]
    if q.sort == "time":
        hits.sort(key=lambda a: a.since)
    return hits


def agent_page(acd, config, order: NameOrder, q: AgentQuery) -> dict:
    """{counts, total (matching), offset, limit, agents: the page's rows}. Without a search text the total
    comes from the counts and only the agents up to the page's end are looked at."""
    order.refresh(acd, config)
    if q.search:
        found = _searched(acd, order, q)
        total, page = len(found), found[q.offset:q.offset + q.limit]
    else:
        total = _total(acd, q)
        if q.sort == "name" and not q.queue and not q.state:
            page = [acd.agents[i] for i in order.ids[q.offset:q.offset + q.limit] if i in acd.agents]
        else:
            walk = _by_time(acd, q) if q.sort == "time" else _by_name(acd, order, q)
            page = list(itertools.islice(walk, q.offset, q.offset + q.limit))
    rows = []
    for a in page:
        v = acd.agent_view(a.id)
        v["name"] = order.names.get(a.id, "")
        v["reason_text"] = reason_words(v["state"], v["reason"])
        v.pop("call_id", None)
        rows.append(v)
    return {"counts": state_counts(acd), "total": total, "offset": q.offset, "limit": q.limit,
            "query": {"queue": q.queue, "state": q.state, "q": q.search, "sort": q.sort}, "agents": rows}
