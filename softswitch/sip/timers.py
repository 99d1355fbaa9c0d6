"""Deadlines without a clock: callers pass `now`; the shell re-arms one real timer at `next_deadline()`.

Timers of the same duration are armed in time order, so one FIFO per duration keeps them sorted at O(1)
per operation (SIP uses a handful of durations: T1 multiples, T4, 64*T1). Cancelling is lazy: a fired entry
whose token is no longer current is dropped.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class TimerQueue:
    def __init__(self) -> None:
        self._fifos: dict[float, deque] = {}
        self._count = 0
        # the earliest deadline, kept while only arms happen (the shell asks after every message); None when
        # it must be looked for again
        self._next: float | None = None
        self._known = True

    def arm(self, now: float, delay: float, owner: Any, name: str, token: int) -> None:
        fifo = self._fifos.get(delay)
        if fifo is None:
            fifo = self._fifos[delay] = deque()
        at = now + delay
        if not fifo and self._known and (self._next is None or at < self._next):
            self._next = at              # a non-empty FIFO's head (earlier than `at`) is already counted
        fifo.append((at, owner, name, token))
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def next_deadline(self) -> float | None:
        if self._known:
            return self._next
        best = None
        for fifo in self._fifos.values():
            if fifo and (best is None or fifo[0][0] < best):
                best = fifo[0][0]
        self._next, self._known = best, True
        return best

    def pop_due(self, now: float) -> list[tuple[Any, str, int]]:
        """Every entry due at `now`, earliest first within a duration."""
        due = []
        self._known = False
        for fifo in self._fifos.values():
            while fifo and fifo[0][0] <= now:
                _, owner, name, token = fifo.popleft()
                self._count -= 1
                due.append((owner, name, token))
        return due
