"""Whether a new call is taken: a node that is stopping, or overloaded by any of its measures, answers 503
with a Retry-After (RFC 3261 s. 21.5.4) so callers and upstream proxies go elsewhere or come back later."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Load:
    """The node's measures (set by the node from its loop and transport), and their ceilings."""
    calls: int = 0
    max_calls: int = 0                  # 0: no limit
    loop_lag: float = 0.0
    max_loop_lag: float = 0.1
    busy: float = 0.0
    max_busy: float = 0.95
    resend_ratio: float = 0.0
    max_resend_ratio: float = 0.1
    backlog: float = 0.0
    max_backlog: float = 0.1


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    retry_after: int
    overloaded: bool


def overloaded(load: Load) -> bool:
    return (bool(load.max_calls and load.calls >= load.max_calls) or load.loop_lag > load.max_loop_lag
            or load.busy > load.max_busy or load.resend_ratio > load.max_resend_ratio
            or load.backlog > load.max_backlog)


def admit(draining: bool, load: Load) -> Refusal | None:
    """None: take the call. Draining wins: a stopping node says so even when also loaded."""
    if draining:
        return Refusal(503, "Shutting down", 30, False)
    if overloaded(load):
        return Refusal(503, "Overloaded", 5, True)
    return None


def route_refusal(kind: str, status: int | None, reason: str | None, has_center: bool) -> tuple[int, str] | None:
    """The answer to a routing decision the node cannot take on: a rejected route (480 No agents unless the
    route says otherwise), a number that needs authentication with nothing to challenge with (403), or a
    queue or IVR on a node without queues. None: the call goes on."""
    if kind == "auth":
        return 403, "Forbidden"
    if kind == "reject" or (kind in ("queue", "ivr") and not has_center):
        return status or 480, reason or "No agents"
    return None
