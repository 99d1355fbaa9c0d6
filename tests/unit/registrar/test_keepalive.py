"""The keepalive schedule, driven by a fake clock: spread, verdicts, and a cost that follows the due probes."""

from __future__ import annotations

import heapq
import random

from softswitch.registrar.keepalive import Failed, Keepalive, KeepaliveOptions, Probe, Reachable, Unreachable


def run_until(k: Keepalive, start: float, end: float, answer=lambda key: True, step: float = 0.25):
    """Poll every `step` seconds of fake time; answer each probe at once when answer(key) says so."""
    events, now = [], start
    while now <= end:
        for eff in k.poll(now):
            events.append((now, eff))
            if isinstance(eff, Probe) and answer(eff.key):
                events.extend((now, e) for e in k.answered(eff.key, eff.token, now))
        now += step
    return events


def test_every_binding_is_probed_once_per_interval_spread_over_it():
    k = Keepalive(KeepaliveOptions(interval=30, timeout=5, failures=3), random.Random(1))
    for i in range(300):
        k.add(("aor", i), 0.0)
    events = run_until(k, 0.0, 30.0)
    first = [t for t, e in events if isinstance(e, Probe)]
    assert len(first) == 300                      # each once in the first interval
    per_tenth = [sum(1 for t in first if 3 * s <= t < 3 * (s + 1)) for s in range(10)]
    assert min(per_tenth) > 10 and max(per_tenth) < 60, per_tenth     # spread, not a burst
    later = run_until(k, 30.25, 60.0)
    assert sorted(e.key for _, e in later if isinstance(e, Probe)) == sorted(("aor", i) for i in range(300))


def test_silence_makes_a_binding_unreachable_after_the_failures_and_an_answer_brings_it_back():
    k = Keepalive(KeepaliveOptions(interval=10, timeout=2, failures=3), random.Random(2))
    k.add("phone", 0.0)
    alive = {"phone": True}
    run_until(k, 0.0, 30, answer=lambda key: alive[key])
    assert not k.is_unreachable("phone")
    alive["phone"] = False
    events = run_until(k, 30.25, 70, answer=lambda key: alive[key])
    verdicts = [(t, e) for t, e in events if isinstance(e, (Unreachable, Reachable))]
    failed = [e for _, e in events if isinstance(e, Failed)]
    assert len(failed) >= 3 and all(e.key == "phone" and e.token > 0 for e in failed)   # each probe given up
    assert [e for _, e in verdicts] == [Unreachable("phone")]
    # found within failures x interval (+ the timeout) of the phone going silent
    assert verdicts[0][0] - 30 <= 3 * 10 + 2
    assert k.is_unreachable("phone")
    alive["phone"] = True
    events = run_until(k, 70.25, 85, answer=lambda key: alive[key])
    assert [e for _, e in events if isinstance(e, (Unreachable, Reachable))] == [Reachable("phone")]
    assert not k.is_unreachable("phone")


def test_one_missed_probe_is_not_enough_and_a_registration_counts_as_life():
    k = Keepalive(KeepaliveOptions(interval=10, timeout=2, failures=2), random.Random(3))
    k.add("p", 0.0)
    misses = iter([False, True, False, False])
    events = run_until(k, 0.0, 45, answer=lambda key: next(misses, False))
    assert [e for _, e in events if isinstance(e, Unreachable)] == [Unreachable("p")]
    assert k.alive("p", 46.0) == [Reachable("p")]
    assert k.alive("p", 46.0) == []


def test_removed_bindings_are_forgotten_and_late_answers_are_harmless():
    k = Keepalive(KeepaliveOptions(interval=10, timeout=2, failures=1), random.Random(4))
    k.add("a", 0.0)
    k.add("b", 0.0)
    probes = [e for e in k.poll(10.0) if isinstance(e, Probe)]
    assert {p.key for p in probes} == {"a", "b"}
    k.remove("a")
    assert k.answered("a", probes[0].token, 10.5) == []
    out = k.poll(13.0)
    late = next(p for p in probes if p.key == "b")
    assert out[:2] == [Failed("b", late.token), Unreachable("b")] and all(e.key == "b" for e in out)
    assert len(k) == 1 and "a" not in k
    assert k.answered("b", late.token, 13.5) == [Reachable("b")]


def test_adding_a_known_binding_keeps_its_schedule_and_disabled_watches_nothing():
    k = Keepalive(KeepaliveOptions(interval=10, timeout=2, failures=1), random.Random(5))
    k.add("a", 0.0)
    at = k.next_deadline()
    k.add("a", 5.0)
    assert k.next_deadline() == at
    off = Keepalive(KeepaliveOptions(interval=0), random.Random(5))
    off.add("a", 0.0)
    assert len(off) == 0 and off.next_deadline() is None


def test_a_poll_costs_the_due_probes_not_the_watched_bindings():
    """20,000 bindings watched, a poll at a moment where few are due pops only those heap items."""
    k = Keepalive(KeepaliveOptions(interval=30, timeout=5, failures=3), random.Random(6))
    for i in range(20000):
        k.add(i, 0.0)
    popped = []
    real_pop = heapq.heappop

    def counting_pop(heap):
        item = real_pop(heap)
        popped.append(item)
        return item
    heapq.heappop = counting_pop          # the module's heapq is this one
    try:
        out = k.poll(0.015)             # 0.05 % of the interval
    finally:
        heapq.heappop = real_pop
    assert len(out) == len(popped) < 40


def test_a_binding_that_must_prove_itself_is_probed_soon_and_counts_once_it_answers():
    k = Keepalive(KeepaliveOptions(interval=30, timeout=5, failures=3), random.Random(7))
    k.add("kept", 100.0, unreachable=True, within=10)
    assert k.is_unreachable("kept") and k.next_deadline() <= 110.0
    (probe,) = k.poll(110.0)
    assert k.answered("kept", probe.token, 110.1) == [Reachable("kept")]
