"""Consults and attended transfers in the ACD: a second agent occupied by a consult, and a call handed from one
agent to another (the first to wrap-up as at any end, the second talking on it). Functions of an Acd, run
through call control like its methods."""

from __future__ import annotations

from .engine import Acd, Event


def begin_consult(acd: Acd, agent_id: str, other: str, key: str) -> list:
    """`agent_id` consults `other`: the other agent is occupied (talking, under `key`) until the consult ends or
    the call becomes theirs; `agent_id` is flagged as consulting. Refused (AgentStateError) unless `other` is
    free for a call."""
    out = acd.outbound(other, key)
    acd.consulting[agent_id] = key
    return out


def _unflag(acd: Acd, key: str) -> None:
    for agent_id in [a for a, k in acd.consulting.items() if k == key]:
        del acd.consulting[agent_id]


def consult_over(acd: Acd, key: str) -> list:
    """The consult ended without a hand-over: the consulted agent goes on as after any call."""
    _unflag(acd, key)
    return acd.call_ended(key)


def take_over(acd: Acd, call_id: str, agent_id: str, key: str = "") -> list:
    """The call is `agent_id`'s now (an attended transfer completed, or the first agent left a conference):
    a `transfer` line, the first agent to wrap-up, the second talking on the call in its queue."""
    now = acd.clock()
    _unflag(acd, key)
    b = acd.agent(agent_id)
    acd.talking.pop(key, None)
    item = acd.talking.get(call_id)
    queue = item[1] if item else ""
    arrival = acd.arrivals.get(call_id)
    out: list = []
    if item is not None:
        acd._emit(Event(now, "transfer", queue, call_id, item[0], old=queue, new=f"agent/{agent_id}",
                        reason="attended"))
        out = acd.call_ended(call_id)
    if b.state != "talking":
        out += acd.outbound(agent_id, call_id)
    acd.talking[call_id] = (agent_id, queue, now)
    if arrival is not None:
        acd.arrivals[call_id] = arrival
    b.call_id = call_id
    return out
