"""Called routes and call policy: where an INVITE goes, or why it is refused (pure).

A called number (access code), optionally followed by an extension code, reaches a skill queue or an IVR
flow. A call from outside straight to an agent's softphone number is refused (the phone never rings); an
agent may call out only while registered and signed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from .sip.message import Request
from .sip.uri import SipURI


@dataclass(frozen=True)
class Route:
    called: str
    ext: str | None
    kind: str            # "queue" or "ivr"
    target: str          # queue name or IVR flow name


@dataclass(frozen=True)
class Decision:
    kind: str            # queue, ivr, outbound, reject
    target: str = ""
    status: int = 0
    reason: str = ""
    ext: str | None = None


class Router:
    def __init__(self, routes: list[Route], softphones: dict[str, str]) -> None:
        """`softphones` maps softphone number -> agent id."""
        self.routes: dict[tuple[str, str | None], Route] = {(r.called, r.ext): r for r in routes}
        self.softphones = softphones

    def lookup(self, number: str, ext: str | None = None) -> Route | None:
        """Exact (called, ext); else the longest called-number prefix whose remainder is a configured ext;
        else the called number alone (the extension is then passed on to the IVR/queue)."""
        if (number, ext) in self.routes:
            return self.routes[(number, ext)]
        for (called, rext), route in self.routes.items():
            if rext is not None and ext is None and number == called + rext:
                return route
        return self.routes.get((number, None))

    def decide(self, req: Request, caller_agent: str | None, caller_signed_in: bool) -> Decision:
        """`caller_agent` is the agent whose registered softphone sent the INVITE (authenticated), if any."""
        uri = req.uri
        if not isinstance(uri, SipURI) or uri.user is None:
            return Decision("reject", status=404, reason="No route")
        number = uri.user_unescaped or ""
        ext = uri.param("ext")
        route = self.lookup(number, ext)
        if caller_agent is not None:
            if not caller_signed_in:
                return Decision("reject", status=403, reason="Agent not signed in")
            if route is not None:
                return Decision(route.kind, route.target, ext=ext)
            return Decision("outbound", number)
        if number in self.softphones:
            return Decision("reject", status=403, reason="Direct calls to agents are not allowed")
        if route is None:
            return Decision("reject", status=404, reason="No route")
        return Decision(route.kind, route.target, ext=ext)
