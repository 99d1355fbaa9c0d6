"""LegTimers: every leg's session timer on shared loop timers, on a fake loop (no real time)."""

from __future__ import annotations

from softswitch.b2bua.leg_timers import GRAIN, LegTimers


class FakeLoop:
    def __init__(self) -> None:
        self.now = 1000.0
        self.timers: list[list] = []      # [when, fn, args, cancelled]
        self.errors: list[dict] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when, fn, *args):
        t = Handle(when, fn, args)
        self.timers.append(t)
        return t

    def call_exception_handler(self, ctx) -> None:
        self.errors.append(ctx)

    def run_until(self, t: float) -> None:
        while True:
            due = sorted((h for h in self.timers if not h.cancelled and h.when <= t), key=lambda h: h.when)
            if not due:
                break
            h = due[0]
            self.timers.remove(h)
            self.now = max(self.now, h.when)
            h.fn(*h.args)
        self.now = t

    def live(self) -> int:
        return sum(1 for h in self.timers if not h.cancelled)


class Handle:
    def __init__(self, when, fn, args) -> None:
        self.when, self.fn, self.args, self.cancelled = when, fn, args, False

    def cancel(self) -> None:
        self.cancelled = True


def test_timers_due_together_share_one_loop_timer_and_never_fire_early():
    loop = FakeLoop()
    timers = LegTimers(loop)
    fired: list[tuple[str, float]] = []
    for i in range(50):
        loop.now = 1000.0 + i * 0.001            # answered a millisecond apart
        timers.arm(f"leg{i}", 900.0, lambda i=i: fired.append((f"leg{i}", loop.now)))
    assert loop.live() <= 2 and len(timers) == 50
    loop.run_until(1899.9)
    assert fired == []
    loop.run_until(1900.0 + 0.049 + GRAIN)
    assert len(fired) == 50
    for name, at in fired:
        armed = 1000.0 + int(name[3:]) * 0.001
        assert armed + 900.0 <= at + 1e-9 <= armed + 900.0 + GRAIN
    assert len(timers) == 0 and loop.live() == 0


def test_cancel_and_rearm_drop_the_old_timer_at_once():
    loop = FakeLoop()
    timers = LegTimers(loop)
    fired: list[str] = []
    timers.arm("a", 10.0, lambda: fired.append("a1"))
    timers.arm("a", 20.0, lambda: fired.append("a2"))        # a refresh re-arms
    timers.arm("b", 10.0, lambda: fired.append("b"))
    timers.cancel("b")
    timers.cancel("b")                                       # twice is harmless
    assert len(timers) == 1 and loop.live() == 1             # no loop timer is left for b nor a's first
    loop.run_until(1040.0)
    assert fired == ["a2"]


def test_a_timer_cancelled_by_another_of_the_same_slot_does_not_fire():
    loop = FakeLoop()
    timers = LegTimers(loop)
    fired: list[str] = []
    # the customer's expiry ends the call, which stops the agent leg's timer due in the same slot
    timers.arm("customer", 5.0, lambda: (fired.append("customer"), timers.cancel("agent")))
    timers.arm("agent", 5.0, lambda: fired.append("agent"))
    loop.run_until(1010.0)
    assert fired == ["customer"] and len(timers) == 0


def test_a_failing_callback_is_reported_and_the_others_still_fire():
    loop = FakeLoop()
    timers = LegTimers(loop)
    fired: list[str] = []
    timers.arm("bad", 1.0, lambda: 1 / 0)
    timers.arm("good", 1.0, lambda: fired.append("good"))
    loop.run_until(1002.0)
    assert fired == ["good"] and len(loop.errors) == 1
    assert isinstance(loop.errors[0]["exception"], ZeroDivisionError)


def test_a_callback_may_rearm_its_own_timer():
    loop = FakeLoop()
    timers = LegTimers(loop)
    fired: list[float] = []

    def refresh() -> None:
        fired.append(loop.now)
        if len(fired) < 3:
            timers.arm("leg", 30.0, refresh)
    timers.arm("leg", 30.0, refresh)
    loop.run_until(1200.0)
    assert len(fired) == 3 and len(timers) == 0
