"""The drift-free ptime schedule, and the catch-up that packet paths start when the loop is late.

Tick n is due at ``t0 + n * ptime`` on the engine's clock (``time.monotonic``, which is also the loop's
clock) and a ``loop.call_at`` timer runs it, so there is no drift. A loop runs its timers only between
iterations, and under a heavy packet load one iteration can spend many milliseconds on I/O; so the
packet paths also compare the clock with ``next_due`` and call ``run_due`` themselves. Missed ticks run
back to back, up to ``max_catchup + 1`` per call (counted in ``late_ticks``); a longer gap is not
replayed (``skipped_ticks``) and the schedule stays anchored at t0.
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger("media.engine")


class Ticker:
    """Calls ``self._tick(n, due_time)`` for every tick n of the schedule; subclasses implement _tick."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ptime: float, max_catchup: int) -> None:
        self.loop = loop
        self.ptime = ptime
        self.max_catchup = max_catchup
        self._handle: asyncio.TimerHandle | None = None
        # The schedule's clock: time.monotonic() when it is the loop's clock (asyncio's and uvloop's are):
        # finer than uvloop's whole milliseconds for arrival times, and cheaper to read per packet.
        self.clock = time.monotonic if abs(self.loop.time() - time.monotonic()) < 0.01 else self.loop.time
        self.t0: float | None = None
        self.tick_no = 0                 # index of the next tick to run
        self.next_due = float("inf")     # clock time of tick tick_no while running; packet paths compare
        self.running = False
        self._stats = dict(ticks=0, late_ticks=0, skipped_ticks=0, max_lateness_ms=0.0, max_tick_ms=0.0)

    def _tick(self, n: int, now: float) -> None:
        raise NotImplementedError

    def _start_ticking(self) -> None:
        self.running = True
        self.t0 = self.next_due = self.clock()
        self.tick_no = 0
        self._handle = self.loop.call_at(self.t0, self._on_timer)

    def _stop_ticking(self) -> None:
        self.running = False
        self.next_due = float("inf")
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def due(self, n: int) -> float:
        """Clock time (self.clock) at which tick n is due."""
        return self.t0 + n * self.ptime

    def _on_timer(self) -> None:
        self._handle = None
        self.run_due()

    def run_due(self) -> None:
        """Run the ticks that are due, then set the timer for the next one.

        Called by the timer and also by the packet paths once the clock has passed ``next_due``: under
        a heavy packet load one loop iteration can handle I/O for many milliseconds before any timer
        runs, and the media clock must not wait for it.
        """
        if not self.running:
            return
        now = self.clock()
        if now < self.next_due - 0.001:
            # A timer a little early (uvloop rounds delays to whole ms): wait again, at least 1 ms, so
            # that a delay rounded down to zero cannot spin.
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self.loop.call_at(max(self.next_due, self.loop.time() + 0.001), self._on_timer)
            return
        self.next_due = float("inf")        # no re-entry from a packet path while the ticks run
        st = self._stats
        lateness = now - self.due(self.tick_no)
        if lateness * 1000 > st["max_lateness_ms"]:
            st["max_lateness_ms"] = lateness * 1000
        behind = int(lateness / self.ptime)         # ticks that are already due after this one
        if behind > self.max_catchup:
            skip = behind - self.max_catchup
            st["skipped_ticks"] += skip
            self.tick_no += skip    # not replayed; RTP timestamps still follow real time
        first = True
        budget = self.max_catchup + 1     # an overloaded host must not starve the loop in here forever
        while True:
            n = self.tick_no
            if not first:
                st["late_ticks"] += 1
            first = False
            started = time.perf_counter()
            try:
                self._tick(n, self.due(n))
            except Exception:   # noqa: BLE001 - keep the clock running whatever happens
                log.exception("media: tick %d failed", n)
            cost = (time.perf_counter() - started) * 1000
            if cost > st["max_tick_ms"]:
                st["max_tick_ms"] = cost
            st["ticks"] += 1
            self.tick_no = n + 1
            budget -= 1
            if self.due(self.tick_no) > self.clock() or not self.running or budget <= 0:
                break
        if self.running:
            self._schedule()

    def _schedule(self) -> None:
        due = self.due(self.tick_no)
        now = self.clock()
        # Still behind after a whole catch-up budget: only the timer (once per loop iteration) goes on
        # catching up. The packet paths wait a tick; otherwise every datagram would start another budget
        # and an overloaded engine would starve the loop (SIP included) after all.
        self.next_due = due if due > now else now + self.ptime
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self.loop.call_at(due, self._on_timer)
