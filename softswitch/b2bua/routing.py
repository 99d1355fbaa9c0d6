"""Called routes and call policy: where an INVITE goes, or why it is refused (pure).

A called number (access code), optionally followed by an extension code, reaches a skill queue or an IVR
flow; a route may be specific to voice or video calls. Any other number is reached only by an agent's
authenticated call, and only while the agent is registered and signed in: a call from outside straight to an
agent's softphone number gets the same answer as one to a number that does not exist (a challenge, then 403
for any credentials), so the phone never rings and no answer tells the numbers apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol


class RouteLike(Protocol):
    called: str
    ext: str | None
    kind: str            # "queue" or "ivr"
    target: str
    media: str           # any, voice, video


@dataclass(frozen=True)
class Decision:
    kind: str            # queue, ivr, outbound, reject
    target: str = ""
    status: int = 0
    reason: str = ""
    ext: str | None = None


class Router:
    def __init__(self, routes: Iterable[RouteLike], softphones: dict[str, str]) -> None:
        """`softphones` maps softphone number -> agent id."""
        self.routes: dict[tuple[str, str | None, str], RouteLike] = {(r.called, r.ext, r.media): r for r in routes}
        self.softphones = softphones

    def _get(self, number: str, ext: str | None, media: str) -> RouteLike | None:
        return self.routes.get((number, ext, media)) or self.routes.get((number, ext, "any"))

    def lookup(self, number: str, ext: str | None = None, media: str = "voice") -> tuple[RouteLike | None, str | None]:
        """(route, extension passed on). Exact (called, ext); else a called number followed by a configured
        extension code; else the called number alone (any extension is then passed on)."""
        if ext is not None and (r := self._get(number, ext, media)):
            return r, ext
        for (called, rext, _), _route in self.routes.items():
            if rext is not None and ext is None and number == called + rext:
                if r := self._get(called, rext, media):
                    return r, rext
        return self._get(number, None, media), ext

    def has_route(self, number: str | None, ext: str | None = None) -> bool:
        """A called route exists for this number, for some kind of media: customers reach it unauthenticated."""
        return bool(number) and any(self.lookup(number, ext, m)[0] is not None for m in ("voice", "video"))

    def decide(self, number: str | None, ext: str | None = None, media: str = "voice",
               caller_agent: str | None = None, caller_signed_in: bool = False) -> Decision:
        """`caller_agent` is the agent whose registered softphone sent the INVITE (authenticated), if any."""
        if not number:
            return Decision("reject", status=404, reason="No route")
        route, ext = self.lookup(number, ext, media)
        if caller_agent is not None:
            if not caller_signed_in:
                return Decision("reject", status=403, reason="Agent not signed in")
            if route is not None:
                return Decision(route.kind, route.target, ext=ext)
            return Decision("outbound", number)
        if route is None and not self.has_route(number, ext):
            # an agent's number or none at all, alike: only an authenticated agent may go further
            return Decision("auth", status=407, reason="Proxy Authentication Required")
        if route is None:
            return Decision("reject", status=404, reason="No route")      # a route for the other media only
        return Decision(route.kind, route.target, ext=ext)
