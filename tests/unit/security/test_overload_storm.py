"""The overload policy under a registration storm on a fake clock (tests/unit/security/storm.py): goodput past
capacity, recovery after it, and the retransmissions a late queue is full of."""

from __future__ import annotations

import statistics

from softswitch.security.overload import (ADMIT, DROP, MAX_SEEN, REJECT, OverloadOptions, OverloadPolicy, peek,
                                         request_key)

from .storm import Costs, register, run


def storm(factor: float, **kw):
    costs = Costs()
    policy = OverloadPolicy(OverloadOptions())
    res = run(policy, [(10, factor * costs.capacity), (6, 0.5 * costs.capacity)], costs, **kw)
    return res, policy, costs.capacity


def test_below_capacity_nothing_is_shed():
    res, policy, capacity = storm(0.9)
    assert not res.failed_at and res.retransmissions == 0
    assert sum(policy.stats.values()) == 0


def test_at_twice_capacity_goodput_stays_above_ninety_percent_and_recovers_within_two_seconds():
    for factor in (1.5, 2.0, 3.0):
        res, policy, capacity = storm(factor)
        during = res.per_second(16)[1:10]
        assert statistics.median(during) >= 0.9 * capacity, (factor, during)
        assert min(during) >= 0.8 * capacity, (factor, during)
        assert policy.stats["rejected"] > 0
        # every phone that starts registering 2 s after the storm is served
        assert not [f for f in res.failed_at if f[0] >= 12.0], factor
        assert all(why == "503" for _, _, why in res.failed_at)     # shed with an answer, never left to time out


def test_a_load_generator_reading_its_answers_late_loses_no_registration_in_progress():
    # phones read their answers 0.6 s late for a second: every request of that second is retransmitted;
    # and they send both REGISTERs of a registration with one branch, as SIPp does
    res, policy, capacity = storm(2.0, lag=lambda t: 0.6 if 2 <= t < 3 else 0.0, one_branch=True)
    assert res.retransmissions > 1000 and policy.stats["dropped_retransmission"] > 0
    assert statistics.median(res.per_second(16)[1:10]) >= 0.9 * capacity
    assert all(why == "503" for _, _, why in res.failed_at)
    assert not [f for f in res.failed_at if f[0] >= 12.0]


def test_a_late_copy_of_a_request_taken_in_is_dropped_before_and_while_shedding():
    p = OverloadPolicy(OverloadOptions(queue_delay=0.2, sustain=0.5))
    first, second = register(1, 1), register(1, 2)
    assert p.shed(first, 0.3, 10.0) == (ADMIT, None)       # late, not yet shedding: served, remembered
    assert p.shed(first, 0.4, 10.2) == (DROP, None)        # its retransmission, queued behind it
    assert p.shed(second, 0.3, 10.3) == (ADMIT, None)
    assert p.shed(register(2, 1), 0.3, 10.6)[0] == REJECT  # shedding now: new work gets 503
    assert p.shed(register(2, 1), 0.3, 10.7) == (DROP, None)   # and its copy nothing
    assert p.shed(second, 0.5, 10.8) == (DROP, None)
    # a copy that differs in bytes but not in branch and method is the same request
    assert p.shed(first.replace(b"User-Agent: phone", b"User-Agent: phone2"), 0.3, 10.9) == (DROP, None)
    # the second REGISTER of a challenge sent with the first one's branch (SIPp does) is not a copy of it
    reused = register(1, 2).replace(b"branch=z9hG4bK-1-2", b"branch=z9hG4bK-1-1")
    assert request_key(peek(reused)) != request_key(peek(first))
    # a CANCEL carries its INVITE's branch and is not a copy of it
    cancel = first.replace(b"REGISTER sip", b"CANCEL sip").replace(b"1 REGISTER", b"1 CANCEL")
    assert request_key(peek(cancel)) != request_key(peek(first))
    assert p.shed(cancel, 0.3, 10.9) == (ADMIT, None)
    assert p.stats["dropped_retransmission"] == 4
    # copies are forgotten once their client has given up
    assert p.shed(first, 0.3, 10.0 + p.o.give_up + 1) == (ADMIT, None)


def test_while_shedding_work_served_on_time_is_remembered_without_a_parse():
    p = OverloadPolicy(OverloadOptions(queue_delay=0.2, sustain=0.5))
    assert p.shed(register(1, 1), 0.3, 5.0) == (ADMIT, None)
    assert p.shed(register(2, 1), 0.3, 5.5)[0] == REJECT   # late for 0.5 s: shedding
    on_time = register(3, 1)
    assert p.watching
    assert p.take(on_time, 0.05, 5.6) == (ADMIT, None)     # on time: served as usual
    assert p.take(on_time, 0.3, 5.7) == (DROP, None)       # its late copy: the 401 is on its way, no 503
    assert p.take(register(4, 1), 0.3, 5.7)[0] == REJECT
    assert p.take(register(5, 1), 0.05, 6.3) == (ADMIT, None)   # nothing late for > sustain: episode over
    assert not p.shedding and not p.seen and not p.watching


def test_the_memory_of_requests_taken_in_is_bounded_and_keeps_the_most_recent():
    p = OverloadPolicy(OverloadOptions())
    for i in range(3 * MAX_SEEN):
        p.remember(i, 1.0)
        assert len(p.seen) + len(p.older) <= MAX_SEEN
    recent = range(3 * MAX_SEEN - MAX_SEEN // 2, 3 * MAX_SEEN)
    assert all(p.retransmission(i, 2.0) for i in recent)
    assert not p.retransmission(0, 2.0)


def test_soon_after_a_long_episode_a_late_queue_sheds_at_once_after_a_stall_it_waits_again():
    p = OverloadPolicy(OverloadOptions(queue_delay=0.2, sustain=0.5))
    n = iter(range(100, 1000))
    t = 10.0
    while t < 13.0:                                        # a storm: late datagrams for 3 s
        p.shed(register(next(n), 1), 0.3, t)
        t += 0.1
    assert p.shedding
    assert p.take(register(next(n), 1), 0.05, 13.6) == (ADMIT, None)     # quiet for > sustain: over
    assert not p.shedding
    assert p.shed(register(next(n), 1), 0.3, 14.0)[0] == REJECT         # the storm goes on: at once
    assert p.take(register(next(n), 1), 0.05, 14.6) == (ADMIT, None)     # a 0 s episode ends
    assert p.shed(register(next(n), 1), 0.3, 15.0) == (ADMIT, None)     # a late run needs sustain again
    assert p.shed(register(next(n), 1), 0.3, 15.5)[0] == REJECT
    q = OverloadPolicy(OverloadOptions(queue_delay=0.2, sustain=0.5))
    assert q.shed(register(1, 1), 0.3, 10.0) == (ADMIT, None)
    assert q.shed(register(2, 1), 0.3, 10.5)[0] == REJECT                # a short episode (a stall)
    assert q.take(register(3, 1), 0.05, 11.1) == (ADMIT, None)
    assert q.shed(register(4, 1), 0.3, 11.5) == (ADMIT, None)           # waits for sustain again
