"""TimerQueue: the earliest deadline it reports is always the earliest entry it holds, whatever the order of
arms and pops (it is kept between pops rather than looked for on every message)."""

from __future__ import annotations

from hypothesis import given, strategies as st

from softswitch.sip.timers import TimerQueue

DELAYS = [0.5, 1.0, 2.0, 4.0, 32.0, 0.0]
steps = st.lists(st.tuples(st.sampled_from(["arm", "pop"]), st.sampled_from(DELAYS), st.floats(0, 3)), max_size=60)


@given(steps)
def test_next_deadline_is_the_earliest_entry_held(ops):
    q = TimerQueue()
    now = 0.0
    held: list[tuple[float, int]] = []
    for n, (op, delay, advance) in enumerate(ops):
        now += advance
        if op == "arm":
            q.arm(now, delay, "tx", "t", n)
            held.append((now + delay, n))
        else:
            due = q.pop_due(now)
            expected = sorted(t for at, t in held if at <= now)
            assert sorted(token for _, _, token in due) == expected
            held = [(at, t) for at, t in held if at > now]
        assert q.next_deadline() == (min(at for at, _ in held) if held else None)
        assert len(q) == len(held)
