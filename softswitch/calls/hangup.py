"""Hanging up one leg from our side (BYE, CANCEL, or nothing), the rule every end of a call uses."""

from __future__ import annotations

from .effects import SendBye, SendCancel, StopTimers
from .leg import LegState


def hangup(leg: LegState) -> list:
    """End a leg from our side: BYE when its dialog is up, CANCEL while our INVITE rings (RFC 3261 s. 9.1:
    before any provisional response the CANCEL waits for one), nothing for a UAS leg never answered."""
    if leg.state == "ended":
        return []
    before = leg.state
    leg.fire("hangup")
    out: list = [StopTimers(leg)]
    if before == "confirmed":
        out.append(SendBye(leg))
    elif leg.role == "uac" and before in ("calling", "early"):
        out += _cancel(leg, before)
    return out


def cancel(leg: LegState) -> list:
    """CANCEL our INVITE while it rings, keeping the leg's state (the final response ends it)."""
    if leg.state not in ("calling", "early"):
        return []
    return _cancel(leg, leg.state)


def _cancel(leg: LegState, state: str) -> list:
    leg.cancelled = True
    if state == "calling":
        leg.cancel_pending = True
        return []
    return [SendCancel(leg)]
