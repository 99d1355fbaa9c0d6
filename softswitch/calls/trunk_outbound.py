"""One outbound call over the trunks, as call control decides it: which trunk to send the INVITE to, when to
answer the trunk's digest challenge, when to give up on a trunk and try the next, and what the caller is told
when no trunk is left.

The trunk walk itself (dial plan order, trunks down or at their cap skipped, which answers fail over) is
trunks/outbound.py's OutboundCall; this adds the time and the challenges. A trunk that has sent no response
at all (not even 100 Trying) `attempt_timeout` seconds after the INVITE (the dial plan's, 4 s by default)
counts as a timeout and the next trunk is tried (an INVITE transaction's own 32 s would leave the caller in
silence); once a trunk has answered anything, only its final answer counts. Pure: `now` comes in, effects go out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..trunks.register import digest_answer, pick_challenge
from .effects import Respond

ATTEMPT_TIMEOUT = 4.0


@dataclass(frozen=True)
class Place:
    """Send a new INVITE for this attempt (trunks/outbound.Attempt) on a new leg."""
    attempt: object


@dataclass(frozen=True)
class Authenticate:
    """Send the current attempt's INVITE again with credentials (`header`: Authorization or
    Proxy-Authorization)."""
    header: str
    value: str


@dataclass(frozen=True)
class ArmAttempt:
    """Call `timer(now)` at `at` (one timer per call; arming again replaces it)."""
    at: float


@dataclass(frozen=True)
class Abandon:
    """Give up the current attempt's leg (CANCEL it once it can be cancelled)."""


@dataclass(frozen=True)
class TrunkFailed:
    """A trunk's attempt failed (counted per trunk): `outcome` a status, "timeout" or "network_error"."""
    trunk: str
    outcome: object


@dataclass(frozen=True)
class GiveUp:
    """No trunk answered: the caller is refused with this status and reason."""
    status: int
    reason: str


def final_status(tried: list, skipped: list) -> tuple[int, str]:
    """What the caller hears when the walk ends without an answer.

    No trunk could even be tried (all down or at their cap): 503. The last trunk's own final answer when it
    is one that does not fail over (busy, wrong number, declined), mapped as any far side's. Else (every
    trunk timed out or failed): 503 when they failed, 480 when the last one timed out."""
    if not tried:
        why = "All trunks down or at their call limit" if skipped else "No trunk for this number"
        return 503, why
    trunk, outcome = tried[-1]
    if outcome == "timeout":
        return 480, f"No answer from trunk {trunk}"
    if outcome == "network_error":
        return 503, f"Trunk {trunk} unreachable"
    if 300 <= outcome < 400 or outcome in (401, 407):
        return (403 if outcome in (401, 407) else 480), f"Trunk {trunk} refused the call ({outcome})"
    if outcome == 408 or outcome >= 500:
        return 503, f"All trunks failed (last: {trunk} {outcome})"
    return outcome, f"Refused by the far side ({outcome})"


class TrunkDial:
    """The decisions of one call's walk over its trunks. `walk`: a trunks.outbound.OutboundCall."""

    def __init__(self, walk, *, attempt_timeout: float = ATTEMPT_TIMEOUT,
                 cnonce: Callable[[], str] = lambda: "0a4f113b") -> None:
        self.walk = walk
        self.attempt_timeout = attempt_timeout
        self.cnonce = cnonce
        self.attempt = None           # the trunks.outbound.Attempt in progress
        self.heard = False            # the current attempt has had some response
        self.authenticated = False    # credentials already sent for the current attempt
        self.nc = 0
        self.answered = False
        self.done = False

    @property
    def trunk(self) -> str | None:
        return self.attempt.trunk if self.attempt is not None else None

    def start(self, now: float) -> list:
        return self._go(self.walk.first(), now, [])

    def provisional(self, status: int, now: float) -> list:
        self.heard = True
        return []

    def final(self, status: int, now: float, challenges: list[str] = (), proxy: bool = False,
              method: str = "INVITE") -> list:
        """The current attempt's final answer (2xx: answered, the walk is over)."""
        if self.done:
            return []
        self.heard = True
        if 200 <= status < 300:
            self.answered = self.done = True
            self.walk.result(status)
            return []
        if status in (401, 407) and not self.authenticated and self.attempt.auth is not None:
            value = self._answer(challenges, method)
            if value is not None:
                self.authenticated, self.heard = True, False
                return [Authenticate("Proxy-Authorization" if proxy else "Authorization", value),
                        ArmAttempt(now + self.attempt_timeout)]
        return self._failed(status, now)

    def unreachable(self, event: str, now: float) -> list:
        """The transaction timed out ("timeout") or the trunk could not be reached ("error")."""
        if self.done:
            return []
        return self._failed("timeout" if event == "timeout" else "network_error", now)

    def timer(self, now: float) -> list:
        """The attempt timer: a trunk silent since the INVITE is given up for the next."""
        if self.done or self.heard or self.attempt is None:
            return []
        return [Abandon(), *self._failed("timeout", now)]

    def stop(self) -> None:
        """The caller gave up (or the call ended): nothing more is decided."""
        self.done = True

    def _failed(self, outcome, now: float) -> list:
        out = [TrunkFailed(self.attempt.trunk, outcome)]
        return self._go(self.walk.result(outcome), now, out)

    def _go(self, attempt, now: float, out: list) -> list:
        if attempt is None:
            self.attempt, self.done = None, True
            tried, skipped = self.walk.walk.tried, self.walk.walk.skipped
            return out + [GiveUp(*final_status(tried, skipped))]
        self.attempt, self.heard, self.authenticated, self.nc = attempt, False, False, 0
        return out + [Place(attempt), ArmAttempt(now + self.attempt_timeout)]

    def _answer(self, challenges, method: str) -> str | None:
        secret = self.attempt.auth
        p = pick_challenge(challenges, secret.password, secret.ha1, secret.realm)
        if p is None:
            return None
        self.nc += 1
        return digest_answer(p, secret.username, secret.password, secret.ha1, method, self.attempt.uri, self.nc,
                             self.cnonce())


# --- an agent's outbound call over the trunks (leg A the agent's, `outbound_to` the trunk attempt's leg) -------
def agent_hears_progress(call) -> list:
    """A trunk failed and the next is tried: the agent hears ringing meanwhile rather than silence."""
    if call.ended or call.customer.state != "init":
        return []
    return [Respond(call.customer, 180, provisional=True)]


def no_trunk_answered(core, call, status: int, reason: str, now: float, acd=None) -> list:
    """The walk ended without an answer: the agent gets `status` with the reason, the call ends."""
    b = call.outbound_to
    if b is not None and b.state in ("calling", "early"):
        b.fire("failed")
    elif b is not None and b.state == "init":
        b.fire("hangup")           # no trunk was even tried
    out = [Respond(call.customer, status, reason=reason)] if call.customer.state == "init" else []
    return out + core.end_call(call, reason, now, acd)


def agent_queue(queues: dict, caller_ids) -> str | None:
    """The queue whose caller ID an agent's outbound call shows (when the agent has none of its own): among the
    agent's queues (name -> penalty), the most preferred one the dial plan gives a caller ID."""
    for name in sorted(queues, key=lambda q: (queues[q], q)):
        if name in caller_ids.queues:
            return name
    return None
