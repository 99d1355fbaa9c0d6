"""One outbound call over the trunks: the dial plan's trunks for the number, tried in order (skipping those down
or at their cap), each attempt with the Request-URI, destination and caller ID it is sent with. Call control
asks `first()`, places the INVITE, and reports the final answer (or "timeout") to `result()` for the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .dialplan import Failover


@dataclass(frozen=True)
class Attempt:
    trunk: str
    uri: str                     # Request-URI: the number as the trunk wants it, at its proxy
    host: str
    port: int
    transport: str
    caller_id: str | None        # the number to present (From / P-Asserted-Identity), in the trunk's format
    auth: object | None          # the trunk's outbound_auth Secret, to answer its challenges


class OutboundCall:
    def __init__(self, settings, number: str, usable: Callable[[str], bool], queue: str | None = None,
                 agent: str | None = None) -> None:
        self.settings, self.number = settings, number
        self.caller = settings.dial_plan.caller_ids.choose(queue, agent)
        trunks = tuple(n for n in settings.dial_plan.trunks_for(number)
                       if (t := settings.trunk(n)) is not None and t.target() is not None)
        self.walk = Failover(trunks, usable)

    def first(self) -> Attempt | None:
        return self._attempt(self.walk.first())

    def result(self, outcome: int | str) -> Attempt | None:
        return self._attempt(self.walk.result(outcome))

    def _attempt(self, name: str | None) -> Attempt | None:
        if name is None:
            return None
        t = self.settings.trunk(name)
        host, port = t.target()
        h = f"[{host}]" if ":" in host else host
        tp = "" if t.transport == "udp" else f";transport={t.transport}"
        return Attempt(name, f"sip:{t.numbers.outbound(self.number)}@{h}:{port}{tp}", host, port, t.transport,
                       t.numbers.outbound(self.caller) if self.caller else None, t.outbound_auth)
