"""Adaptive jitter buffer: one 20 ms frame per get(), played out in sequence-number order.

Times (arrival, now) are seconds on the caller's clock. The buffer "level" is the playout time queued,
in frames: highest buffered sequence number - next to play + 1 (holes count, they will be concealed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .rtp import MAX_MISORDER, seq_diff, ts_diff


@dataclass
class Frame:
    seq: int                    # 16-bit RTP sequence number
    timestamp: int
    payload: bytes | None       # None: lost, the caller conceals (repeat or silence)

    @property
    def lost(self) -> bool:
        return self.payload is None


@dataclass
class JitterStats:
    played: int = 0
    lost: int = 0           # holes concealed
    late: int = 0           # arrived after their playout slot
    duplicates: int = 0
    dropped: int = 0        # discarded to shrink a level that stays too high (sender clock fast)
    stretched: int = 0      # ticks held back to grow a level that stays too low (sender clock slow)
    underruns: int = 0      # ticks with nothing to play
    resyncs: int = 0


@dataclass
class JitterBuffer:
    """min_delay and max_delay are read at construction (as min_frames/max_frames); set them there."""

    frame_time: float = 0.020
    clock_rate: int = 8000
    min_delay: float = 0.040
    max_delay: float = 0.200
    jitter_factor: float = 3.0      # target covers this many mean deviations (J of RFC 3550 A.8)
    patience: int = 50              # ticks a level must stay off target before drift correction (1 s)
    late_decay: int = 250           # ticks without a late packet before a late-boost frame is given back
    max_ahead: int = 50             # a packet this many frames ahead of playout means the sender restarted
    stats: JitterStats = field(default_factory=JitterStats)

    def __post_init__(self) -> None:
        # Delay bounds in frames, fixed at construction: get() runs for every stream on every tick.
        self.min_frames = max(1, round(self.min_delay / self.frame_time))
        self.max_frames = max(self.min_frames, round(self.max_delay / self.frame_time))
        self.jitter = 0.0           # seconds
        self._buf: dict[int, tuple[int, bytes]] = {}
        self._played: set[int] = set()
        self._reset()

    def restart(self) -> None:
        """Forget what is queued and where playout stands (the statistics and jitter estimate stay)."""
        self._reset()

    def _reset(self) -> None:
        self._buf.clear()
        self._played.clear()
        self._ref: int | None = None    # extended seq used to unwrap new 16-bit numbers
        self._next: int | None = None   # extended seq of the next frame to play
        self._first_arrival = 0.0
        self._last: tuple[float, int] | None = None
        self._starved = False
        self._high_run = self._low_run = 0
        self._boost = 0
        self._since_late = 0
        self._jump: tuple[int, int, bytes, float] | None = None   # unconfirmed packet after a big jump

    # --- delay target --------------------------------------------------------------------------------

    @property
    def target(self) -> int:
        """Target level in frames, between min_delay and max_delay."""
        want = math.ceil(self.jitter_factor * self.jitter / self.frame_time) + 1 + self._boost
        return min(self.max_frames, max(self.min_frames, want))

    @property
    def level(self) -> int:
        if not self._buf or self._next is None:
            return len(self._buf) and max(self._buf) - min(self._buf) + 1
        return max(0, max(self._buf) - self._next + 1)

    # --- input ---------------------------------------------------------------------------------------

    def put(self, seq: int, timestamp: int, payload: bytes, arrival: float) -> bool:
        """Queue a packet; False if it was dropped (duplicate, too late)."""
        ref = self._next if self._next is not None else self._ref
        ext = seq if ref is None else ref + seq_diff(seq, ref & 0xFFFF)
        if self._next is not None and not -MAX_MISORDER <= ext - self._next < self.max_ahead:
            # Like RFC 3550 A.1, a big jump is believed only when the next packet continues from it.
            cand = self._jump
            if cand is None or seq != (cand[0] + 1) & 0xFFFF:
                self._jump = (seq, timestamp, bytes(payload), arrival)
                return False
            self.stats.resyncs += 1
            self._reset()
            self.put(*cand)
            return self.put(seq, timestamp, payload, arrival)
        self._jump = None
        if self._ref is None:
            self._ref = ext
            self._first_arrival = arrival
        if ext in self._buf or ext in self._played:
            self.stats.duplicates += 1
            return False
        if self._next is not None and ext < self._next:
            # Its slot has passed: the delay was too small, so hold one more frame for a while.
            self.stats.late += 1
            self._boost = min(self._boost + 1, self.max_frames)
            self._since_late = 0
            return False
        self._buf[ext] = (timestamp, bytes(payload))
        self._estimate_jitter(timestamp, arrival)
        return True

    def _estimate_jitter(self, timestamp: int, arrival: float) -> None:
        if self._last is not None:
            # RFC 3550 A.8: D = (Rj - Ri) - (Sj - Si); J += (|D| - J) / 16.
            d = (arrival - self._last[0]) - ts_diff(timestamp, self._last[1]) / self.clock_rate
            self.jitter += (abs(d) - self.jitter) / 16.0
        self._last = (arrival, timestamp)

    # --- output --------------------------------------------------------------------------------------

    def get(self, now: float) -> Frame | None:
        """Next 20 ms frame; None when nothing is due (waiting, underrun, or stretching for drift)."""
        self._since_late += 1
        if self._boost and self._since_late >= self.late_decay:
            self._boost -= 1
            self._since_late = 0
        if self._next is None and not self._buf:
            return None             # nothing received yet (or since a reset)
        target = self.target
        if self._next is None:
            # Start once a target's worth is queued, or the first packet has waited the target delay.
            if self.level < target and now - self._first_arrival < target * self.frame_time:
                return None
            self._next = min(self._buf)
        level = self.level
        if level == 0:
            self.stats.underruns += 1
            self._starved = True
            self._high_run = self._low_run = 0
            return None
        if self._starved and self._next not in self._buf:
            # After a starvation the missing frames are better skipped than played late as holes.
            first = min(self._buf)
            self.stats.lost += first - self._next
            self._next = first
            level = self.level
        self._starved = False
        self._high_run = self._high_run + 1 if level > target + 1 else 0
        self._low_run = self._low_run + 1 if level < target else 0
        # Far above target (after a stall) sheds frames quickly; a drift-sized excess waits `patience`.
        if self._high_run * (level - target - 1) >= self.patience and level >= 2:
            self._high_run = 0
            self.stats.dropped += 1
            self._buf.pop(self._next, None)
            self._advance(played=False)
        elif self._low_run >= self.patience:
            self._low_run = 0
            self.stats.stretched += 1
            return None
        return self._play()

    def _advance(self, played: bool) -> None:
        # Remember recently played slots so a second copy counts as a duplicate rather than late.
        if played:
            self._played.add(self._next)
            if len(self._played) > 256:
                self._played = {s for s in self._played if s >= self._next - 128}
        self._next += 1

    def _play(self) -> Frame:
        ext = self._next
        item = self._buf.pop(ext, None)
        self._advance(played=item is not None)
        if item is None:
            self.stats.lost += 1
            prev = self._buf.get(ext + 1)
            # Best guess of the lost frame's timestamp, for callers that need it.
            ts = (prev[0] - round(self.frame_time * self.clock_rate)) & 0xFFFFFFFF if prev else 0
            return Frame(ext & 0xFFFF, ts, None)
        self.stats.played += 1
        return Frame(ext & 0xFFFF, item[0], item[1])
