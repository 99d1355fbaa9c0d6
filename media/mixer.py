"""All conferences of the node mixed in one vectorized step per 20 ms tick.

Leg i hears leg j when hears[i, j]; by default that is "same room, not itself". Supervisor modes are
explicit (listener, speaker) overrides on top of that default, so a tick costs O(legs * 160) plus
O(overrides * 160) instead of an L x L matmul.
"""

from __future__ import annotations

import heapq

import numpy as np

FRAME = 160  # 20 ms at 8 kHz


def saturate(acc: np.ndarray) -> np.ndarray:
    """int32/int64 sums -> int16, clipped (wrapping would turn loud speech into loud noise)."""
    return np.clip(acc, -32768, 32767).astype(np.int16)


def default_hears(rooms: np.ndarray) -> np.ndarray:
    """hears[i, j] = same room (not -1) and i != j."""
    rooms = np.asarray(rooms)
    m = (rooms[:, None] == rooms[None, :]) & (rooms[:, None] >= 0)
    np.fill_diagonal(m, False)
    return m


def mix_mask(frames: np.ndarray, hears: np.ndarray) -> np.ndarray:
    """General form: out = saturate(hears @ frames), exact in int64."""
    return saturate(hears.astype(np.int64) @ frames.astype(np.int64))


def room_sums(frames: np.ndarray, rooms: np.ndarray) -> np.ndarray:
    """Sum of everyone's frame in each leg's room, int32 (L, n); zero rows for legs not in a room."""
    rooms = np.asarray(rooms)
    L = frames.shape[0]
    out = np.zeros((L, frames.shape[1]), dtype=np.int32)
    inroom = np.nonzero(rooms >= 0)[0]
    if inroom.size == 0:
        return out
    # Group legs by room: sort, reduce each contiguous run, scatter the run totals back to its members.
    order = inroom[np.argsort(rooms[inroom], kind="stable")]
    r = rooms[order]
    starts = np.concatenate(([0], np.nonzero(r[1:] != r[:-1])[0] + 1))
    totals = np.add.reduceat(frames[order].astype(np.int32), starts, axis=0)
    counts = np.diff(np.append(starts, r.size))
    out[order] = np.repeat(totals, counts, axis=0)
    return out


def mix_rooms(frames: np.ndarray, rooms: np.ndarray) -> np.ndarray:
    """Fast path for the default mask: each leg gets its room's sum minus its own frame."""
    rooms = np.asarray(rooms)
    acc = room_sums(frames, rooms)
    inroom = rooms >= 0
    acc[inroom] -= frames[inroom]
    return saturate(acc)


