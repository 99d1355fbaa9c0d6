"""The location service: bindings of address-of-record -> contacts, behind a narrow store interface.

The registrar only talks to `LocationStore`; the in-memory store here and the Redis store (pool mode) pass
the same test suite. Methods are coroutines so a networked store fits; the memory store never suspends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class Binding:
    aor: str                      # comparison form of the To URI (scheme:user@host)
    user: str                     # the softphone account (To URI user part, unescaped)
    contact: str                  # the Contact URI as the phone sent it
    key: str                      # what identifies this binding within the AOR (instance id, else the URI)
    expires_at: float             # wall-clock seconds
    call_id: str
    cseq: int
    q: float | None = None
    instance: str | None = None   # +sip.instance (RFC 5626)
    reg_id: str | None = None
    path: list[str] = field(default_factory=list)
    source: tuple[str, str, int] = ("udp", "", 0)   # transport, host, port the REGISTER came from
    user_agent: str = ""
    node: str = ""                # which node of a pool holds the flow to the phone
    registered_at: float = 0.0
    params: str = ""              # Contact header parameters other than expires and q (+sip.instance, reg-id)

    def expires_in(self, now: float) -> int:
        return max(0, int(round(self.expires_at - now)))

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict) -> "Binding":
        d = dict(d)
        d["source"] = tuple(d.get("source") or ("udp", "", 0))
        d["path"] = list(d.get("path") or [])
        return cls(**d)


class LocationStore(Protocol):
    async def lookup(self, aor: str, now: float) -> list[Binding]: ...
    async def replace(self, aor: str, bindings: list[Binding], now: float) -> None: ...
    async def expire(self, now: float) -> list[Binding]: ...
    async def count(self) -> int: ...
    async def all(self) -> list[Binding]: ...


class MemoryLocationStore:
    """Bindings in a dict; expiry by a periodic sweep (`expire`) and filtered at lookup."""

    def __init__(self) -> None:
        self._aors: dict[str, list[Binding]] = {}

    async def lookup(self, aor: str, now: float) -> list[Binding]:
        return [b for b in self._aors.get(aor, ()) if b.expires_at > now]

    async def replace(self, aor: str, bindings: list[Binding], now: float) -> None:
        if bindings:
            self._aors[aor] = list(bindings)
        else:
            self._aors.pop(aor, None)

    async def expire(self, now: float) -> list[Binding]:
        gone: list[Binding] = []
        for aor in list(self._aors):
            keep = []
            for b in self._aors[aor]:
                (keep if b.expires_at > now else gone).append(b)
            if keep:
                self._aors[aor] = keep
            else:
                del self._aors[aor]
        return gone

    async def count(self) -> int:
        return sum(len(v) for v in self._aors.values())

    async def all(self) -> list[Binding]:
        return [b for v in self._aors.values() for b in v]
