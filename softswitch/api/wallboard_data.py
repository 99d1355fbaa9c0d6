"""What the wallboard shows, as JSON: queues with their goals and thresholds, agents by name with their reasons in
words, and the calls waiting and talking with their times. Pure functions of the node's state; only
`call_rows` reads the call-control side's Call objects (read-only)."""

from __future__ import annotations

import heapq
import re
from operator import itemgetter

from acd.agent_state import STATES

from ..records.export import caller_parts

MAX_CALL_ROWS = 100         # calls listed per table: the longest waits and talks (totals say how many in all)

# Reasons the ACD and call control record, in the words a supervisor reads. Anything else is an agent's own
# reason ("lunch") and is shown as given.
REASONS = {
    "signed in": "signed in",
    "signed out": "signed out",
    "softphone unregistered": "phone not registered",
    "answered": "on a call",
    "outbound call": "outbound call",
    "wrap-up": "after-call work",
    "wrap-up over": "ready after call work",
    "call ended": "ready, call ended",
    "no_answer": "missed a call (no answer)",
    "declined": "declined a call",
    "caller hung up": "ready, caller hung up while ringing",
    "answered elsewhere": "ready, another agent answered",
    "reserved by another node": "ready, call taken at another node",
    "max_wait": "ready, caller's wait ran out",
    "max_calls": "ready, queue full",
    "no_agents": "ready",
    "overflow_loop": "ready",
}
DEFAULT_BY_STATE = {"offline": "not signed in", "idle": "ready", "ringing": "offered a call", "talking": "on a call",
                    "busy": "not ready", "rest": "on a break", "wrap_up": "after-call work"}
_EVENT = re.compile(r"set_(idle|busy|rest)")       # the state table's event names: never for reading


def reason_words(state: str, reason: str) -> str:
    reason = (reason or "").strip()
    # an offer is marked "call <call id>": the id says nothing to a supervisor
    if not reason or _EVENT.fullmatch(reason) or (state == "ringing" and reason.startswith("call ")):
        return DEFAULT_BY_STATE.get(state, "")
    return REASONS.get(reason, reason)


def caller_of(remote_uri: str) -> dict:
    """The number and display name in a From value: `"Ann" <sip:5550100@x>` -> {number: 5550100, name: Ann}."""
    number, name, _ = caller_parts((remote_uri or "")[:1024])
    return {"number": number[:64], "name": name[:64]}


def _row(c, now: float) -> dict:
    cust = getattr(c, "customer", None)
    dialog = getattr(cust, "dialog", None)
    return {"id": c.id, "queue": c.queue or "", "caller": caller_of(getattr(dialog, "remote_uri", "")),
            "started": c.started, "video": bool(getattr(c, "video", False)),
            "transferred": len(getattr(c, "transfers", None) or ()),
            "consulting": getattr(getattr(c, "consult", None), "mode", None)}


def call_lists(cc, acd, now: float, limit: int | None = None) -> tuple[list[dict], list[dict], dict]:
    """(waiting, active, totals): the customers' calls waiting in a queue, longest wait first, and the calls
    connected to an agent, longest talk first, at most `limit` of each, and how many there are of each. One cheap
    pass sorts the calls; rows (the caller parsed from the From header) are made for the listed ones only."""
    waiting, active = [], []
    entries = acd.entries
    for c in cc.calls.values():             # plain attribute reads: this pass sees every call
        if c.ended:
            continue
        entry = entries.get(c.id)
        if entry is not None:
            waiting.append((entry.first_enqueued or entry.enqueued_at, c.id, c, entry))
        elif c.answered_at and c.agent_leg is not None:
            active.append((c.answered_at, c.id, c))
    totals = {"waiting": len(waiting), "active": len(active)}
    first = (lambda items: heapq.nsmallest(limit, items, key=itemgetter(0, 1))) if limit is not None else \
        (lambda items: sorted(items, key=itemgetter(0, 1)))
    waiting_rows, active_rows = [], []
    for since, _, c, entry in first(waiting):
        row = _row(c, now)
        row.update(waiting_since=since, wait=round(now - since, 3), ringing=sorted(entry.ringing))
        waiting_rows.append(row)
    for answered_at, _, c in first(active):
        sup = getattr(c, "supervisor", None)
        row = _row(c, now)
        row.update(agent_id=c.agent_leg.agent_id, answered_at=answered_at, talk=round(now - answered_at, 3),
                   wait=round(answered_at - c.started, 3), outbound=getattr(c, "outbound_to", None) is not None,
                   supervisor_mode=getattr(c, "supervisor_mode", "") or None,
                   supervisor=None if sup is None else ("connected" if sup.state == "confirmed" else "calling"))
        active_rows.append(row)
    return waiting_rows, active_rows, totals


