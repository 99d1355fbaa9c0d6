"""All conferences of the node mixed in one vectorized step per 20 ms tick.

Leg i hears leg j when hears[i, j]; by default that is "same room, not itself". Supervisor modes are
explicit (listener, speaker) overrides on top of that default, so a tick costs O(legs * 160) plus
O(overrides * 160) instead of an L x L matmul.
"""

from __future__ import annotations

import heapq

import numpy as np

from . import g711
from .errors import LocalProtocolError

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


class RoomLayout:
    """Legs grouped so that every room is a contiguous run of rows, rooms grouped by size.

    order[start:stop] (for each (size, start, stop) in groups) are the legs of (stop - start) // size
    rooms of `size` legs each, so a group reshapes to (rooms, size, frame) and the room sums are one
    reduction over axis 1: no scatter/bincount, no per-leg repeat. outside = legs in no room.
    Build it once when rooms change, reuse it every tick.
    """

    __slots__ = ("order", "groups", "outside", "n")

    def __init__(self, rooms) -> None:
        rooms = np.asarray(rooms)
        self.n = rooms.size
        inroom = np.nonzero(rooms >= 0)[0]
        self.outside = np.nonzero(rooms < 0)[0]
        r = rooms[inroom]
        _, inv, counts = np.unique(r, return_inverse=True, return_counts=True)
        size = counts[inv.reshape(-1)]
        order = inroom[np.lexsort((r, size))]         # by room size, then room; stable within a room
        self.order = order
        self.groups: list[tuple[int, int, int]] = []
        sz = size[np.lexsort((r, size))] if order.size else size
        if order.size:
            cuts = np.concatenate(([0], np.nonzero(sz[1:] != sz[:-1])[0] + 1, [sz.size]))
            for a, b in zip(cuts[:-1], cuts[1:]):
                self.groups.append((int(sz[a]), int(a), int(b)))


def _room_mix_int32(g: np.ndarray, groups, acc: np.ndarray, sums: np.ndarray) -> None:
    """acc[rows] = room sum - own frame for legs laid out as in RoomLayout (g int16 or int32 rows)."""
    for k, a, b in groups:
        blk = g[a:b].reshape(-1, k, g.shape[1])
        dst = acc[a:b].reshape(blk.shape)
        if k == 1:
            dst[...] = 0
        elif k == 2:
            np.copyto(dst[:, 0], blk[:, 1])
            np.copyto(dst[:, 1], blk[:, 0])
        else:
            sm = sums[:blk.shape[0]]
            np.add.reduce(blk, axis=1, dtype=np.int32, keepdims=True, out=sm)
            np.subtract(sm, blk, out=dst)


def room_sums(frames: np.ndarray, rooms: np.ndarray) -> np.ndarray:
    """Sum of everyone's frame in each leg's room, int32 (L, n); zero rows for legs not in a room."""
    frames = np.asarray(frames)
    lay = RoomLayout(rooms)
    out = np.zeros((frames.shape[0], frames.shape[1]), dtype=np.int32)
    for k, a, b in lay.groups:
        legs = lay.order[a:b]
        blk = frames[legs].reshape(-1, k, frames.shape[1])
        tot = np.add.reduce(blk, axis=1, dtype=np.int32, keepdims=True)
        out[legs] = np.broadcast_to(tot, blk.shape).reshape(-1, frames.shape[1])
    return out


def mix_rooms(frames: np.ndarray, rooms: np.ndarray, layout: RoomLayout | None = None) -> np.ndarray:
    """Fast path for the default mask: each leg gets its room's sum minus its own frame."""
    frames = np.asarray(frames)
    lay = layout if layout is not None else RoomLayout(rooms)
    L, n = frames.shape
    out = np.zeros((L, n), dtype=np.int16)
    m = lay.order.size
    if m:
        g = np.take(frames, lay.order, axis=0)
        acc = np.empty((m, n), dtype=np.int32)
        _room_mix_int32(g, lay.groups, acc, np.empty((m, 1, n), dtype=np.int32))
        np.clip(acc, -32768, 32767, out=acc)
        out[lay.order] = acc
    return out


