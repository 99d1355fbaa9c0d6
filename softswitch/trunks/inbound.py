"""Where a call from a trunk goes, and whose number it shows: pure rules over the trunk's settings.

The called number (from the Request-URI, To, Diversion or P-Called-Party-ID, as the trunk says) is normalised
and goes through the called routes like any customer's call, first as E.164 and then as it came (so a route
may list the DID either way). A number that is an agent's softphone reaches that agent only on a trunk allowed
to reach agents; a queue or IVR only on a trunk allowed to reach the ACD or the IVR. The caller's number is
P-Asserted-Identity's when the trunk vouches for it (identified by address or proven by its digest
credentials), else From's.
"""

from __future__ import annotations

import re

from ..b2bua.routing import Decision

_USER = re.compile(r"(?:sips?|tel):([^@;>\s]+)", re.I)
_NUMBER = re.compile(r"[+0-9A-Za-z*#._-]{1,64}")      # what a caller number may be shown as


def uri_user(value: str | None) -> str | None:
    """The user part of the first URI in a header value (`"Jo" <sip:+4930555@x>;tag=1` -> `+4930555`)."""
    if not value:
        return None
    m = _USER.search(value[:2048])
    return m.group(1) if m else None


def called_source(trunk, ruri_user: str | None, headers) -> str | None:
    """The called number as the trunk delivers it; `headers` answers .get(name)."""
    where = trunk.called_number
    if where == "ruri":
        return ruri_user
    name = {"to": "To", "diversion": "Diversion", "p-called-party-id": "P-Called-Party-ID"}[where]
    return uri_user(headers.get(name)) or ruri_user


def caller_number(trunk, from_value: str | None, pai_value: str | None, trusted: bool) -> str | None:
    """None when neither header has a usable number (the From is then left as it came)."""
    for raw in ((uri_user(pai_value) if trusted else None), uri_user(from_value)):
        if raw and (n := trunk.numbers.inbound(raw)) and _NUMBER.fullmatch(n):
            return n
    return None


def route(trunk, router, called: str | None, ext: str | None = None, media: str = "voice") -> tuple[Decision, str]:
    """(decision, the number routed). Decision kinds: queue, ivr, agent (target: agent id), reject."""
    if not called:
        return Decision("reject", status=404, reason="No route"), ""
    normal = trunk.numbers.inbound(called)
    stripped = called[len(trunk.numbers.strip):] if trunk.numbers.strip and called.startswith(trunk.numbers.strip) \
        else called
    for number in dict.fromkeys((normal, stripped)):
        r, passed = router.lookup(number, ext, media)
        if r is not None:
            need = "acd" if r.kind == "queue" else "ivr"
            if not trunk.may_reach(need):
                return Decision("reject", status=403, reason=f"Trunk may not reach the {need.upper()}"), number
            return Decision(r.kind, r.target, ext=passed), number
    for number in dict.fromkeys((normal, stripped)):
        agent = router.softphones.get(number)
        if agent is not None:
            if not trunk.may_reach("agents"):
                return Decision("reject", status=403, reason="Trunk may not reach agents"), number
            return Decision("agent", agent), number
    return Decision("reject", status=404, reason="No route"), normal
