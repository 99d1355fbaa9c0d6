"""Final answers kept for retransmissions, for non-INVITE requests served without a transaction object.

A non-INVITE server transaction (RFC 3261 s. 17.2.2) only absorbs retransmissions while its request is being
handled and re-sends the final answer in Completed, for Timer J (64*T1 over UDP, nothing over a reliable
transport). For REGISTER, the bulk of a registrar's traffic, that is all it does: the bytes of the answer
and where they went are enough, kept here by the transaction key, instead of a Transaction with its tables,
timers and effects. Expiry is a FIFO of deadlines (one hold time, so they are in time order). Pure: `now`
comes in.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .transaction import T1


class Answers:
    def __init__(self, hold: float = 64 * T1) -> None:
        self.hold = hold
        self._kept: dict[tuple, list] = {}     # key -> [until, answer bytes or None while pending, target]
        self._due: deque = deque()             # (until, key), in time order

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, key: tuple) -> list | None:
        """[until, bytes or None (still being handled), target] for a request seen before, else None."""
        return self._kept.get(key)

    def pending(self, key: tuple, target: Any) -> None:
        """A new request: its retransmissions are absorbed until it is answered (however long that takes, as
        in a transaction's Trying state, which has no timer)."""
        self._kept[key] = [0.0, None, target]

    def is_pending(self, key: tuple) -> bool:
        entry = self._kept.get(key)
        return entry is not None and entry[1] is None

    def done(self, key: tuple, data: bytes, now: float, reliable: bool) -> bool:
        """The final answer was sent; False (and nothing kept) when the request was already answered."""
        entry = self._kept.get(key)
        if entry is None or entry[1] is not None:
            return False
        if reliable:
            del self._kept[key]               # Timer J is zero: a stream does not retransmit
            return True
        entry[0] = until = now + self.hold
        entry[1] = data
        self._due.append((until, key))
        return True

    def expire(self, now: float) -> None:
        due, kept = self._due, self._kept
        while due and due[0][0] <= now:
            _, key = due.popleft()
            entry = kept.get(key)
            if entry is not None and entry[1] is not None and entry[0] <= now:
                del kept[key]
