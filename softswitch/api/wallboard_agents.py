"""The wallboard's agents panel as a bounded answer: per-state counts of the tenant and one page of agents,
filtered by queue, state and a search text (name, agent id or phone), sorted by name or by time in state.

The page asks for what it shows (`limit` rows at most); the counts come from the ACD's per-state and per-queue
index (acd/roster.py), kept current on every change, so a query never rebuilds them. A query walks the agents
in a cached name order, or only a state's or a queue's agents when one is asked for.
"""

from __future__ import annotations

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
    if not raw.isdigit() or len(raw) > 9:
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
        self.text: dict[str, str] = {}

    def refresh(self, acd, config) -> None:
        key = (config, acd, len(acd.agents))
        if len(self._for) == 3 and all(x is y for x, y in zip(key[:2], self._for[:2])) and key[2] == self._for[2]:
            return
        names = {}
        for agent_id in acd.agents:
            conf = config.agent(agent_id) if config is not None else None
            emp = config.employee(conf.account) if conf is not None else None
            names[agent_id] = emp.name if emp is not None else ""
        self.ids = sorted(acd.agents, key=lambda i: (names[i].lower() or "\uffff", _natural(i)))
        self.rank = {i: n for n, i in enumerate(self.ids)}
        self.names = names
        self.text = {i: f"{names[i]} {i} {acd.agents[i].softphone}".lower() for i in self.ids}
        self._for = key


def _natural(agent_id: str) -> tuple:
    return (len(agent_id), agent_id) if agent_id.isdigit() else (1 << 30, agent_id)


def _candidates(acd, order: NameOrder, q: AgentQuery) -> list[str]:
    """The agent ids that may match, in the asked order, walking the smallest index that applies."""
    pools = []
    if q.state and q.state != "signed_in":
        pools.append(acd.roster.by_state.get(q.state, {}))
    if q.queue:
        pools.append(acd.roster.members.get(q.queue, {}))
    if q.sort == "time":
        pool = min(pools, key=len) if pools else acd.agents
        return sorted(pool, key=lambda i: (acd.agents[i].since, order.rank.get(i, 0)))
    if not pools:
        return order.ids
    pool = min(pools, key=len)
    if len(pool) * 8 < len(order.ids):         # few: sort them; many: walk the name order and filter
        return sorted(pool, key=lambda i: order.rank.get(i, 0))
    return [i for i in order.ids if i in pool]


def agent_page(acd, config, order: NameOrder, q: AgentQuery) -> dict:
    """{counts, total (matching), offset, limit, agents: the page's rows}."""
    order.refresh(acd, config)
    agents = acd.agents
    want_state = q.state
    matches = 0
    rows = []
    for agent_id in _candidates(acd, order, q):
        a = agents.get(agent_id)
        if a is None:
            continue
        if want_state and (a.state == "offline" if want_state == "signed_in" else a.state != want_state):
            continue
        if q.queue and q.queue not in a.queues:
            continue
        if q.search and q.search not in order.text.get(agent_id, ""):
            continue
        if q.offset <= matches < q.offset + q.limit:
            v = acd.agent_view(agent_id)
            v["name"] = order.names.get(agent_id, "")
            v["reason_text"] = reason_words(v["state"], v["reason"])
            v.pop("call_id", None)
            rows.append(v)
        matches += 1
    return {"counts": state_counts(acd), "total": matches, "offset": q.offset, "limit": q.limit,
            "query": {"queue": q.queue, "state": q.state, "q": q.search, "sort": q.sort}, "agents": rows}
