"""The call detail record written when a call ends: one row, computed from the call and `now`."""

from __future__ import annotations


def outcome(call, acd_state: str | None, acd_outcome: str | None) -> str:
    """How the call went, as the ACD will have it once told of the end: a call still waiting in the queue is
    abandoned by its end; one connected or already out of the queue keeps the outcome the ACD gave it.
    acd_state: "talking", "waiting" or None (the ACD does not know the call)."""
    if call.transfers and call.transfers[-1]["kind"] == "replaced":
        return "transferred"          # a consult call whose far side was joined to a customer's call
    if call.outbound_to is not None:
        if call.to_agent:             # a customer's call to the agent's own number: no queue
            return "answered" if call.answered_at else "failed"
        return "outbound"
    if acd_state == "waiting":
        return "abandoned"
    return acd_outcome or ("abandoned" if call.queue else "failed")


def cdr_row(call, *, node: str, reason: str, outcome: str, now: float, caller: str) -> dict:
    connected = call.answered_at or None
    agent = call.agent_leg.agent_id if call.agent_leg is not None else call.customer.agent_id
    extra = {"extra": {"transfers": list(call.transfers)}} if getattr(call, "transfers", None) else {}
    return {**extra, "call_id": call.id, "node": node, "caller": caller, "called": call.number, "queue": call.queue,
            "agent_id": agent, "started_at": call.started, "answered_at": call.started,
            "connected_at": connected, "ended_at": now,
            "wait_s": round((connected or now) - call.started, 3),
            "talk_s": round(now - connected, 3) if connected else 0.0, "outcome": outcome,
            "end_reason": reason, "recording": getattr(call.recording, "path", None)}


def with_queue_timing(row: dict, wait: float | None, talk: float | None) -> dict:
    """The row with wait and talk as the call's queue-log rows have them (README "Records"): wait summed over
    the queues the call went through (None when it entered none), talk from the agent's answer; a call no
    queue handed over (an agent's outbound call) keeps the talk counted from its own answer."""
    out = dict(row, wait_s=None if wait is None else round(wait, 3))
    if talk is not None:
        out["talk_s"] = round(talk, 3)
    return out
