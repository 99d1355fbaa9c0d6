"""Whether a new call is taken: a node that is stopping, or overloaded by any of its measures, answers 503
with a Retry-After (RFC 3261 s. 21.5.4) so callers and upstream proxies go elsewhere or come back later."""

from __future__ import annotations

from dataclasses import dataclass

# the measures a node can be overloaded by, in the order they are named (metrics label `reason`)
REASONS = ("max_calls", "loop_lag", "sip_busy", "resend_ratio", "backlog")
WARN_EVERY = 5.0                        # seconds between two warnings of refused calls


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
    causes: tuple[str, ...] = ()        # the measures past their ceiling (REASONS), for an overload


def causes(load: Load) -> tuple[str, ...]:
    """The measures of `load` past their ceilings; empty when the node takes calls."""
    over = (bool(load.max_calls and load.calls >= load.max_calls), load.loop_lag > load.max_loop_lag,
            load.busy > load.max_busy, load.resend_ratio > load.max_resend_ratio, load.backlog > load.max_backlog)
    return tuple(r for r, o in zip(REASONS, over) if o)


def overloaded(load: Load) -> bool:
    return bool(causes(load))


def admit(draining: bool, load: Load) -> Refusal | None:
    """None: take the call. Draining wins: a stopping node says so even when also loaded."""
    if draining:
        return Refusal(503, "Shutting down", 30, False)
    why = causes(load)
    if why:
        return Refusal(503, "Overloaded", 5, True, why)
    return None


class Watch:
    """The node's overload measures, smoothed over the watcher's ticks (one per 50 ms): a measure rises by a
    twentieth of the way to each sample (about a second of memory) and falls by nearly a third. One stall of
    a busy machine (a GC pass, the process descheduled for half a second) is one tick's sample and moves a
    measure by a twentieth of it; half a second of overload and more moves it most of the way; and once the
    node keeps up again, calls are taken again within a few ticks, not after a second of 503s to a node that
    has caught up (goodput past capacity)."""
    RISE, FALL = 0.05, 0.3

    def __init__(self) -> None:
        self.loop_lag = self.busy = self.resend_ratio = self.backlog = 0.0

    @classmethod
    def _smooth(cls, value: float, sample: float) -> float:
        return value + (sample - value) * (cls.RISE if sample > value else cls.FALL)

    def tick(self, every: float, dt: float, busy: float, resent: int, created: int, worst_age: float) -> None:
        """One tick of the watcher, `dt` seconds after the last (it asked for `every`): `busy` seconds spent
        handling SIP meanwhile, peers' requests `resent` and server transactions `created`, and the oldest
        message the overload policy saw while it shed (0 when it did not)."""
        smooth = self._smooth
        self.loop_lag = smooth(self.loop_lag, max(0.0, dt - every))
        self.busy = smooth(self.busy, min(1.0, busy / dt if dt > 0 else 0.0))
        self.resend_ratio = smooth(self.resend_ratio, min(1.0, resent / max(1, created)))
        self.backlog = smooth(self.backlog, worst_age)


class Refusals:
    """Calls refused for overload, counted per measure past its ceiling (a refusal counts under each of its
    causes), and when to say so: at most one warning per WARN_EVERY seconds, with the figures."""

    def __init__(self, every: float = WARN_EVERY) -> None:
        self.every = every
        self.by_reason = dict.fromkeys(REASONS, 0)
        self.since_warning = 0
        self.warned = float("-inf")

    def count(self, refusal: Refusal, load: Load, now: float) -> dict | None:
        """Count an overload refusal; the fields of a warning to log when one is due, else None."""
        for r in refusal.causes:
            self.by_reason[r] += 1
        self.since_warning += 1
        if now - self.warned < self.every:
            return None
        fields = {"refused": self.since_warning, "causes": list(refusal.causes), "calls": load.calls,
                  "max_calls": load.max_calls, "loop_lag_ms": round(load.loop_lag * 1000, 1),
                  "sip_busy": round(load.busy, 3), "resend_ratio": round(load.resend_ratio, 3),
                  "backlog_ms": round(load.backlog * 1000, 1)}
        self.warned, self.since_warning = now, 0
        return fields


def route_refusal(kind: str, status: int | None, reason: str | None, has_center: bool) -> tuple[int, str] | None:
    """The answer to a routing decision the node cannot take on: a rejected route (480 No agents unless the
    route says otherwise), a number that needs authentication with nothing to challenge with (403), or a
    queue or IVR on a node without queues. None: the call goes on."""
    if kind == "auth":
        return 403, "Forbidden"
    if kind == "reject" or (kind in ("queue", "ivr") and not has_center):
        return status or 480, reason or "No agents"
    return None
