"""A trunk's registration to its provider, as a table (RFC 3261 s. 10, digest of RFC 7616 / RFC 8760).

States: idle -> registering (a REGISTER out, no challenge answered yet in this round) -> authenticating (sent
with credentials for the challenge) -> registered (refresh timer armed, at half the granted time but at most a
minute before expiry) -> registering again on the timer. A refusal, a second challenge that is not `stale`, an
unanswered request or a network error go to `failed`, which waits a back-off (doubling from `retry_min` up to
`retry_max`) and starts again. A network error while registered re-registers at once.

Pure: effects out (`Send`, `Arm`), `now` in; the cnonce comes from a function given by the shell.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

from ..sip.digest import HASHES, AuthParseError, compute_response, parse_authorization

TABLE = {
    ("idle", "start"): ("registering", ("send",)),
    ("failed", "start"): ("registering", ("send",)),
    ("registering", "ok"): ("registered", ("granted", "arm_refresh", "reset_backoff")),
    ("registering", "challenge"): ("authenticating", ("remember_challenge", "send")),
    ("registering", "reject"): ("failed", ("arm_backoff",)),
    ("registering", "timeout"): ("failed", ("arm_backoff",)),
    ("registering", "network_error"): ("failed", ("arm_backoff",)),
    ("authenticating", "ok"): ("registered", ("granted", "arm_refresh", "reset_backoff")),
    ("authenticating", "stale"): ("authenticating", ("remember_challenge", "send")),
    ("authenticating", "challenge"): ("failed", ("forget_challenge", "arm_backoff")),   # wrong credentials
    ("authenticating", "reject"): ("failed", ("arm_backoff",)),
    ("authenticating", "timeout"): ("failed", ("arm_backoff",)),
    ("authenticating", "network_error"): ("failed", ("arm_backoff",)),
    ("registered", "timer"): ("registering", ("send",)),
    ("registered", "network_error"): ("registering", ("send",)),
    ("failed", "timer"): ("registering", ("send",)),
    ("failed", "network_error"): ("failed", ()),
}
STOPPABLE = ("registering", "authenticating", "registered", "failed")


@dataclass(frozen=True)
class Account:
    registrar: str               # Request-URI of the REGISTER, e.g. sip:provider.example
    aor: str                     # To/From, e.g. sip:trunk1@provider.example
    username: str
    password: str | None = None
    ha1: dict = field(default_factory=dict, hash=False, compare=True)    # realm-bound {"MD5": .., "SHA-256": ..}
    ha1_realm: str | None = None
    expires: int = 3600


@dataclass(frozen=True)
class Send:
    expires: int
    authorization: str | None    # the Authorization header value, or None
    header: str = "Authorization"     # Proxy-Authorization when the challenge was a 407


@dataclass(frozen=True)
class Arm:
    at: float


def _h(alg: str, text: str) -> str:
    return HASHES[alg](text.encode()).hexdigest()


class Registration:
    def __init__(self, account: Account, retry_min: float = 5.0, retry_max: float = 300.0,
                 cnonce: Callable[[], str] | None = None) -> None:
        self.account = account
        self.retry_min, self.retry_max = retry_min, retry_max
        self.state = "idle"
        self.backoff = retry_min
        self.granted: int | None = None
        self.expires_at: float | None = None
        self.challenge: dict | None = None       # parsed params of the challenge being answered
        self.challenge_header = "WWW-Authenticate"
        self.nc = 0
        self._counter = 0
        self._cnonce = cnonce or self._count_cnonce
        self.last_status: int | str | None = None
        self.stats = {"sent": 0, "ok": 0, "failures": 0}

    def _count_cnonce(self) -> str:
        self._counter += 1
        return hashlib.sha256(f"{self.account.aor}:{self._counter}".encode()).hexdigest()[:16]

    # --- inputs --------------------------------------------------------------------------------------------
    def start(self, now: float) -> list:
        return self._event("start", now)

    def timer(self, now: float) -> list:
        return self._event("timer", now)

    def timeout(self, now: float) -> list:
        self.last_status = "timeout"
        return self._event("timeout", now)

    def network_error(self, now: float) -> list:
        self.last_status = "network_error"
        return self._event("network_error", now)

    def response(self, status: int, now: float, challenges: list[str] = (), expires: int | None = None,
                 proxy: bool = False) -> list:
        """A final answer to our REGISTER: `challenges` are its WWW-/Proxy-Authenticate values, `expires` the
        time it granted our contact (from the Contact's expires or the Expires header)."""
        self.last_status = status
        if 200 <= status < 300:
            self.granted = expires if expires is not None else self.account.expires
            return self._event("ok", now)
        if status in (401, 407):
            chosen = self._pick(challenges)
            if chosen is None:
                return self._event("reject", now)
            stale = chosen.get("stale", "").lower() == "true"
            self._offered = (chosen, "Proxy-Authenticate" if proxy else "WWW-Authenticate")
            return self._event("stale" if stale and self.state == "authenticating" else "challenge", now)
        if status == 423 and expires and expires > self.account.expires and self.state == "registering":
            # Interval Too Brief: ask again at once for what it wants (it said so: no back-off)
            self.account = _with_expires(self.account, expires)
            self.stats["sent"] += 1
            return [Send(self.account.expires, self._authorization(), self._auth_header())]
        return self._event("reject", now)

    def stop(self, now: float) -> list:
        """Unregister (Expires: 0) when registered; either way the machine goes idle."""
        out = [Send(0, self._authorization())] if self.state == "registered" else []
        self.state = "idle"
        return out

    # --- the machine ---------------------------------------------------------------------------------------
    def _event(self, event: str, now: float) -> list:
        entry = TABLE.get((self.state, event))
        if entry is None:
            return []            # e.g. a late answer to a request we no longer wait for
        self.state, actions = entry
        out: list = []
        for a in actions:
            if a == "send":
                self.stats["sent"] += 1
                out.append(Send(self.account.expires, self._authorization(), self._auth_header()))
            elif a == "remember_challenge":
                self.challenge, self.challenge_header = self._offered
                self.nc = 0
            elif a == "forget_challenge":
                self.challenge = None
            elif a == "granted":
                self.stats["ok"] += 1
                self.expires_at = now + self.granted
            elif a == "arm_refresh":
                g = max(1, self.granted or self.account.expires)
                out.append(Arm(now + max(g / 2, g - 60)))
            elif a == "reset_backoff":
                self.backoff = self.retry_min
            elif a == "arm_backoff":
                self.stats["failures"] += 1
                self.expires_at = None if self.expires_at is None or self.expires_at <= now else self.expires_at
                out.append(Arm(now + self.backoff))
                self.backoff = min(self.retry_max, self.backoff * 2)
        return out

    def _auth_header(self) -> str:
        return "Proxy-Authorization" if self.challenge_header == "Proxy-Authenticate" else "Authorization"

    def _pick(self, challenges) -> dict | None:
        acc = self.account
        return pick_challenge(challenges, acc.password, acc.ha1, acc.ha1_realm)

    def _authorization(self) -> str | None:
        """Credentials for the remembered challenge (a refresh reuses its nonce with the next nonce-count;
        a registrar that has forgotten it challenges again)."""
        if self.challenge is None:
            return None
        acc = self.account
        self.nc += 1
        return digest_answer(self.challenge, acc.username, acc.password, acc.ha1, "REGISTER", acc.registrar,
                             self.nc, self._cnonce())


def pick_challenge(challenges, password: str | None, ha1: dict, ha1_realm: str | None) -> dict | None:
    """The strongest digest challenge we can answer: SHA-256 before MD5 (RFC 8760 s. 2.4). With only a stored
    HA1 (no password), only a challenge for the realm it was made for."""
    best = None
    for value in challenges:
        try:
            scheme, p = parse_authorization(value)
        except AuthParseError:
            continue
        alg = p.get("algorithm", "MD5").upper()
        if scheme != "digest" or alg not in HASHES or "realm" not in p or "nonce" not in p:
            continue
        if password is None and (ha1_realm != p["realm"] or alg not in ha1):
            continue
        if best is None or (alg == "SHA-256" and best.get("algorithm", "MD5").upper() != "SHA-256"):
            best = p
    return best


def digest_answer(p: dict, username: str, password: str | None, ha1s: dict, method: str, uri: str, nc: int,
                  cnonce: str) -> str:
    """The Authorization value answering a picked challenge (`p`, its parameters) for one request."""
    alg = p.get("algorithm", "MD5")
    base = alg.upper()
    realm, nonce = p["realm"], p["nonce"]
    ha1 = ha1s.get(base) if password is None else _h(base, f"{username}:{realm}:{password}")
    qop = "auth" if "auth" in [q.strip() for q in p.get("qop", "").split(",")] else None
    ncs = f"{nc:08x}"
    resp = compute_response(base, ha1, method, uri, nonce, ncs, cnonce, qop)
    user = username.replace("\\", "\\\\").replace('"', '\\"')
    parts = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
             f'response="{resp}"', f"algorithm={alg}"]
    if qop:
        parts += [f'cnonce="{cnonce}"', "qop=auth", f"nc={ncs}"]
    if "opaque" in p:
        parts.append(f'opaque="{p["opaque"]}"')
    return "Digest " + ", ".join(parts)


def _with_expires(acc: Account, expires: int) -> Account:
    return Account(acc.registrar, acc.aor, acc.username, acc.password, dict(acc.ha1), acc.ha1_realm,
                   max(acc.expires, expires))
