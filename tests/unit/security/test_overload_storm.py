"""The overload policy under a registration storm on a fake clock (tests/unit/security/storm.py): goodput past
capacity, recovery after it, and the retransmissions a late queue is full of."""

from __future__ import annotations

import statistics

from softswitch.security.overload import (ADMIT, DROP, MAX_SEEN, REJECT, OverloadOptions, OverloadPolicy, peek,
                                         request_key)

from .storm import Costs, register, run


STORM = 6          # seconds


def storm(factor: float, **kw):
    costs = Costs()
    policy = OverloadPolicy(OverloadOptions())
    res = run(policy, [(STORM, factor * costs.capacity), (4, 0.5 * costs.capacity)], costs, **kw)
    return res, policy, costs.capacity


def test_below_capacity_nothing_is_shed():
    res, policy, capacity = storm(0.9)
    assert not res.failed_at and res.retransmissions == 0
    assert sum(policy.stats.values()) == 0


def test_at_twice_capacity_goodput_stays_above_ninety_percent_and_recovers_within_two_seconds():
    for factor in (1.5, 2.0, 3.0):
        res, policy, capacity = storm(factor)
        during = res.per_second(STORM + 4)[1:STORM]
        assert statistics.median(during) >= 0.9 * capacity, (factor, during)
        assert min(during) >= 0.8 * capacity, (factor, during)
        assert policy.stats["rejected"] > 0
        # every phone that starts registering 2 s after the storm is served
        assert not [f for f in res.failed_at if f[0] >= STORM + 2.0], factor
        assert all(why == "503" for _, _, why in res.failed_at)     # shed with an answer, never left to time out


def test_a_load_generator_reading_its_answers_late_loses_no_registration_in_progress():
    # phones read their answers 0.6 s late for a second: every request of that second is retransmitted;
    # and they send both REGISTERs of a registration with one branch, as SIPp does
    res, policy, capacity = storm(2.0, lag=lambda t: 0.6 if 2 <= t < 3 else 0.0, one_branch=True)
    assert res.retransmissions > 1000 and policy.stats["dropped_retransmission"] > 0
    assert statistics.median(res.per_second(STORM + 4)[1:STORM]) >= 0.9 * capacity
    assert all(why == "503" for _, _, why in res.failed_at)
    assert not [f for f in res.failed_at if f[0] >= STORM + 2.0]


def test_answers_lost_in_a_storm_are_given_again_when_their_phones_ask_again():
    # one answer in ten lost between 1 s and 5 s, on a node that stalls now and then (its queue runs late):
    # each phone concerned retransmits after the node answered, and is served again, not ignored as a copy
    # (ignoring such copies keeps those phones waiting until a copy comes on time: 68% of capacity)
    res, policy, capacity = storm(2.0, lose=lambda t, k: 1 <= t < 5 and k % 10 == 0, one_branch=True,
                                  stall=lambda t: 0.25 if (t % 1.0) < 0.001 and t < STORM else 0.0)
    assert statistics.median(res.per_second(STORM + 4)[1:STORM]) >= 0.85 * capacity
    assert all(why == "503" for _, _, why in res.failed_at)     # none left to time out
    assert policy.stats["dropped_retransmission"] > 0           # copies that only queued are still dropped


def test_a_late_copy_sent_before_its_original_was_taken_in_is_dropped_one_sent_after_is_served():
    p = OverloadPolicy(OverloadOptions(queue_delay=0.2, sustain=0.5))
    first, second = register(1, 1), register(1, 2)
    assert p.shed(first, 0.3, 10.0) == (ADMIT, None)       # late, not yet shedding: served, remembered
    assert p.shed(first, 0.4, 10.2) == (DROP, None)        # a copy sent at 9.8, queued behind it
    assert p.shed(second, 0.3, 10.3) == (ADMIT, None)
    assert p.shed(register(2, 1), 0.3, 10.6)[0] == REJECT  # shedding now: new work gets 503
    assert p.shed(register(2, 1), 0.3, 10.7) == (DROP, None)   # and its queued copy nothing
    # while shedding, a copy that differs in bytes but not in branch, method and CSeq is the same request
    assert p.shed(register(2, 1).replace(b"User-Agent: phone", b"User-Agent: phone2"), 0.3, 10.75) == (DROP, None)
    assert p.shed(second, 0.6, 10.8) == (DROP, None)
    # sent after the node answered: the answer may be lost. Started work is served (the transaction layer
    # answers again), shed work is sorted again (a 503 again)
    assert p.shed(second, 0.3, 11.0) == (ADMIT, None)
    assert p.shed(register(2, 1), 0.3, 11.0)[0] == REJECT
    # the second REGISTER of a challenge sent with the first one's branch (SIPp does) is not a copy of it
    reused = register(1, 2).replace(b"branch=z9hG4bK-1-2", b"branch=z9hG4bK-1-1")
    assert request_key(peek(reused)) != request_key(peek(first))
    # a CANCEL carries its INVITE's branch and is not a copy of it
    cancel = first.replace(b"REGISTER sip", b"CANCEL sip").replace(b"1 REGISTER", b"1 CANCEL")
    assert request_key(peek(cancel)) != request_key(peek(first))
    assert p.shed(cancel, 0.3, 11.1) == (ADMIT, None)
    assert p.stats["dropped_retransmission"] == 4 and p.stats["rejected"] == 2
    # copies are forgotten once their client has given up
    assert p.shed(first, 0.3, 10.0 + p.o.give_up + 1) == (ADMIT, None)


def test_while_shedding_work_served_on_time_is_remembered_without_a_parse():
    p = OverloadPolicy(OverloadOptions(queue_delay=0.2, sustain=0.5))
    assert p.shed(register(1, 1), 0.3, 5.0) == (ADMIT, None)
    assert p.shed(register(2, 1), 0.3, 5.5)[0] == REJECT   # late for 0.5 s: shedding
    on_time = register(3, 1)
    assert p.watching
    assert p.take(on_time, 0.05, 5.6) == (ADMIT, None)     # on time: served as usual
    assert p.take(on_time, 0.3, 5.7) == (DROP, None)       # a copy sent before: the 401 is on its way
    assert p.take(on_time, 0.3, 6.0) == (ADMIT, None)      # sent after the 401: challenged again, no 503
    assert p.take(register(4, 1), 0.3, 6.0)[0] == REJECT
    assert p.take(register(5, 1), 0.05, 6.6) == (ADMIT, None)   # nothing late for > sustain: episode over
    assert not p.shedding and not p.watching


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