class Mixer:
    """Legs keyed by caller ids, rows in preallocated arrays; rooms are any hashable ids.

    mix() returns a view into a reused output buffer: copy it if kept past the next tick.
    """

    def __init__(self, capacity: int = 64, frame: int = FRAME) -> None:
        self.frame = frame
        self.frames = np.zeros((capacity, frame), dtype=np.int16)   # the engine may write rows in place
        self._out = np.zeros((capacity, frame), dtype=np.int16)
        self._acc = np.zeros((capacity, frame), dtype=np.int32)
        self._room = np.full(capacity, -1, dtype=np.int64)
        self._index: dict[object, int] = {}
        self._free: list[int] = list(range(capacity))   # a heap, so new legs take the lowest free row
        self._room_code: dict[object, int] = {}
        self._room_refs: dict[int, int] = {}
        self._next_code = 0
        self._over: dict[tuple[int, int], bool] = {}
        self._over_arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._high = 0      # rows [0, _high) may be in use

    # --- legs and rooms --------------------------------------------------------------------------------

    def _grow(self) -> None:
        old = self._room.size
        new = old * 2
        for name, fill in (("frames", 0), ("_out", 0), ("_acc", 0)):
            a = getattr(self, name)
            b = np.full((new, self.frame), fill, dtype=a.dtype)
            b[:old] = a
            setattr(self, name, b)
        room = np.full(new, -1, dtype=np.int64)
        room[:old] = self._room
        self._room = room
        for i in range(old, new):
            heapq.heappush(self._free, i)

    def add_leg(self, leg_id, room=None) -> int:
        """Register a leg (room None = not in a room); returns its row index."""
        if leg_id in self._index:
            raise KeyError(f"leg {leg_id!r} already present")
        if not self._free:
            self._grow()
        idx = heapq.heappop(self._free)
        self._index[leg_id] = idx
        self.frames[idx] = 0
        self._high = max(self._high, idx + 1)
        self.set_room(leg_id, room)
        return idx

    def remove_leg(self, leg_id) -> None:
        idx = self._index.pop(leg_id)
        self.set_room_index(idx, None)
        self._over = {k: v for k, v in self._over.items() if idx not in k}
        self._over_arrays = None
        self.frames[idx] = 0
        heapq.heappush(self._free, idx)
        self._high = max(self._index.values(), default=-1) + 1

    def index(self, leg_id) -> int:
        return self._index[leg_id]

    def set_room(self, leg_id, room) -> None:
        self.set_room_index(self._index[leg_id], room)

    def set_room_index(self, idx: int, room) -> None:
        old = int(self._room[idx])
        if old >= 0:
            self._room_refs[old] -= 1
            if not self._room_refs[old]:
                del self._room_refs[old]
                self._room_code = {k: c for k, c in self._room_code.items() if c != old}
        if room is None:
            self._room[idx] = -1
            return
        code = self._room_code.get(room)
        if code is None:
            code = self._room_code[room] = self._next_code
            self._next_code += 1
        self._room_refs[code] = self._room_refs.get(code, 0) + 1
        self._room[idx] = code

    # --- who hears whom ----------------------------------------------------------------------------

    def set_hears(self, listener, speaker, value: bool | None) -> None:
        """Override hears[listener, speaker]; None returns the pair to the room default."""
        key = (self._index[listener], self._index[speaker])
        if value is None:
            self._over.pop(key, None)
        else:
            self._over[key] = bool(value)
        self._over_arrays = None

    def clear_hears(self, leg_id) -> None:
        """Drop every override involving the leg."""
        idx = self._index[leg_id]
        self._over = {k: v for k, v in self._over.items() if idx not in k}
        self._over_arrays = None

    def listen(self, supervisor, agent, customer) -> None:
        """Silent monitoring: the supervisor hears both parties, nobody hears the supervisor."""
        for party in (agent, customer):
            self.set_hears(supervisor, party, True)
            self.set_hears(party, supervisor, False)

    def whisper(self, supervisor, agent, customer) -> None:
        """Coaching: as listen, but the agent also hears the supervisor."""
        self.listen(supervisor, agent, customer)
        self.set_hears(agent, supervisor, True)

    def barge(self, supervisor, agent, customer) -> None:
        """Three-way: all three hear each other."""
        for a, b in ((supervisor, agent), (supervisor, customer), (agent, customer)):
            self.set_hears(a, b, True)
            self.set_hears(b, a, True)

    def hears_matrix(self) -> np.ndarray:
        """The effective (high, high) boolean mask, for inspection and tests."""
        h = self._high
        m = default_hears(self._room[:h])
        for (i, j), v in self._over.items():
            m[i, j] = v
        return m

    # --- the tick ------------------------------------------------------------------------------------

    def _overrides(self):
        if self._over_arrays is None:
            keys = np.array(list(self._over.keys()), dtype=np.int64).reshape(-1, 2)
            vals = np.array(list(self._over.values()), dtype=bool)
            self._over_arrays = (keys[:, 0], keys[:, 1], vals)
        return self._over_arrays

    def mix(self, frames: np.ndarray | None = None) -> np.ndarray:
        """frames (>= high rows, 160) int16, default self.frames -> int16 (high, 160) mixes."""
        h = self._high
        f = self.frames[:h] if frames is None else np.asarray(frames)[:h]
        if f.shape[0] < h:
            raise ValueError(f"need at least {h} frame rows, got {f.shape[0]}")
        rooms = self._room[:h]
        acc = self._acc[:h]
        acc[...] = room_sums(f, rooms)
        inroom = rooms >= 0
        acc[inroom] -= f[inroom]
        li, sj, val = self._overrides()
        if li.size:
            # Each override adds or removes exactly the difference from the room default for that pair.
            default = (rooms[li] == rooms[sj]) & (rooms[li] >= 0) & (li != sj)
            delta = val.astype(np.int32) - default.astype(np.int32)
            nz = delta != 0
            if nz.any():
                np.add.at(acc, li[nz], delta[nz, None] * f[sj[nz]].astype(np.int32))
        out = self._out[:h]
        np.clip(acc, -32768, 32767, out=acc)
        out[...] = acc
        return out
