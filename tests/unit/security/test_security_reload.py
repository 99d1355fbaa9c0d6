"""A reload changes the guard's, the lockout's and the overload policy's limits and keeps what they counted."""

from __future__ import annotations

from softswitch.security.guard import Guard, GuardOptions
from softswitch.security.lockout import AccountLockout, LockoutOptions
from softswitch.security.overload import OverloadOptions, OverloadPolicy


def test_a_lower_failure_threshold_applies_to_the_next_failure_and_existing_locks_stay():
    lock = AccountLockout(LockoutOptions(failures=5, window=600, lock_time=300))
    assert lock.failed("alice", 0.0) is False
    for t in range(5):
        lock.failed("bob", float(t))
    assert lock.locked("bob", 10.0)
    lock.reconfigure(LockoutOptions(failures=2, window=600, lock_time=300))
    assert lock.locked("bob", 10.0)                        # the lock made before the reload holds
    assert lock.failed("alice", 11.0) is True              # alice's earlier failure counts toward the new 2
    assert lock.locked("alice", 12.0)


def test_new_rate_limits_apply_and_bans_stay():
    guard = Guard(GuardOptions(rate=1000, burst=1000))
    guard.ban("10.0.0.9", 0.0, "flood")
    guard.reconfigure(GuardOptions(rate=1, burst=2, scanners=("evil-ua",)))
    assert guard.banned("10.0.0.9", 1.0)
    admitted = [guard.allow("10.0.0.1", "phone", 5.0) for _ in range(5)]
    assert admitted == [True, True, False, False, False]     # the new burst of 2
    assert guard.allow("10.0.0.2", "Evil-UA 1.0", 5.0) is False  # the new scanner list


def test_overload_thresholds_change_and_shedding_state_stays():
    policy = OverloadPolicy(OverloadOptions(queue_delay=0.2, sustain=0.5, drop_after=2.0))
    policy.shedding, policy.stats["rejected"] = True, 7
    policy.reconfigure(OverloadOptions(queue_delay=0.05, sustain=0.5, drop_after=1.0))
    assert policy.queue_delay == 0.05 and policy.o.drop_after == 1.0
    assert policy.shedding and policy.stats["rejected"] == 7
