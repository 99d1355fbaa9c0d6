"""The wallboard's trend ring: per-minute samples per queue, bounded, driven by a fake clock."""

from __future__ import annotations

from acd import Acd, Agent, QueueSpec
from softswitch.api.trend import TrendRing


def view(waiting=0, answered=0, abandoned=0, short=0, in_sl=0):
    return {"waiting": waiting, "answered": answered, "abandoned": abandoned, "short_abandoned": short,
            "answered_in_service_level": in_sl}


T0 = 1_800_000_000.0          # a minute boundary


def test_a_minute_keeps_the_most_and_last_waiting_and_what_the_counters_moved_by():
    ring = TrendRing()
    ring.observe(T0 + 1, {"q": view(waiting=1, answered=5, abandoned=2, short=1, in_sl=4)})      # baseline
    ring.observe(T0 + 20, {"q": view(waiting=4, answered=7, abandoned=4, short=2, in_sl=5)})
    ring.observe(T0 + 50, {"q": view(waiting=2, answered=8, abandoned=4, short=2, in_sl=6)})
    (m,) = ring.series("q", T0 + 55)
    assert m == {"t": T0, "waiting_max": 4, "waiting": 2, "answered": 3, "abandoned": 1, "short_abandoned": 1,
                 "service_level": 0.5}       # 2 of the 3 answered within the service level, 1 counted abandon
    ring.observe(T0 + 61, {"q": view(waiting=0, answered=9, abandoned=4, short=2, in_sl=7)})
    first, second = ring.series("q", T0 + 61)
    assert first["t"] == T0 and second == {"t": T0 + 60, "waiting_max": 0, "waiting": 0, "answered": 1,
                                           "abandoned": 0, "short_abandoned": 0, "service_level": 1.0}


def test_no_calls_in_a_minute_has_no_service_level():
    ring = TrendRing()
    ring.observe(T0, {"q": view(waiting=3)})
    ring.observe(T0 + 30, {"q": view(waiting=3)})
    assert ring.series("q", T0 + 30)[0]["service_level"] is None


def test_the_ring_is_bounded_and_keeps_gaps_as_empty_minutes():
    ring = TrendRing(minutes=60)
    for i in range(500):                              # 500 minutes, observed every 20 s
        for s in (0, 20, 40):
            ring.observe(T0 + 60 * i + s, {"q": view(waiting=i % 7, answered=i)})
    now = T0 + 60 * 499 + 40
    series = ring.series("q", now)
    assert len(series) == 60 and len(ring.queues["q"].ring) == 60
    assert [m["t"] for m in series] == [T0 + 60 * i for i in range(440, 500)]
    assert all(m["answered"] == 1 for m in series)
    # nine silent minutes (a stalled node): they are there, empty, and the counters' jump lands in the next one
    ring.observe(now + 600, {"q": view(waiting=1, answered=520)})
    series = ring.series("q", now + 600)
    assert len(series) == 60 and series[-1]["t"] == T0 + 60 * 509
    gap = series[-10:-1]
    assert [m["waiting_max"] for m in gap] == [None] * 9 and sum(m["answered"] for m in gap) == 0
    assert series[-1]["answered"] == 21
    # a very long silence does not loop minute by minute through it
    ring.observe(now + 10 * 365 * 86400, {"q": view()})
    assert len(ring.queues["q"].ring) == 60


def test_reset_counters_and_removed_queues():
    ring = TrendRing()
    ring.observe(T0, {"q": view(answered=10), "r": view()})
    ring.observe(T0 + 10, {"q": view(answered=2)})        # q made anew by a reload: 2 new answers; r removed
    assert ring.series("q", T0 + 10)[0]["answered"] == 2
    assert ring.series("r", T0 + 10) == [] and "r" not in ring.queues
    assert ring.series("nope", T0) == []


def test_the_clock_stepping_back_adds_to_the_newest_minute():
    ring = TrendRing()
    ring.observe(T0 + 120, {"q": view(waiting=1)})
    ring.observe(T0 + 30, {"q": view(waiting=5, answered=1)})
    (m,) = ring.series("q", T0 + 120)
    assert m["t"] == T0 + 120 and m["waiting_max"] == 5 and m["answered"] == 1


def test_fed_by_the_acd_views_on_a_fake_clock():
    now = [T0]
    acd = Acd([QueueSpec("q", service_level=20, short_abandon=5)], [Agent("a1", "70001", {"q": 0})], lambda: now[0])
    acd.registration("a1", True)
    acd.sign_in("a1")
    acd.set_state("a1", "busy", "lunch")        # signed in, not taking calls: callers wait
    ring = TrendRing()
    ring.observe(now[0], {"q": acd.queue_view("q")})
    acd.enqueue("c1", "q")
    acd.enqueue("c2", "q")
    now[0] += 2
    ring.observe(now[0], {"q": acd.queue_view("q")})
    acd.caller_gone("c1")                   # after 2 s: a short abandon
    now[0] += 28
    acd.caller_gone("c2")                   # after 30 s: counted
    ring.observe(now[0], {"q": acd.queue_view("q")})
    (m,) = ring.series("q", now[0])
    assert (m["waiting_max"], m["waiting"], m["abandoned"], m["short_abandoned"]) == (2, 0, 1, 1)
    assert m["service_level"] == 0.0
