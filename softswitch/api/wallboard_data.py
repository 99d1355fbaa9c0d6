"""What the wallboard shows, as JSON: queues with their goals and thresholds, agents by name with their reasons in
words, and the calls waiting and talking with their times. Pure functions of the node's state; only
`call_rows` reads the call-control side's Call objects (read-only)."""

from __future__ import annotations

import re

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


def call_rows(cc, acd, now: float) -> tuple[list[dict], list[dict]]:
    """(waiting, active): customers' calls in a queue waiting for an agent, and calls connected to an agent."""
    waiting, active = [], []
    for c in list(cc.calls.values()):
        if getattr(c, "ended", False):
            continue
        cust = getattr(c, "customer", None)
        dialog = getattr(cust, "dialog", None)
        row = {"id": c.id, "queue": c.queue or "", "caller": caller_of(getattr(dialog, "remote_uri", "")),
               "started": c.started, "video": bool(getattr(c, "video", False)),
               "transferred": len(getattr(c, "transfers", None) or ()),
               "consulting": getattr(getattr(c, "consult", None), "mode", None)}
        entry = acd.entries.get(c.id)
        leg = getattr(c, "agent_leg", None)
        if entry is not None:
            since = entry.first_enqueued or entry.enqueued_at
            row.update(waiting_since=since, wait=round(now - since, 3), ringing=sorted(entry.ringing))
            waiting.append(row)
        elif leg is not None and getattr(c, "answered_at", 0):
            sup = getattr(c, "supervisor", None)
            row.update(agent_id=leg.agent_id, answered_at=c.answered_at, talk=round(now - c.answered_at, 3),
                       wait=round(c.answered_at - c.started, 3), outbound=getattr(c, "outbound_to", None) is not None,
                       supervisor_mode=getattr(c, "supervisor_mode", "") or None,
                       supervisor=None if sup is None else ("connected" if sup.state == "confirmed" else "calling"))
            active.append(row)
    waiting.sort(key=lambda r: r["waiting_since"])
    active.sort(key=lambda r: r["answered_at"])
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


def shared_board(node, supervisor: bool, now: float, max_calls: int = MAX_CALL_ROWS) -> dict:
    """The part of the board every viewer of a scope sees alike: queues, the tenant's agents per state, the calls
    (the longest waiting and longest talking first, at most `max_calls` of each, with their totals), chat and
    trunks. Callers' numbers for supervisors only. The agent list is asked for apart (wallboard_agents.py)."""
    center, config = node.center, node.config
    waiting, active = call_rows(node.calls, center.acd, now)
    totals = {"waiting": len(waiting), "active": len(active)}
    waiting, active = waiting[:max_calls], active[:max_calls]
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
