"""RFC 4028 session timers: the interval agreed, who refreshes, and when a refresh or the expiry is due.

Dead calls (a phone unplugged mid-call) end by the timer instead of holding an agent forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sip.errors import SipError
from ..sip.headers import parse_delta_params

# RFC 4028 s. 4: "Min-SE ... MUST NOT be less than 90 seconds" (the protocol's floor, which we use).
MIN_SE = 90


@dataclass(frozen=True)
class Timer:
    """The session timer a 2xx to an INVITE sets up."""
    headers: tuple[tuple[str, str], ...]       # for the 2xx
    interval: int
    we_refresh: bool


def negotiate(se_value: str | None, supported: list[str], ours: int) -> Timer | None:
    """As UAS (s. 9): the interval is the smaller of the peer's Session-Expires and ours; None when the peer
    asked for less than Min-SE (answer 422 with min_se_headers()). A refresher=uas request makes us refresh;
    a peer that supports "timer" refreshes itself (we Require it); else we refresh.

    Session-Expires = delta-seconds *(SEMI se-params): a value that is no number counts as absent; bad
    parameters after a number raise SipError(400)."""
    tokens = {t.strip().lower() for v in supported for t in v.split(",")}
    interval = ours
    if se_value:
        head = se_value.partition(";")[0].strip(" \t")
        if head.isascii() and head.isdigit():
            asked, plist = parse_delta_params(se_value, "Session-Expires")
            params = {k.lower(): (v or "").lower() for k, v in plist}
            if asked < MIN_SE:
                return None
            interval = min(asked, ours)
            if params.get("refresher") == "uas":
                return Timer((("Session-Expires", f"{interval};refresher=uas"),), interval, True)
    if "timer" in tokens:
        return Timer((("Session-Expires", f"{interval};refresher=uac"), ("Require", "timer")), interval, False)
    return Timer((("Session-Expires", f"{interval};refresher=uas"),), interval, True)


def min_se_headers() -> list[tuple[str, str]]:
    """For the 422 (s. 6): the smallest interval we take."""
    return [("Min-SE", str(MIN_SE))]


def interval_of(se_value: str | None, default: int) -> int:
    """The interval a peer's 2xx (to our INVITE) put in force; ours when it names none or garbage."""
    try:
        return parse_delta_params(se_value or "", "Session-Expires")[0]
    except SipError:
        return default


def we_refresh_as_uac(se_value: str | None) -> bool:
    """As UAC (s. 7.2): we refresh unless the answer hands the job to the UAS."""
    return "refresher=uas" not in (se_value or "").lower()


def offer_headers(ours: int) -> list[tuple[str, str]]:
    """Our INVITEs to agents propose our interval with us (the UAC) refreshing."""
    return [("Session-Expires", f"{ours};refresher=uac")]


def refresh_headers(interval: int) -> list[tuple[str, str]]:
    """A refreshing re-INVITE of ours (s. 7.4)."""
    return [("Session-Expires", f"{interval};refresher=uac"), ("Supported", "timer")]


def update_answer_headers(se_value: str | None) -> list[tuple[str, str]]:
    """The 200 to a peer's refreshing UPDATE: the peer (UAC of the refresh) goes on refreshing."""
    if not se_value:
        return []
    return [("Session-Expires", se_value.split(";")[0] + ";refresher=uac"), ("Require", "timer")]


def due_in(interval: int, we_refresh: bool) -> float | None:
    """Seconds from a refresh to the next deadline: our refresh at half the interval (s. 10); the peer's
    refresh must have come by expiry minus min(32, SE/3) or the session is dead. None: no timer."""
    if not interval:
        return None
    if we_refresh:
        return interval / 2
    return interval - min(32, interval / 3)


def on_due(state: str, we_refresh: bool) -> str | None:
    """What the deadline means: "refresh" (send a re-INVITE), "expire" (end the call), or None for a leg
    no longer confirmed."""
    if state != "confirmed":
        return None
    return "refresh" if we_refresh else "expire"
