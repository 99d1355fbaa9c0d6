"""The session timers (RFC 4028) of every leg in progress, grouped on the loop.

A loop timer per leg costs about half a kilobyte for as long as its call lasts. Here legs whose timers fall
due within the same tenth of a second share one loop timer: a refresh or an expiry that many milliseconds
later changes nothing, and a timer never fires early (the slot is rounded up). Cancelling is O(1), so an
ended leg is not held until its old deadline.
"""

from __future__ import annotations

import math
from typing import Callable

GRAIN = 0.1         # seconds


class LegTimers:
    def __init__(self, loop) -> None:
        self.loop = loop
        self._slots: dict[int, dict[object, Callable[[], None]]] = {}     # slot -> {key: what to call}
        self._handles: dict[int, object] = {}
        self._slot_of: dict[object, int] = {}

    def __len__(self) -> int:
        return len(self._slot_of)

    def arm(self, key, delay: float, fn: Callable[[], None]) -> None:
        """Call fn() once, `delay` seconds from now (or up to GRAIN later); replaces key's timer."""
        self.cancel(key)
        slot = math.ceil((self.loop.time() + delay) / GRAIN)
        due = self._slots.get(slot)
        if due is None:
            due = self._slots[slot] = {}
            self._handles[slot] = self.loop.call_at(slot * GRAIN, self._fire, slot)
        due[key] = fn
        self._slot_of[key] = slot

    def cancel(self, key) -> None:
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return
        due = self._slots[slot]
        del due[key]
        if not due:
            del self._slots[slot]
            self._handles.pop(slot).cancel()

    def _fire(self, slot: int) -> None:
        due = self._slots.get(slot)
        # One at a time, in arming order: a callback may cancel a timer of this same slot (the other leg of an
        # ending call), which must then not fire.
        while due:
            key = next(iter(due))
            fn = due.pop(key)
            del self._slot_of[key]
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - as the loop does for a timer of its own: the others still fire
                self.loop.call_exception_handler({"message": "leg timer failed", "exception": exc})
        if self._slots.get(slot) is due:
            del self._slots[slot]
            self._handles.pop(slot, None)
