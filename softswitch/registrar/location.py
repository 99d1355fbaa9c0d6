"""The location service: bindings of address-of-record -> contacts, behind a narrow store interface.

The registrar only talks to `LocationStore`; the in-memory store here and the Redis store (pool mode) pass
the same test suite. Methods are coroutines so a networked store fits; the memory store never suspends.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True)
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
    """Bindings in a dict; expiry from a heap of each AOR's earliest expiry, and filtered at lookup.

    A sweep looks only at the AORs that are due, never at every binding: the heap holds one item per AOR
    (plus one for each time a REGISTER brought an AOR's expiry closer); a refresh that pushes the expiry later
    leaves the old item, which finds nothing gone when it comes up and schedules the AOR again."""

    def __init__(self) -> None:
        self._aors: dict[str, list[Binding]] = {}
        self._due: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}          # aor -> the earliest time it is in the heap for
        self._n = 0

    def _schedule(self, aor: str, bindings: list[Binding]) -> None:
        at = min(b.expires_at for b in bindings)
        if at < self._scheduled.get(aor, float("inf")):
            self._scheduled[aor] = at
            heapq.heappush(self._due, (at, aor))

    async def lookup(self, aor: str, now: float) -> list[Binding]:
        return [b for b in self._aors.get(aor, ()) if b.expires_at > now]

    async def replace(self, aor: str, bindings: list[Binding], now: float) -> None:
        self._n -= len(self._aors.get(aor, ()))
        if bindings:
            self._aors[aor] = list(bindings)
            self._n += len(bindings)
            self._schedule(aor, bindings)
        else:
            self._aors.pop(aor, None)

    async def expire(self, now: float) -> list[Binding]:
        gone: list[Binding] = []
        due = self._due
        while due and due[0][0] <= now:
            at, aor = heapq.heappop(due)
            if self._scheduled.get(aor) == at:
                del self._scheduled[aor]
            current = self._aors.get(aor)
            if not current:
                continue
            keep = []
            for b in current:
                (keep if b.expires_at > now else gone).append(b)
            self._n -= len(current) - len(keep)
            if keep:
                self._aors[aor] = keep
                self._schedule(aor, keep)
            else:
                del self._aors[aor]
        return gone

    async def count(self) -> int:
        return self._n

    async def all(self) -> list[Binding]:
        return [b for v in self._aors.values() for b in v]
