"""Agents' outbound calls: the agent's INVITE (leg A, the call's customer leg) relayed to the called party
(leg B, `outbound_to`). Provisional responses are relayed, the far side's answer answers the agent, its
failure is mapped for the agent; and the toll-fraud guard."""

from __future__ import annotations

from . import flow
from .effects import AnswerCall, Bridge, Respond


def map_failure(status: int) -> int:
    """What the agent sees for the far side's final failure: no redirects followed, no auth passed back."""
    if 300 <= status < 400:
        return 480
    if status in (401, 407):
        return 403
    if status == 408 or status >= 700:
        return 480
    return status


def failure_for_event(event: str) -> int:
    """The agent's answer when the far side never answered (timeout) or could not be reached (error)."""
    return 480 if event == "timeout" else 503


class OutboundLimit:
    """At most `per_minute` calls per agent in any 60 s window: a stolen softphone password cannot be used to
    pump calls out. 0 is no cap. Each agent keeps only its last minute of call times."""

    WINDOW = 60.0

    def __init__(self) -> None:
        self._times: dict[str, list[float]] = {}

    def allow(self, agent_id: str, now: float, per_minute: int) -> bool:
        if not per_minute:
            return True
        times = [t for t in self._times.get(agent_id, ()) if t > now - self.WINDOW]
        if len(times) >= per_minute:
            self._times[agent_id] = times
            return False
        times.append(now)
        self._times[agent_id] = times
        return True


def far_side_provisional(call, status: int, body: bytes) -> list:
    """A 1xx from the far side: relayed to the agent above 100, with the far side's early media unless our
    engine anchors the agent's media (then the agent hears our session, not theirs)."""
    a, b = call.customer, call.outbound_to
    out = flow.provisional(b, status)
    if status > 100:
        out.append(Respond(a, status, body if a.stream is None else b"", provisional=True))
    return out


def far_side_answered(call, now: float, body: bytes) -> list:
    """The far side's 2xx (ACKed): anchored, its stream joins the agent's room and the agent gets our
    answer; else the agent gets the far side's session."""
    a, b = call.customer, call.outbound_to
    call.answered_at = now
    if a.stream is not None and b.stream is not None:
        return [Bridge(call, b, body), AnswerCall(a, call.answer_sdp)]
    return [AnswerCall(a, body)]


def far_side_failed(core, call, status: int, now: float, acd=None) -> list:
    call.outbound_to.fire("failed")
    return [Respond(call.customer, map_failure(status)), *core.end_call(call, f"far side {status}", now, acd)]


def far_side_unreachable(core, call, event: str, now: float, acd=None) -> list:
    """The far side never answered (timeout) or could not be reached (error)."""
    out = [Respond(call.customer, failure_for_event(event))] if call.customer.state == "init" else []
    call.outbound_to.fire("failed")
    return out + core.end_call(call, f"far side {event}", now, acd)


def caller_cancelled(core, call, now: float, acd=None) -> list:
    """The agent CANCELled before the far side answered: cancel the far side, end the call."""
    return [*flow.cancel(call.outbound_to), *core.end_call(call, "caller cancelled", now, acd)]
