"""Waiting for the ACK of our 2xx to an INVITE (RFC 3261 s. 13.3.1.4): "the 2xx response is passed to the
transport with an interval that starts at T1 seconds and doubles for each retransmission until it reaches T2
seconds ... If the server retransmits the 2xx response for 64*T1 seconds without receiving an ACK, the dialog
is confirmed, but the session SHOULD be terminated" (with a BYE). Over a reliable transport nothing is
re-sent; only the 64*T1 deadline stands."""

from __future__ import annotations

from dataclasses import dataclass

from ..sip.transaction import T1, T2


@dataclass
class AckWait:
    deadline: float
    interval: float         # the gap before the next retransmission
    reliable: bool


def start(now: float, reliable: bool) -> tuple[AckWait, float]:
    """The wait for an ACK and the delay to the first check."""
    wait = AckWait(now + 64 * T1, T1, reliable)
    return wait, (64 * T1 if reliable else T1)


def due(wait: AckWait, now: float) -> tuple[str, float | None]:
    """At a check: ("give_up", None) once the deadline has passed; else ("resend", next delay) over UDP, or
    ("wait", next delay) over a reliable transport."""
    if now >= wait.deadline:
        return "give_up", None
    if wait.reliable:
        return "wait", wait.interval
    wait.interval = min(wait.interval * 2, T2)
    return "resend", wait.interval
