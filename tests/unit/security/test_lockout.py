"""Password guessing stopped per account, with a fake clock: the lockout itself and the authenticator that
registrar and call control share (same 403 for every failure, locks that end on time, bounded memory)."""

from __future__ import annotations

from softswitch.security.authn import Authenticator
from softswitch.registrar.credentials import ha1_pair
from softswitch.security.lockout import AccountLockout, LockoutOptions
from softswitch.sip.digest import DigestAuth, make_authorization

REALM = "cc.test"
USERS = {"70001": ha1_pair("70001", REALM, "Right-Pass-1!")}


def lookup(user, alg):
    entry = USERS.get(user)
    return entry and entry[alg]


def test_failures_within_the_window_lock_for_lock_time_then_it_recovers():
    lk = AccountLockout(LockoutOptions(failures=3, window=60, lock_time=100))
    assert [lk.failed("70001", t) for t in (0, 10, 20)] == [False, False, True]
    assert lk.locked("70001", 20) and lk.locked("70001", 119.9)
    # attempts during the lock neither extend it nor count towards the next one
    for t in (50, 60, 119):
        assert lk.failed("70001", t) is False
    assert not lk.locked("70001", 120)
    assert [lk.failed("70001", t) for t in (121, 122)] == [False, False]
    assert lk.stats["lockouts"] == 1


def test_failures_spread_wider_than_the_window_never_lock():
    lk = AccountLockout(LockoutOptions(failures=3, window=60, lock_time=100))
    assert not any(lk.failed("70001", t) for t in range(0, 1000, 31))
    assert not lk.locked("70001", 1000)


def test_unknown_usernames_lock_like_real_ones_and_accounts_are_separate():
    lk = AccountLockout(LockoutOptions(failures=2, window=60, lock_time=30))
    for user in ("70001", "79999"):
        lk.failed(user, 1.0)
        lk.failed(user, 2.0)
    assert lk.locked("70001", 3.0) and lk.locked("79999", 3.0)
    assert not lk.locked("70002", 3.0)
    assert lk.active(3.0) == 2 and lk.active(32.0) == 0


def test_memory_is_bounded_by_many_and_by_long_usernames():
    lk = AccountLockout(LockoutOptions(failures=5, window=600, lock_time=60, max_accounts=100))
    for i in range(10_000):
        lk.failed(f"user{i}" + "x" * 5000, float(i) / 100)
    assert len(lk._failures) <= 100
    assert all(len(k) == 12 for k in lk._failures)           # a digest, never the name itself
    for i in range(1000):                                   # locks are bounded too
        for t in range(5):
            lk.failed(f"lock{i}", 200.0 + t / 10)
    assert len(lk._locks) <= 100
    assert lk.locked("lock999", 201.0)                      # the newest locks are the ones kept


def test_quiet_entries_are_forgotten():
    lk = AccountLockout(LockoutOptions(failures=5, window=60, lock_time=60))
    for i in range(50):
        lk.failed(f"u{i}", 0.0)
    lk.failed("late", 100.0)
    assert list(lk._failures) == [lk._key("late")]


# --- the authenticator ---------------------------------------------------------------------------------------
def authenticator(failures: int = 3, lock_time: float = 100.0):
    digest = DigestAuth(REALM, b"k" * 32, nonce_ttl=3600)
    a = Authenticator(digest, lookup, AccountLockout(LockoutOptions(failures, 600.0, lock_time)))
    sources: list[str] = []
    a.on_source_failure = sources.append
    return a, sources


def attempt(a: Authenticator, user: str, password: str, now: float, src: str = "10.0.0.1"):
    value = make_authorization(a.challenge(user, now)[0], "REGISTER", f"sip:{REALM}", user, password)
    return a.check("REGISTER", value, now, src)


def test_a_locked_account_refuses_the_right_password_then_takes_it_after_lock_time():
    a, sources = authenticator(failures=3, lock_time=100)
    assert attempt(a, "70001", "Right-Pass-1!", 0.0).kind == "ok"
    kinds = [attempt(a, "70001", f"Guess-{i}!", 1.0 + i, f"10.0.0.{i}").kind for i in range(3)]
    assert kinds == ["forbidden"] * 3
    assert attempt(a, "70001", "Right-Pass-1!", 5.0, "10.0.9.9").kind == "forbidden"
    assert attempt(a, "70001", "Right-Pass-1!", 102.9, "10.0.9.9").kind == "forbidden"
    assert attempt(a, "70001", "Right-Pass-1!", 103.0, "10.0.9.9").kind == "ok"
    # the real phone's refused attempts during the lock are not held against its address
    assert sources == ["10.0.0.0", "10.0.0.1", "10.0.0.2"]
    assert a.lockout.stats["lockouts"] == 1 and a.lockout.stats["locked_rejected"] == 2


def test_unknown_and_known_usernames_get_the_same_verdicts_and_the_same_lock():
    for user in ("70001", "79999"):
        a, sources = authenticator(failures=3)
        verdicts = [attempt(a, user, f"Guess-{i}!", float(i)).kind for i in range(5)]
        assert verdicts == ["forbidden"] * 5, user
        assert a.lockout.stats == {"failures": 3, "lockouts": 1, "locked_rejected": 2}, user
        assert len(sources) == 5


def test_credentials_in_an_algorithm_the_account_does_not_allow_are_a_failure():
    a, _ = authenticator()
    a.per_user["70001"] = ("SHA-256",)
    assert [v.split("algorithm=")[1].split(",")[0] for v in a.challenge("70001", 0.0)] == ["SHA-256"]
    assert [v.split("algorithm=")[1].split(",")[0] for v in a.challenge("79999", 0.0)] == ["MD5"]
    md5 = a.challenge("79999", 0.0)[0]       # the tenant's MD5 challenge, answered with the right password
    value = make_authorization(md5, "REGISTER", f"sip:{REALM}", "70001", "Right-Pass-1!")
    assert a.check("REGISTER", value, 1.0, "10.0.0.1").kind == "forbidden"
    assert attempt(a, "70001", "Right-Pass-1!", 2.0).kind == "ok"


def test_without_a_lockout_failures_still_count_per_source():
    a = Authenticator(DigestAuth(REALM, b"k" * 32), lookup)
    sources: list[str] = []
    a.on_source_failure = sources.append
    assert [attempt(a, "70001", "Wrong-1!", float(i)).kind for i in range(20)] == ["forbidden"] * 20
    assert len(sources) == 20 and attempt(a, "70001", "Right-Pass-1!", 30.0).kind == "ok"
