"""Flood limits for the web chat, pure with an injected clock: token buckets (frames and bytes) per chat and per
visitor address, and per agent panel and per agent, a cap on chats open at once from one address, and a short
ban of an address whose chat was cut off for flooding.
Memory stays bounded: an address's bucket goes with its last chat when it is full again, and the ones left
behind (an address that used its budget, then left) are swept once they are full, whenever the table has
doubled since the last sweep (amortised constant time per chat)."""

from __future__ import annotations

from typing import Callable

BAN_TIME = 60.0


class Bucket:
    __slots__ = ("rate", "burst", "tokens", "at")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Charge `cost` (a frame, or its bytes; never more than the burst, so an oversized one empties it)."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = max(self.at, now)
        cost = min(cost, self.burst)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def set_rate(self, rate: tuple[float, float]) -> None:
        """New settings (a reload): the tokens saved so far stay, up to the new burst."""
        self.rate, self.burst = rate
        self.tokens = min(self.tokens, self.burst)

    def full(self, now: float) -> bool:
        return self.tokens + max(0.0, now - self.at) * self.rate >= self.burst


class AddressLimits:
    """Per visitor address: a bucket shared by its chats, how many are open, and a ban after a flood."""

    def __init__(self, rate: tuple[float, float], sessions: int, clock: Callable[[], float],
                 ban_time: float = BAN_TIME) -> None:
        self.rate, self.sessions, self.clock, self.ban_time = rate, sessions, clock, ban_time
        self._buckets: dict[str, Bucket] = {}
        self._open: dict[str, int] = {}
        self._banned: dict[str, float] = {}
        self._sweep_at = 1024

    def admit(self, address: str) -> str | None:
        """Why a new chat from this address is refused, or None."""
        now = self.clock()
        until = self._banned.get(address)
        if until is not None:
            if until > now:
                return "this address was cut off for flooding; try again later"
            del self._banned[address]
        if self._open.get(address, 0) >= self.sessions:
            return f"too many chats open from this address (at most {self.sessions})"
        return None

    def opened(self, address: str) -> None:
        self._open[address] = self._open.get(address, 0) + 1

    def closed(self, address: str) -> None:
        n = self._open.get(address, 0) - 1
        if n > 0:
            self._open[address] = n
        else:
            self._open.pop(address, None)
            now = self.clock()
            b = self._buckets.get(address)
            if b is not None and b.full(now):
                del self._buckets[address]
            if len(self._buckets) >= self._sweep_at:
                self._buckets = {a: b for a, b in self._buckets.items() if a in self._open or not b.full(now)}
                self._sweep_at = max(1024, 2 * len(self._buckets))

    def take(self, address: str) -> bool:
        now = self.clock()
        b = self._buckets.get(address)
        if b is None:
            b = self._buckets[address] = Bucket(*self.rate, now)
        return b.take(now)

    def reconfigure(self, rate: tuple[float, float], sessions: int) -> None:
        self.rate, self.sessions = rate, sessions
        for b in self._buckets.values():
            b.set_rate(rate)

    def ban(self, address: str) -> None:
        self._banned[address] = self.clock() + self.ban_time
        if len(self._banned) > 10_000:          # sweep the expired ones now and then
            now = self.clock()
            self._banned = {a: t for a, t in self._banned.items() if t > now}


def frame_size(data) -> int:
    """A frame's size in bytes as it came on the wire (text is UTF-8), without copying an ASCII one."""
    if isinstance(data, str):
        return len(data) if data.isascii() else len(data.encode("utf-8", "surrogatepass"))
    return len(data)
