"""A trunk's own limits: new calls per second (a token bucket with a burst) and calls at once.

A carrier delivers every customer's call from one address, so the per-source flood limit cannot apply to it;
these caps are what bound a trunk instead. Pure: `now` comes in.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float                 # tokens added per second
    burst: float                # the most it holds (and what it starts with)
    tokens: float = -1.0
    at: float | None = None

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def take(self, now: float, n: float = 1.0) -> bool:
        if self.at is not None and now > self.at:
            self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
        if self.at is None or now > self.at:
            self.at = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def retune(self, rate: float, burst: float) -> None:
        """New limits from a reload; the tokens in hand stay (capped to the new burst)."""
        self.rate, self.burst = rate, burst
        self.tokens = min(self.tokens, float(burst))


@dataclass
class CallCaps:
    """Admission of a trunk's new calls. `max_calls` 0 means no cap on calls at once; `calls_per_second` 0 none
    on the rate. Calls are known by id, so a retransmitted INVITE is neither counted nor refused twice."""
    calls_per_second: float = 0.0
    burst: int = 1
    max_calls: int = 0
    active: set = field(default_factory=set)
    stats: dict = field(default_factory=lambda: {"admitted": 0, "over_rate": 0, "over_calls": 0})

    def __post_init__(self) -> None:
        self.bucket = TokenBucket(self.calls_per_second, max(1, self.burst))

    def admit(self, call_id: str, now: float, tally: bool = True) -> str | None:
        """None when the call may start (it is then counted as active); else why not: "rate" or "calls".
        `tally`: count a refusal in `stats` (the trunk's refused inbound calls; outbound ones count apart)."""
        if call_id in self.active:
            return None
        if self.max_calls and len(self.active) >= self.max_calls:
            self.stats["over_calls"] += tally
            return "calls"
        if self.calls_per_second and not self.bucket.take(now):
            self.stats["over_rate"] += tally
            return "rate"
        self.active.add(call_id)
        self.stats["admitted"] += 1
        return None

    def release(self, call_id: str) -> None:
        self.active.discard(call_id)

    def keep_only(self, live) -> None:
        """Forget calls that ended (`live` answers `in` for the calls still in progress)."""
        self.active = {c for c in self.active if c in live}

    def retune(self, calls_per_second: float, burst: int, max_calls: int) -> None:
        self.calls_per_second, self.burst, self.max_calls = calls_per_second, burst, max_calls
        self.bucket.retune(calls_per_second, max(1, burst))
