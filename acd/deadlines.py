"""Due times in a heap: the earliest in O(1), adding in O(log n), whatever the number of agents and calls.

Items are never removed in place: the owner says whether an item still stands (`valid(key, at)`), and
the ones that do not are dropped when they reach the top. Pure: the caller passes `now`.
"""

from __future__ import annotations

import heapq
from typing import Callable, Hashable

Valid = Callable[[tuple, float], bool]


class Deadlines:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, tuple]] = []
        self._n = 0

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, at: float, key: tuple[Hashable, ...]) -> None:
        self._n += 1
        heapq.heappush(self._heap, (at, self._n, key))

    def next(self, valid: Valid) -> float | None:
        """The earliest due time that still stands, or None."""
        heap = self._heap
        while heap and not valid(heap[0][2], heap[0][0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def due(self, now: float, valid: Valid) -> list[tuple[float, tuple]]:
        """Take every standing item due at `now`, earliest first."""
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, key = heapq.heappop(heap)
            if valid(key, at):
                out.append((at, key))
        return out
