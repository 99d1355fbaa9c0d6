"""Password guessing stopped per account: failed digest attempts counted per username, whatever the source.

Pure: `now` comes in. A username the node does not know is counted and locked exactly like a real account,
so the lockout itself cannot tell a guesser which accounts exist. Memory is bounded: at most `max_accounts`
usernames are tracked (the least recently failed are forgotten first) and usernames are stored by a short
digest, so neither many names nor long names grow it without bound.

Past `failures` failed attempts within `window` the account is locked for `lock_time`: every attempt then gets
the same answer as a wrong password, the right password included. Attempts during a lock neither extend it nor
count towards the next one, so the real phone is never locked out longer than `lock_time` after the guessing
that caused it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class LockoutOptions:
    failures: int = 10            # failed attempts within `window` that lock the account (0: never lock)
    window: float = 600.0
    lock_time: float = 300.0
    max_accounts: int = 50_000    # usernames tracked at once, and locks (full at the defaults: about 35 MB)


class AccountLockout:
    def __init__(self, options: LockoutOptions, log=None) -> None:
        self.o = options
        self.log = log
        self._failures: dict[bytes, list[float]] = {}    # least recently failed first
        self._locks: dict[bytes, float] = {}             # locked until; in lock order, so soonest to end first
        self.stats = {"failures": 0, "lockouts": 0, "locked_rejected": 0}

    def reconfigure(self, options: LockoutOptions) -> None:
        """New thresholds from a reload; failures counted and locks in force stay."""
        self.o = options

    @staticmethod
    def _key(username: str) -> bytes:
        return hashlib.blake2b(username.encode("utf-8", "surrogateescape"), digest_size=12).digest()

    def locked(self, username: str, now: float) -> bool:
        self._expire(now)
        return self._locks.get(self._key(username), 0.0) > now

    def rejected(self) -> None:
        """An attempt answered with 403 because its account is locked."""
        self.stats["locked_rejected"] += 1

    def failed(self, username: str, now: float) -> bool:
        """Count a failed attempt; True when it locks the account."""
        self.stats["failures"] += 1
        o = self.o
        if o.failures <= 0:
            return False
        self._expire(now)
        key = self._key(username)
        if self._locks.get(key, 0.0) > now:
            return False
        times = self._failures.pop(key, None) or []
        times.append(now)
        start = now - o.window
        while times and times[0] <= start:
            times.pop(0)
        if len(times) >= o.failures:
            self._lock(key, username, len(times), now)
            return True
        del times[:-o.failures]
        self._failures[key] = times              # re-inserted: now the most recently failed
        while len(self._failures) > o.max_accounts:
            self._failures.pop(next(iter(self._failures)))
        return False

    def _lock(self, key: bytes, username: str, count: int, now: float) -> None:
        o = self.o
        self._locks[key] = now + o.lock_time
        while len(self._locks) > o.max_accounts:
            self._locks.pop(next(iter(self._locks)))
        self.stats["lockouts"] += 1
        if self.log is not None:
            self.log.warning("account_locked", username=username[:64], failures=count, within=o.window,
                             seconds=o.lock_time)

    def active(self, now: float) -> int:
        self._expire(now)
        return len(self._locks)

    def _expire(self, now: float) -> None:
        """Drop ended locks and failures older than the window; both dicts are ordered by time, so only the
        entries that go are looked at."""
        locks = self._locks
        while locks:
            key = next(iter(locks))
            if locks[key] > now:
                break
            del locks[key]
        fails, start = self._failures, now - self.o.window
        while fails:
            key = next(iter(fails))
            if fails[key][-1] > start:
                break
            del fails[key]
