"""Digest authentication of softphones, shared by the registrar (401) and call control (407). Pure: `now`
comes in.

Every outcome is chosen so that nothing tells a known account from an unknown one (as Asterisk's
alwaysauthreject does): the challenge is the same, and any failed authentication, unknown user, wrong
password, an algorithm the account does not allow or a locked account, gets the same 403. Failures are
counted per source address (the guard bans it) and per username (the account lockout).

The challenge lists the algorithms of the account named in the request (its own `digest` list, if it has
one) and the tenant's list for any other name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .lockout import AccountLockout
from ..sip.digest import DigestAuth


@dataclass(frozen=True)
class Verdict:
    kind: str                 # ok, challenge (another realm), replay, stale, malformed, forbidden
    username: str | None = None
    uri: str | None = None


class Authenticator:
    def __init__(self, digest: DigestAuth, lookup_ha1: Callable[[str, str], str | None],
                 lockout: AccountLockout | None = None) -> None:
        self.digest = digest
        self.lookup_ha1 = lookup_ha1
        self.lockout = lockout
        self.per_user: dict[str, tuple[str, ...]] = {}      # softphone number -> its own algorithm list
        self.on_source_failure: Callable[[str], None] | None = None
        self.stats = {"failed": 0, "locked_rejected": 0}
        self._upper: dict[tuple[str, ...], frozenset[str]] = {}

    def algorithms(self, user: str | None) -> tuple[str, ...]:
        return self.per_user.get(user or "") or self.digest.algorithms

    def challenge(self, user: str | None, now: float, stale: bool = False) -> list[str]:
        return self.digest.challenge(now, stale=stale, algorithms=self.algorithms(user))

    def check(self, method: str, value: str, now: float, source_host: str) -> Verdict:
        result = self.digest.verify(method, value, self.lookup_ha1, now)
        kind, user = result.kind, result.username
        if kind == "malformed":
            return Verdict("malformed", user, result.uri)
        if kind in ("realm", "replay", "stale"):
            return Verdict("challenge" if kind == "realm" else kind, user, result.uri)
        good = kind == "ok" and (result.algorithm or "MD5").upper().removesuffix("-SESS") in \
            self._allowed(self.algorithms(user))
        lockout = self.lockout
        if lockout is not None and lockout.locked(user or "", now):
            # The right password changes nothing while locked; only a wrong one counts against the source.
            lockout.rejected()
            self.stats["locked_rejected"] += 1
            if not good:
                self._source_failed(source_host)
            return Verdict("forbidden", user, result.uri)
        if good:
            return Verdict("ok", user, result.uri)
        self.stats["failed"] += 1
        if lockout is not None:
            lockout.failed(user or "", now)
        self._source_failed(source_host)
        return Verdict("forbidden", user, result.uri)

    def _allowed(self, algorithms) -> frozenset[str]:
        """The upper-case set of an algorithm list, made once per list (there is one per account at most)."""
        if not isinstance(algorithms, tuple):
            algorithms = tuple(algorithms)
        allowed = self._upper.get(algorithms)
        if allowed is None:
            if len(self._upper) >= 1024:          # lists come from the config; bounded all the same
                self._upper.clear()
            allowed = self._upper[algorithms] = frozenset(a.upper() for a in algorithms)
        return allowed

    def _source_failed(self, host: str) -> None:
        if self.on_source_failure is not None:
            self.on_source_failure(host)
