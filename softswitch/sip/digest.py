"""HTTP digest authentication for SIP (RFC 3261 s. 22, RFC 7616, RFC 8760: MD5 and SHA-256).

Pure: `now` is passed in and the secret is given. Nonces carry their issue time and an HMAC, so any number
can be handed out without memory; only the nonce-counts seen (replay protection) are remembered, bounded,
and forgotten when their nonce expires.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Callable

from .errors import RemoteProtocolError

HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_SCHEME_RE = re.compile(r"[A-Za-z0-9_\-]+\Z")
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)     # split() keeps the escaped character: "".join unescapes in C
_NC_RE = re.compile(r"[0-9a-fA-F]{8}\Z")
# auth-param = token "=" ( token / quoted-string ), comma separated (RFC 7235 s. 2.1). One item with its comma;
# the items are matched at successive positions, anchored, and the first failure ends the parse (a search for
# the next item would retry from every position: quadratic on text that is not a list of items). quoted-string
# is an unrolled loop (same language as "(?:[^"\\]|\\.)*"): re scans plain runs, not an alternation per character.
_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*("[^"\\]*(?:\\.[^"\\]*)*"|[^\s,"]*)\s*(?:,|\Z)', re.S)
# The longest run of whole items from the start, each the match re gives at its position (atomic: a failure never
# backtracks into the items before it). When it covers the text, findall finds exactly those items.
_PARAM_RUN = re.compile(r"(?>" + _PARAM_RE.pattern + r")*+", re.S)


class AuthParseError(RemoteProtocolError):
    """An Authorization value that is not a well-formed credentials line (or a challenge that is not one)."""


@dataclass(frozen=True)
class AuthResult:
    kind: str                      # ok, stale, fail, unknown_user, replay, malformed, realm
    username: str | None = None
    uri: str | None = None
    algorithm: str | None = None


def parse_authorization(value: str) -> tuple[str, dict[str, str]]:
    """`Digest a=b, c="d"` -> ("digest", {a: b, c: d}); names lower-cased, quoted-pairs unescaped."""
    text = value.strip()
    scheme, _, rest = text.partition(" ")
    if not scheme or not _SCHEME_RE.match(scheme):
        raise AuthParseError("no auth scheme")
    rest = rest.strip()
    params = _plain_params(rest)
    return scheme.lower(), (_regex_params(rest) if params is None else params)


def _regex_params(rest: str) -> dict[str, str]:
    """Any auth-param list, by the grammar."""
    params: dict[str, str] = {}
    if _PARAM_RUN.match(rest).end() != len(rest):
        raise AuthParseError(f"bad auth parameters {rest[:30]!r}")
    for name, raw in _PARAM_RE.findall(rest):
        name = name.lower()
        if raw[:1] == '"':
            raw = raw[1:-1]
            if "\\" in raw:
                raw = "".join(_QUOTED_PAIR.split(raw))
        if name in params:
            raise AuthParseError(f"repeated auth parameter {name}")
        params[name] = raw
    return params


_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _plain_params(rest: str) -> dict[str, str] | None:
    """The common shape of a credentials line, read with str methods (the two regexes cost most of a
    REGISTER's digest check): printable ASCII, items split at every comma, each `name=token` or
    `name="text"` with no quote, backslash or comma inside. Returns what the regexes would, or None for
    anything else (a comma or quoted-pair inside quotes, control characters, a stray quote, an empty
    item, a repeated name), which the regexes then judge."""
    if not rest.isascii() or not rest.isprintable() or "\\" in rest:
        return None
    params: dict[str, str] = {}
    for item in rest.split(","):
        name, eq, raw = item.partition("=")
        name = name.strip(" ")
        if not eq or not name or not _NAME_CHARS.issuperset(name):
            return None
        raw = raw.strip(" ")
        if raw[:1] == '"':
            if len(raw) < 2 or raw[-1] != '"':
                return None
            raw = raw[1:-1]
            if '"' in raw:
                return None
        elif '"' in raw or " " in raw:
            return None
        name = name.lower()
        if name in params:
            return None
        params[name] = raw
    return params


def _h(algorithm: str, text: str) -> str:
    return HASHES[algorithm](text.encode("utf-8", "surrogateescape")).hexdigest()


def _base(algorithm: str) -> str:
    return algorithm[:-5] if algorithm.upper().endswith("-SESS") else algorithm


def compute_response(algorithm: str, ha1: str, method: str, uri: str, nonce: str, nc: str | None,
                     cnonce: str | None, qop: str | None) -> str:
    """request-digest of RFC 7616 s. 3.4.1 (qop=auth) or RFC 2069 (no qop)."""
    base = _base(algorithm)
    if algorithm.upper().endswith("-SESS"):
        ha1 = _h(base, f"{ha1}:{nonce}:{cnonce}")
    ha2 = _h(base, f"{method}:{uri}")
    if qop:
        return _h(base, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(base, f"{ha1}:{nonce}:{ha2}")


class DigestAuth:
    def __init__(self, realm: str, secret: bytes, nonce_ttl: float = 300.0,
                 algorithms: tuple[str, ...] = ("MD5",), max_tracked_nonces: int = 500_000) -> None:
        # MD5 alone by default, as Asterisk and Kamailio send: some phones (baresip 1.0, JsSIP) give up on a
        # 401 that also offers SHA-256. Where the phones follow RFC 8760 list SHA-256 first: they pick the
        # first algorithm they support; phones that answer only the first challenge need MD5 first.
        self.realm = realm
        self.secret = secret
        self.nonce_ttl = nonce_ttl
        self.algorithms = algorithms
        self.opaque = hmac.new(secret, b"opaque:" + realm.encode(), hashlib.sha256).hexdigest()[:32]
        # HMAC-SHA256 (RFC 2104) with the key schedule done once: the keyed inner and outer hashes are copied
        # per nonce, which costs half of hmac.new's set-up.
        key = (hashlib.sha256(secret).digest() if len(secret) > 64 else secret).ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        self.max_tracked = max_tracked_nonces
        self._seen: dict[str, tuple[float, int]] = {}     # nonce -> (issued at, highest nc)
        self._sweep_at = 0.0
        self._counter = 0

    # --- nonces ------------------------------------------------------------------------------------------
    def make_nonce(self, now: float) -> str:
        # A counter makes every nonce unique even when two challenges share a clock reading; each phone's
        # nonce-count then starts at 1 on a nonce of its own.
        self._counter += 1
        stamp = f"{now:.6f}.{self._counter:x}"
        return binascii.b2a_base64(f"{stamp}:{self._mac(stamp)}".encode(), newline=False).decode().rstrip("=")

    def _mac(self, stamp: str) -> str:
        """hmac.new(secret, stamp, sha256).hexdigest()[:24]"""
        inner = self._inner.copy()
        inner.update(stamp.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()[:24]

    def nonce_time(self, nonce: str) -> float | None:
        """The issue time of a nonce we made, or None for a forged/foreign one."""
        try:
            # what base64.b64decode(validate=True) does, without its wrapper; binascii.Error is a ValueError
            raw = binascii.a2b_base64(nonce + "=" * (-len(nonce) % 4), strict_mode=True).decode("ascii")
            stamp, mac = raw.split(":")
            good = self._mac(stamp)
            if not hmac.compare_digest(mac, good):
                return None
            return float(stamp.rsplit(".", 1)[0])
        except (ValueError, UnicodeDecodeError):
            return None

    def challenge(self, now: float, stale: bool = False, algorithms: tuple[str, ...] | None = None) -> list[str]:
        """WWW-Authenticate values in order of preference (RFC 8760 s. 2.4), one shared nonce; `algorithms`
        overrides the configured list (an account with its own)."""
        nonce = self.make_nonce(now)
        tail = ", stale=true" if stale else ""
        return [f'Digest realm="{self.realm}", nonce="{nonce}", opaque="{self.opaque}", algorithm={alg}, '
                f'qop="auth"{tail}' for alg in (algorithms or self.algorithms)]

    # --- verification ------------------------------------------------------------------------------------
    def verify(self, method: str, value: str, lookup_ha1: Callable[[str, str], str | None],
               now: float) -> AuthResult:
        try:
            scheme, p = parse_authorization(value)
        except AuthParseError:
            return AuthResult("malformed")
        if scheme != "digest":
            return AuthResult("malformed")
        username, nonce, uri, response = p.get("username"), p.get("nonce"), p.get("uri"), p.get("response")
        if not username or not nonce or uri is None or not response:
            return AuthResult("malformed", username, uri)
        if p.get("realm") != self.realm:
            return AuthResult("realm", username, uri)
        algorithm = p.get("algorithm", "MD5")
        alg_key = algorithm.upper()
        base = _base(alg_key)
        if base not in HASHES:
            return AuthResult("malformed", username, uri)
        algorithm = "SHA-256" + alg_key[7:] if base == "SHA-256" else alg_key
        qop, nc, cnonce = p.get("qop"), p.get("nc"), p.get("cnonce")
        if qop is not None and (qop.lower() != "auth" or not nc or not cnonce
                                or not _NC_RE.match(nc)):
            return AuthResult("malformed", username, uri)
        if "opaque" in p and p["opaque"] != self.opaque:
            return AuthResult("fail", username, uri, algorithm)
        ha1 = lookup_ha1(username, base)
        known = ha1 is not None
        if ha1 is None:
            # The same work as for a known user, so neither timing nor answer tells which users exist.
            ha1 = _h(base, f"{username}:{self.realm}:{self.secret.hex()}")
        expected = compute_response(algorithm, ha1, method, uri, nonce, nc, cnonce, qop)
        # compare_digest refuses non-ASCII text (TypeError): such a response cannot match anyway
        match = response.isascii() and hmac.compare_digest(expected, response.lower())
        issued = self.nonce_time(nonce)
        if not known:
            return AuthResult("unknown_user", username, uri, algorithm)
        if not match:
            return AuthResult("fail", username, uri, algorithm)
        if issued is None:
            return AuthResult("stale", username, uri, algorithm)   # not our nonce (e.g. from before a restart)
        if now - issued > self.nonce_ttl:
            return AuthResult("stale", username, uri, algorithm)
        if not self._count(nonce, issued, int(nc, 16) if nc else 0, qop is not None, now):
            return AuthResult("replay", username, uri, algorithm)
        return AuthResult("ok", username, uri, algorithm)

    def _count(self, nonce: str, issued: float, nc: int, has_qop: bool, now: float) -> bool:
        """Each nonce-count may be used once and must grow (RFC 7616 s. 3.4.5)."""
        if now >= self._sweep_at:
            self._sweep_at = now + min(self.nonce_ttl, 30.0)
            limit = now - self.nonce_ttl
            for n in [n for n, (t, _) in self._seen.items() if t < limit]:
                del self._seen[n]
        prev = self._seen.get(nonce)
        if prev is not None and (not has_qop or nc <= prev[1]):
            return False
        if prev is None and len(self._seen) >= self.max_tracked:
            # Full: forget the oldest; such a nonce is then refused as stale-by-count at worst, never accepted twice
            # within one stored window.
            self._seen.pop(next(iter(self._seen)))
        self._seen[nonce] = (issued, nc)
        return True


def make_authorization(challenge: str, method: str, uri: str, username: str, password: str,
                       nc: int = 1, cnonce: str = "0a4f113b") -> str:
    """Client side: the Authorization value answering one WWW-Authenticate challenge."""
    scheme, p = parse_authorization(challenge)
    if scheme != "digest":
        raise AuthParseError("not a digest challenge")
    algorithm = p.get("algorithm", "MD5")
    alg = algorithm.upper()
    base = _base(alg)
    if base not in HASHES:
        raise AuthParseError(f"unsupported algorithm {algorithm}")
    realm, nonce = p["realm"], p["nonce"]
    ha1 = _h(base, f"{username}:{realm}:{password}")
    qop = "auth" if "auth" in [q.strip() for q in p.get("qop", "").split(",")] else None
    ncs = f"{nc:08x}"
    resp = compute_response(alg, ha1, method, uri, nonce, ncs, cnonce, qop)
    user_q = username.replace("\\", "\\\\").replace('"', '\\"')
    parts = [f'username="{user_q}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
             f'response="{resp}"', f"algorithm={algorithm}"]
    if qop:
        parts += [f'cnonce="{cnonce}"', f"qop={qop}", f"nc={ncs}"]
    if "opaque" in p:
        parts.append(f'opaque="{p["opaque"]}"')
    return "Digest " + ", ".join(parts)
