"""The media engine's schedule alone (media/engine/ticker.py), on a fake loop whose clock the test moves."""

from __future__ import annotations

import pytest

from media.engine.ticker import Ticker


class FakeLoop:
    """time() and call_at() of an event loop; the test runs the timer itself."""

    def __init__(self) -> None:
        self.now = 1000.0           # far from time.monotonic(): the ticker must take this clock
        self.timers: list[FakeHandle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback) -> FakeHandle:
        h = FakeHandle(when, callback)
        self.timers.append(h)
        return h

    def fire(self) -> None:
        """Run the live timer (the loop would, at or after its time)."""
        live = [h for h in self.timers if not h.cancelled]
        assert len(live) == 1, "exactly one timer is armed"
        self.timers.clear()
        live[0].callback()


class FakeHandle:
    def __init__(self, when: float, callback) -> None:
        self._when, self.callback, self.cancelled = when, callback, False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self.cancelled = True


class Recorder(Ticker):
    def __init__(self, loop: FakeLoop, max_catchup: int = 50) -> None:
        super().__init__(loop, 0.02, max_catchup)
        self.ran: list[tuple[int, float]] = []

    def _tick(self, n: int, now: float) -> None:
        self.ran.append((n, round(now - self.t0, 6)))


def _armed(loop: FakeLoop) -> float:
    return [h for h in loop.timers if not h.cancelled][0].when()


def test_ticks_are_due_on_a_fixed_grid_and_late_ones_run_back_to_back():
    loop = FakeLoop()
    t = Recorder(loop)
    t._start_ticking()
    assert t.clock == loop.time and _armed(loop) == 1000.0
    loop.fire()
    assert t.ran == [(0, 0.0)] and _armed(loop) == pytest.approx(1000.02)
    loop.now = 1000.065                                  # three more ticks are due: 1, 2, 3
    loop.fire()
    assert t.ran[1:] == [(1, 0.02), (2, 0.04), (3, 0.06)]
    assert (t._stats["ticks"], t._stats["late_ticks"], t._stats["skipped_ticks"]) == (4, 2, 0)
    assert _armed(loop) == pytest.approx(1000.08)       # the next tick on the grid: no drift


def test_a_long_gap_is_not_replayed_but_the_grid_stays_anchored():
    loop = FakeLoop()
    t = Recorder(loop, max_catchup=3)
    t._start_ticking()
    loop.fire()
    loop.now = 1000.0 + 0.02 * 10 + 0.001               # ticks 1..10 due: only the last 4 run
    loop.fire()
    assert [n for n, _ in t.ran] == [0, 7, 8, 9, 10]
    assert t._stats["skipped_ticks"] == 6 and t.next_due == pytest.approx(t.due(11))


def test_an_early_timer_waits_again_without_ticking():
    loop = FakeLoop()
    t = Recorder(loop)
    t._start_ticking()
    loop.fire()
    loop.now = 1000.0185                                 # 1.5 ms before tick 1
    loop.fire()
    assert len(t.ran) == 1 and _armed(loop) == pytest.approx(1000.02)
    loop.now = 1000.0195                                 # within 1 ms: due, and the wait is never zero
    loop.fire()
    assert [n for n, _ in t.ran] == [0, 1]


def test_packet_paths_see_next_due_and_stop_ends_the_schedule():
    loop = FakeLoop()
    t = Recorder(loop)
    assert t.next_due == float("inf")                    # not running: packet paths never call run_due
    t._start_ticking()
    loop.fire()
    assert t.next_due == pytest.approx(1000.02)
    loop.now = 1000.021
    t.run_due()                                          # a packet path found the clock past next_due
    assert [n for n, _ in t.ran] == [0, 1]
    t._stop_ticking()
    assert t.next_due == float("inf") and all(h.cancelled for h in loop.timers)
    t.run_due()
    assert [n for n, _ in t.ran] == [0, 1]


def test_a_failing_tick_does_not_stop_the_clock():
    loop = FakeLoop()
    t = Recorder(loop)
    ran = []

    def bad(n, now):
        ran.append(n)
        raise RuntimeError("boom")
    t._tick = bad
    t._start_ticking()
    loop.fire()
    loop.now = 1000.02
    loop.fire()
    assert ran == [0, 1] and t._stats["ticks"] == 2
