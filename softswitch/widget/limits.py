"""Rate limits on what anonymous visitors may ask for (pure: the clock is passed in).

A token bucket per client address and one for the whole node: `per_minute` a minute on average, up to
`per_minute` at once. The per-address table is bounded: past `max_keys` addresses the ones idle longest (their
buckets full again) are forgotten first, so a spray of addresses costs memory in proportion to `max_keys` only.
"""

from __future__ import annotations


class Bucket:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens, self.at = tokens, at


class RateLimit:
    def __init__(self, per_address: int, total: int, max_keys: int = 50_000) -> None:
        self.per_address, self.total, self.max_keys = per_address, total, max_keys
        self._by_address: dict[str, Bucket] = {}
        self._all: Bucket | None = None

    @staticmethod
    def _take(b: Bucket, per_minute: int, now: float) -> float:
        """0.0 and one token taken; else the seconds until one is there."""
        rate = per_minute / 60.0
        b.tokens = min(float(per_minute), b.tokens + max(0.0, now - b.at) * rate)
        b.at = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / rate

    def allow(self, address: str, now: float) -> float:
        """0.0 when `address` may have one more; else seconds to wait (for Retry-After). A refused request
        takes nothing from the node's budget, so one busy address cannot use it up for the others."""
        b = self._by_address.pop(address, None)       # re-inserted last: the dict's order is least recent first
        if b is None:
            b = Bucket(float(self.per_address), now)
            if len(self._by_address) >= self.max_keys:
                del self._by_address[next(iter(self._by_address))]
        self._by_address[address] = b
        wait = self._take(b, self.per_address, now)
        if wait:
            return wait
        if self._all is None:
            self._all = Bucket(float(self.total), now)
        wait = self._take(self._all, self.total, now)
        if wait:
            b.tokens += 1.0          # not spent: the node said no
        return wait