class CodecRoomMixer:
    """decode -> mix -> encode of G.711 frames for legs laid out by RoomLayout, on preallocated buffers.

    run(codes, groups, codec, out): codes (L, frame) uint8 rows in layout order (row i = leg order[i]),
    out (L, frame) uint8 gets what each leg hears, encoded in the same codec. Work is cache-blocked:
    `chunk` legs at a time go through decode (one lookup per two samples, biased int32), room sum minus
    own frame, and a saturating encode lookup, so the int32 intermediates never leave L1/L2.
    Two- and three-party rooms skip the arithmetic: a leg hears one other (a 256-entry transcode lookup)
    or two others (one lookup per sample in the 64 KiB g711.MIX2 table, indexed by the two codes).
    Exactly equal to decode, mix_rooms (saturated), encode.
    """

    def __init__(self, frame: int = FRAME, chunk: int = 192) -> None:
        if frame % 2:
            raise LocalProtocolError("frame must be even (two-sample decode lookups)")
        self.frame = frame
        self.chunk = chunk
        self._p64 = np.empty((chunk, frame // 2), dtype=np.uint64)
        self._p = self._p64.view(np.int32).reshape(chunk, frame)
        self._acc = np.empty((chunk, frame), dtype=np.int32)
        self._sum = np.empty((chunk, 1, frame), dtype=np.int32)
        self._rooms3 = max(1, chunk * 2 // 3)       # three-party rooms per block (~128 measured best)
        self._w16 = np.empty((self._rooms3, 3, frame), dtype=np.uint16)
        self._hi16 = np.empty((self._rooms3, 3, frame), dtype=np.uint16)
        self._ix16 = np.empty((self._rooms3, 3, frame), dtype=np.uint16)

    def run(self, codes: np.ndarray, groups, codec: str = "PCMU", out: np.ndarray | None = None) -> np.ndarray:
        F = self.frame
        if out is None:
            out = np.empty(codes.shape, dtype=np.uint8)
        dec = g711.DECODE_PAIR_BIASED[codec]
        enc = g711.ENCODE_SAT[codec]
        c16 = codes.view(np.uint16)
        take, add_reduce, subtract = np.take, np.add.reduce, np.subtract
        bias = g711.PAIR_BIAS
        for k, a, b in groups:
            if k == 1:
                out[a:b] = take(enc, np.full((b - a, F), g711.SAT_OFFSET, np.int32), mode="clip")
                continue
            if k == 2:           # each leg hears its peer only: one composed 256-entry lookup
                tr = g711.TRANSCODE[(codec, codec)]
                blk = codes[a:b].reshape(-1, 2, F)
                o = out[a:b].reshape(-1, 2, F)
                take(tr, blk[:, 1], out=o[:, 0], mode="clip")
                take(tr, blk[:, 0], out=o[:, 1], mode="clip")
                continue
            if k == 3:
                self._three(codes[a:b], out[a:b], g711.MIX2[codec])
                continue
            step = (self.chunk // k) * k or k
            if step > self.chunk:
                self._grow(step)
            adjust = (k - 3) * bias    # biased sums of k-1 others: sum + (k-1)*bias; the table wants sum + 2*bias
            for s in range(a, b, step):
                e = min(b, s + step)
                m = e - s
                r = m // k
                p = self._p[:m]
                take(dec, c16[s:e], out=self._p64[:m], mode="clip")
                blk = p.reshape(r, k, F)
                acc = self._acc[:m]
                sm = self._sum[:r]
                add_reduce(blk, axis=1, keepdims=True, out=sm)
                subtract(sm, blk, out=acc.reshape(r, k, F))
                if adjust:
                    subtract(acc, adjust, out=acc)
                    np.clip(acc, 0, 2 * g711.SAT_OFFSET - 1, out=acc)
                take(enc, acc, out=out[s:e], mode="clip")
        return out

    def _three(self, codes: np.ndarray, out: np.ndarray, mix2: np.ndarray) -> None:
        """Three-party rooms: leg i hears the other two, index (code_j << 8) | code_k into MIX2."""
        F = self.frame
        blk_all = codes.reshape(-1, 3, F)
        o_all = out.reshape(-1, 3, F)
        step = self._rooms3
        for r0 in range(0, blk_all.shape[0], step):
            blk = blk_all[r0:r0 + step]
            r = blk.shape[0]
            w, h, ix = self._w16[:r], self._hi16[:r], self._ix16[:r]
            np.copyto(w, blk)                           # uint8 -> uint16
            np.left_shift(w, 8, out=h)
            np.bitwise_or(h[:, 1], w[:, 2], out=ix[:, 0])
            np.bitwise_or(h[:, 0], w[:, 2], out=ix[:, 1])
            np.bitwise_or(h[:, 0], w[:, 1], out=ix[:, 2])
            np.take(mix2, ix, out=o_all[r0:r0 + r], mode="clip")

    def _grow(self, n: int) -> None:
        self.__init__(self.frame, n)


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
        self._code_room: dict[int, object] = {}     # the reverse: a room's code is forgotten in O(1)
        self._used = bytearray(capacity)            # rows held by a leg (how _high shrinks in O(1) amortised)
        self._room_refs: dict[int, int] = {}
        self._next_code = 0
        self._over: dict[tuple[int, int], bool] = {}
        self._over_arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.over_version = 0       # bumped on every override change (the engine's relay routes watch it)
        self._high = 0      # rows [0, _high) may be in use
        self._layout: RoomLayout | None = None     # rebuilt lazily after any room change
        self._g = np.zeros((capacity, frame), dtype=np.int16)       # frames gathered in layout order
        self._codec_mixer: CodecRoomMixer | None = None            # mix_codes() kernel, made on first use
        self._gc = np.zeros((capacity, frame), dtype=np.uint8)
        self._gc_out = np.zeros((capacity, frame), dtype=np.uint8)
        self._codes_out = np.zeros((capacity, frame), dtype=np.uint8)
        self._gacc = np.zeros((capacity, frame), dtype=np.int32)
        self._sums = np.zeros((capacity, 1, frame), dtype=np.int32)

    # --- legs and rooms --------------------------------------------------------------------------------

    def _grow(self) -> None:
        old = self._room.size
        new = old * 2
        # Zeroed (calloc'd) arrays cost no memory until a tick writes their rows: the int32 scratch of the
        # general mix() (2.5 KB a row) is written only when some room needs it. Scratch is rewritten before
        # every read, so only the frames are copied.
        for name in ("frames", "_out", "_acc", "_g", "_gacc", "_sums", "_gc", "_gc_out", "_codes_out"):
            a = getattr(self, name)
            b = np.zeros((new,) + a.shape[1:], dtype=a.dtype)
            if name == "frames":
                b[:old] = a
            setattr(self, name, b)
        room = np.full(new, -1, dtype=np.int64)
        room[:old] = self._room
        self._room = room
        self._used.extend(bytes(new - old))
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
        self._used[idx] = 1
        self.frames[idx] = 0
        self._high = max(self._high, idx + 1)
        self._layout = None
        self.set_room(leg_id, room)
        return idx

    def remove_leg(self, leg_id) -> None:
        idx = self._index.pop(leg_id)
        self.set_room_index(idx, None)
        if self._over:
            kept = {k: v for k, v in self._over.items() if idx not in k}
            if len(kept) != len(self._over):        # the relay routes re-decide every room on a change
                self._over, self._over_arrays = kept, None
                self.over_version += 1
        self.frames[idx] = 0
        heapq.heappush(self._free, idx)
        self._used[idx] = 0
        used, h = self._used, self._high
        while h and not used[h - 1]:        # each row is stepped over once per time it was taken: O(1) amortised
            h -= 1
        self._high = h
        self._layout = None

    def index(self, leg_id) -> int:
        return self._index[leg_id]

    def set_room(self, leg_id, room) -> None:
        self.set_room_index(self._index[leg_id], room)

    def set_room_index(self, idx: int, room) -> None:
        self._layout = None
        old = int(self._room[idx])
        if old >= 0:
            self._room_refs[old] -= 1
            if not self._room_refs[old]:
                del self._room_refs[old]
                del self._room_code[self._code_room.pop(old)]
        if room is None:
            self._room[idx] = -1
            return
        code = self._room_code.get(room)
        if code is None:
            code = self._room_code[room] = self._next_code
            self._code_room[code] = room
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
        self.over_version += 1

    def clear_hears(self, leg_id) -> None:
        """Drop every override involving the leg."""
        idx = self._index[leg_id]
        self._over = {k: v for k, v in self._over.items() if idx not in k}
        self._over_arrays = None
        self.over_version += 1

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

    def overridden_rows(self) -> set[int]:
        """Rows that appear in any supervisor override (as listener or speaker)."""
        return {i for k in self._over for i in k}

    def _overrides(self):
        if self._over_arrays is None:
            keys = np.array(list(self._over.keys()), dtype=np.int64).reshape(-1, 2)
            vals = np.array(list(self._over.values()), dtype=bool)
            self._over_arrays = (keys[:, 0], keys[:, 1], vals)
        return self._over_arrays

    @property
    def has_overrides(self) -> bool:
        return bool(self._over)

    def room_size(self, room) -> int:
        """How many legs are in `room` (0 for a room nobody is in)."""
        code = self._room_code.get(room)
        return 0 if code is None else self._room_refs[code]

    @property
    def rows(self) -> dict:
        """leg id -> row index (read only), for callers that look up every leg on every tick."""
        return self._index

    def _current_layout(self) -> RoomLayout:
        h = self._high
        lay = self._layout
        if lay is None or lay.n != h:
            lay = self._layout = RoomLayout(self._room[:h])
        return lay

    def mix_codes(self, codes: np.ndarray, codec: str) -> np.ndarray:
        """G.711 in, G.711 out: what each leg hears, for legs that all speak `codec` and no overrides.

        codes (>= high rows, frame) uint8, one frame per row. Returns a view (high, frame) into a reused
        buffer, equal to encode(mix(decode(codes))) row for row; rows of legs in no room are undefined.
        This is the CodecRoomMixer kernel (no int16 round trip), so the general mix() is needed only
        for supervisor overrides and rooms whose legs use different codecs.
        """
        if self._over:
            raise LocalProtocolError("mix_codes() does not apply supervisor overrides; use mix()")
        h = self._high
        if codes.shape[0] < h:
            raise LocalProtocolError(f"need at least {h} code rows, got {codes.shape[0]}")
        lay = self._current_layout()
        out = self._codes_out[:h]
        m = lay.order.size
        if m:
            if self._codec_mixer is None:
                self._codec_mixer = CodecRoomMixer(self.frame)
            g = self._gc[:m]
            np.take(codes, lay.order, axis=0, out=g, mode="clip")
            res = self._codec_mixer.run(g, lay.groups, codec, self._gc_out[:m])
            out[lay.order] = res
        return out

    def mix(self, frames: np.ndarray | None = None) -> np.ndarray:
        """frames (>= high rows, 160) int16, default self.frames -> int16 (high, 160) mixes."""
        h = self._high
        f = self.frames[:h] if frames is None else np.asarray(frames)[:h]
        if f.shape[0] < h:
            raise LocalProtocolError(f"need at least {h} frame rows, got {f.shape[0]}")
        rooms = self._room[:h]
        lay = self._current_layout()
        acc = self._acc[:h]
        m = lay.order.size
        if m:
            g = self._g[:m]
            np.take(f, lay.order, axis=0, out=g, mode="clip")      # rooms contiguous, grouped by size
            gacc = self._gacc[:m]
            _room_mix_int32(g, lay.groups, gacc, self._sums)
            acc[lay.order] = gacc
        if lay.outside.size:
            acc[lay.outside] = 0
        li, sj, val = self._overrides()
        if li.size:
            # Each override adds or removes exactly the difference from the room default for that pair.
            default = (rooms[li] == rooms[sj]) & (rooms[li] >= 0) & (li != sj)
            delta = val.astype(np.int32) - default.astype(np.int32)
            nz = delta != 0
            if nz.any():
                np.add.at(acc, li[nz], delta[nz, None] * f[sj[nz]].astype(np.int32))
        out = self._out[:h]
        np.clip(acc, -32768, 32767, out=out, casting="unsafe")
        return out
