"""Per-minute samples of each queue for the wallboard's trend charts, in a bounded ring (pure; time is passed in).

`observe(now, views)` takes the ACD's queue views (cumulative counters plus the waiting count) as often as it
likes; each minute keeps the most and the last calls waiting it saw, and what the counters moved by in it:
answered, abandoned (short abandons apart) and the service level of the calls that stopped waiting in it.
Only the last `minutes` minutes are kept, whatever the number of observations.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

_COUNTERS = ("answered", "abandoned", "short_abandoned", "answered_in_service_level")


@dataclass
class Minute:
    t: float                      # the minute's start (epoch seconds, a multiple of the period)
    waiting_max: int | None = None
    waiting: int | None = None    # the last seen
    answered: int = 0
    abandoned: int = 0            # short abandons not included
    short_abandoned: int = 0
    answered_in_service_level: int = 0

    def view(self) -> dict:
        offered = self.answered + self.abandoned
        return {"t": self.t, "waiting_max": self.waiting_max, "waiting": self.waiting, "answered": self.answered,
                "abandoned": self.abandoned, "short_abandoned": self.short_abandoned,
                "service_level": round(self.answered_in_service_level / offered, 4) if offered else None}


@dataclass
class _Queue:
    ring: deque
    last: dict | None = None      # the counters at the previous observation
    seen: dict = field(default_factory=dict)


class TrendRing:
    def __init__(self, minutes: int = 60, period: float = 60.0) -> None:
        self.minutes = minutes
        self.period = period
        self.queues: dict[str, _Queue] = {}

    def observe(self, now: float, views: dict[str, dict]) -> None:
        """views: queue name -> the ACD's queue view. Queues no longer there are forgotten."""
        for gone in self.queues.keys() - views.keys():
            del self.queues[gone]
        start = now - now % self.period
        for name, v in views.items():
            q = self.queues.get(name)
            if q is None:
                q = self.queues[name] = _Queue(deque(maxlen=self.minutes))
            m = self._minute(q.ring, start)
            waiting = int(v.get("waiting") or 0)
            m.waiting = waiting
            m.waiting_max = waiting if m.waiting_max is None else max(m.waiting_max, waiting)
            counts = {k: int(v.get(k) or 0) for k in _COUNTERS}
            counts["abandoned"] -= counts["short_abandoned"]
            if q.last is not None:
                for k in _COUNTERS:
                    d = counts[k] - q.last[k]
                    # a counter that went down was reset (the queue was made anew): all it has now is new
                    setattr(m, k, getattr(m, k) + (d if d >= 0 else counts[k]))
            q.last = counts

    def _minute(self, ring: deque, start: float) -> Minute:
        if ring and ring[-1].t >= start:
            return ring[-1]               # this minute (or the clock stepped back: the newest one)
        if ring:
            # minutes nobody observed stay in as gaps, so the chart's time axis is right
            t = max(ring[-1].t + self.period, start - self.period * self.minutes)
            while t < start:
                ring.append(Minute(t))
                t += self.period
        ring.append(Minute(start))
        return ring[-1]

    def series(self, name: str, now: float) -> list[dict]:
        """The queue's minutes within the last `minutes` minutes up to now, oldest first."""
        q = self.queues.get(name)
        if q is None:
            return []
        since = now - now % self.period - self.period * (self.minutes - 1)
        return [m.view() for m in q.ring if m.t >= since]
