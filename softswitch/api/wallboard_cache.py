"""What the wallboard's viewers share: each answer is built at most once per refresh interval and served as the
same bytes to every viewer who asks for it (pure; time is passed in).

At a 20,000-agent site a board built per viewer per poll would hold the event loop for every supervisor in turn;
built once per interval its cost does not grow with the number of viewers. Answers are keyed by what decides
their content (the scope: supervisor or agent, the agent list's query); the number of keys kept is bounded, so
a client asking for many different lists cannot grow memory, only evict older answers.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Hashable


class SharedAnswers:
    def __init__(self, every: float = 1.0, keep: int = 256) -> None:
        self.every = every              # seconds an answer is served before it is built again
        self.keep = keep
        self.built = 0                  # answers built (the rest were served from the cache)
        self.served = 0
        self._answers: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()

    def get(self, key: Hashable, now: float, build: Callable[[], bytes]) -> bytes:
        self.served += 1
        hit = self._answers.get(key)
        # a clock that stepped back rebuilds too: an answer from the future is not kept for ever
        if hit is not None and 0.0 <= now - hit[0] < self.every:
            self._answers.move_to_end(key)
            return hit[1]
        body = build()
        self.built += 1
        self._answers[key] = (now, body)
        self._answers.move_to_end(key)
        while len(self._answers) > self.keep:
            self._answers.popitem(last=False)
        return body

    def clear(self) -> None:
        self._answers.clear()


class ChangeTicker:
    """Tells viewers that something changed, at most once per interval, whatever the rate of events: the ACD's
    events set a flag (O(1) each); `due(now)` says whether to tell the viewers now and starts a new interval."""

    def __init__(self, every: float = 1.0) -> None:
        self.every = every
        self.changed = False
        self.seq = 0
        self._last = float("-inf")

    def mark(self) -> None:
        self.changed = True

    def due(self, now: float) -> bool:
        if not self.changed or 0.0 <= now - self._last < self.every:
            return False
        self.changed = False
        self._last = now
        self.seq += 1
        return True