def call_rows(cc, acd, now: float) -> tuple[list[dict], list[dict]]:
    """(waiting, active): every waiting call and every call connected to an agent (see call_lists)."""
    waiting, active, _ = call_lists(cc, acd, now)
    return waiting, active


def agent_names(config, agent_ids) -> dict[str, str]:
    """The names of the given agents (the calls' agents: a few, never the tenant)."""
    out = {}
    for agent_id in agent_ids:
        conf = config.agent(agent_id) if config is not None else None
        emp = config.employee(conf.account) if conf is not None else None
        out[agent_id] = emp.name if emp is not None else ""
    return out


def queue_rows(acd, config) -> list[dict]:
    out = []
    for name in acd.queues:
        v = acd.queue_view(name)
        q = config.queue(name) if config is not None else None
        if q is not None:
            v["thresholds"] = config.wallboard.resolve(q)
        out.append(v)
    return out


def shared_board(node, supervisor: bool, now: float, calls: tuple | None = None) -> dict:
    """The part of the board every viewer of a scope sees alike: queues, the tenant's agents per state, the calls
    (the longest waiting and longest talking first, at most `max_calls` of each, with their totals), chat and
    trunks. Callers' numbers for supervisors only. The agent list is asked for apart (wallboard_agents.py).
    `calls`: call_lists' answer when already made for the other scope (it is not changed here)."""
    center, config = node.center, node.config
    waiting, active, totals = calls or call_lists(node.calls, center.acd, now, MAX_CALL_ROWS)
    waiting, active = [dict(r) for r in waiting], [dict(r) for r in active]
    names = agent_names(config, {r["agent_id"] for r in active} | {i for r in waiting for i in r["ringing"]})
    for row in active:
        row["agent_name"] = names.get(row["agent_id"], "")
    for row in waiting:
        row["ringing_names"] = [names.get(i) or i for i in row["ringing"]]
    if not supervisor:
        for row in waiting + active:
            row.pop("caller", None)
    try:
        node_id = node.options.registrar.node_id
    except AttributeError:
        node_id = None
    return {"now": now, "node_id": node_id, "queues": queue_rows(center.acd, config),
            "agent_counts": state_counts(center.acd),
            "calls": {"waiting": waiting, "active": active, "totals": totals},
            "chat": node.chat.kpis() if getattr(node, "chat", None) is not None else None,
            "trunks": trunk_rows(getattr(node, "trunks", None))}


def viewer(config, role: str, account: str) -> dict:
    """What the board says about the one who looks at it."""
    supervisor = role in ("supervisor", "admin")
    me = config.agent_of_account(account) if config is not None and supervisor else None
    emp = config.employee(account) if config is not None else None
    return {"account": account, "name": emp.name if emp is not None else "", "role": role,
            "can_supervise": supervisor, "supervisor_phone": me.softphone if me is not None else None}


def board(node, role: str, account: str, now: float) -> dict:
    """The board for one signed-in account (the shared part and the viewer's)."""
    return {**viewer(node.config, role, account), **shared_board(node, role in ("supervisor", "admin"), now)}


def state_counts(acd) -> dict:
    """Agents of the tenant in each state, and in all (from the ACD's index: no walk over the agents)."""
    by_state = acd.roster.by_state
    counts = {s: len(by_state.get(s, ())) for s in STATES}
    return {"total": len(acd.agents), "signed_in": len(acd.agents) - counts["offline"], "by_state": counts}


def trunk_rows(trunks) -> list[dict]:
    """Each trunk's state (up, down by OPTIONS, or unknown when not pinged), its registration, its calls in
    progress (in and out) and its failed outbound attempts."""
    return trunks.view() if trunks is not None else []
