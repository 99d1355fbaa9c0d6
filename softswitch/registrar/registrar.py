"""The registrar (RFC 3261 s. 10.3) with digest authentication, on top of a LocationStore.

Pure apart from the store: `register` takes the request, where it came from and `now` (wall-clock seconds),
and returns the response. Binding changes are reported to listeners so the ACD learns when an agent's
softphone comes and goes.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from ..aio import drive
from ..log import get as get_logger
from ..security.authn import Authenticator, Verdict
from .location import Binding, LocationStore
from ..sip.digest import DigestAuth
from ..sip.errors import SipError
from ..sip.headers import NameAddr, params_str
from ..sip.message import Request, Response, make_response
from ..sip.uas import error_answer
from ..sip.uri import SipURI, parse_uri

_log = get_logger("node")
BindingListener = Callable[[str, list[Binding], list[Binding]], None]   # user, before, after


@dataclass
class RegistrarOptions:
    realm: str = "localhost"
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 5
    randomize_expires: bool = False
    node_id: str = ""
    algorithms: tuple[str, ...] = ("MD5",)


class Registrar:
    def __init__(self, store: LocationStore, auth: DigestAuth, lookup_ha1: Callable[[str, str], str | None],
                 options: RegistrarOptions, rng: random.Random | None = None,
                 known_user: Callable[[str], bool] | None = None, authn: Authenticator | None = None) -> None:
        self.store = store
        self.auth = auth
        self.authn = authn or Authenticator(auth, lookup_ha1)
        self.options = options
        self.rng = rng or random.Random()
        self.known_user = known_user
        self.listeners: list[BindingListener] = []
        self.stats = {"registered": 0, "unregistered": 0, "challenged": 0, "auth_failed": 0, "stale": 0,
                      "replays": 0, "expired": 0, "rejected": 0}

    @property
    def lookup_ha1(self) -> Callable[[str, str], str | None]:
        return self.authn.lookup_ha1

    @lookup_ha1.setter
    def lookup_ha1(self, fn: Callable[[str, str], str | None]) -> None:
        self.authn.lookup_ha1 = fn

    # --- the request --------------------------------------------------------------------------------------
    def serve(self, req: Request, src, answer: Callable[[Response], None]) -> None:
        """The endpoint's `answered` handler for REGISTER: `answer` gets the response once the store has
        answered (at once for the in-memory stores: no task per request)."""
        def done(resp, err) -> None:
            if err is None:
                answer(resp)
            elif isinstance(err, SipError):
                answer(error_answer(req, err))
            else:
                _log.error("register_failed", call_id=req.call_id, error=repr(err))
                answer(make_response(req, 500))
        drive(self.register(req, (src.proto, src.host, src.port), time.time()), done)

    async def register(self, req: Request, source: tuple[str, str, int], now: float) -> Response:
        to_uri = req.to.uri
        if not isinstance(to_uri, SipURI):
            # RFC 3261 s. 10.3 step 3: the To header field must be a valid address-of-record (RFC 4475 s. 3.1.2.17)
            raise SipError(400, "address of record must be a sip: or sips: URI")
        result = self._authenticate(req, now, source[1])
        if isinstance(result, Response):
            return result
        user = to_uri.user_unescaped or ""
        if result.username != user:
            self.stats["rejected"] += 1
            return make_response(req, 403, "Authenticated user may not register this address", to_tag=to_tag(req))
        aor = to_uri.aor()
        contacts = req.contacts if req.has("Contact") else []
        header_expires = _int_or_none(req.get("Expires"))
        before = await self.store.lookup(aor, now)
        if contacts == "*":
            if header_expires != 0 or len(req.get_all("Contact")) != 1:
                raise SipError(400, "Contact: * needs Expires: 0 and no other contact")
            after = [b for b in before if b.call_id == req.call_id and b.cseq >= req.cseq[0]]
            if after:
                raise SipError(400, "CSeq out of order for this Call-ID")
            await self.store.replace(aor, [], now)
            self._notify(user, before, [])
            self.stats["unregistered"] += 1
            return self._ok(req, [], now)
        assert isinstance(contacts, list)
        bindings = {b.key: b for b in before}
        changed = False
        call_id, cseq = req.call_id, req.cseq[0]
        for c in contacts:
            if not isinstance(c.uri, SipURI) and c.uri.scheme.lower() not in ("tel",):
                raise SipError(400, "contact must be a SIP URI")
            expires = _int_or_none(c.param("expires"))
            if expires is None:
                expires = header_expires if header_expires is not None else self.options.default_expires
            if 0 < expires < self.options.min_expires:
                return make_response(req, 423, to_tag=to_tag(req),
                                     headers=[("Min-Expires", str(self.options.min_expires))])
            expires = min(expires, self.options.max_expires)
            key, instance, reg_id = _binding_key(c)
            old = bindings.get(key)
            if old is not None and old.call_id == call_id and old.cseq >= cseq:
                raise SipError(400, "CSeq out of order for this Call-ID")
            if expires == 0:
                if bindings.pop(key, None) is not None:
                    changed = True
                continue
            if self.options.randomize_expires and expires > self.options.min_expires:
                # Spread re-registrations so a storm after an outage does not repeat in lockstep.
                low = max(self.options.min_expires, int(expires * 0.8))
                expires = self.rng.randint(low, expires)
            contact, user_agent = str(c.uri), req.get("User-Agent") or ""
            params = params_str([(k, v) for k, v in c.params if k.lower() not in ("expires", "q")])
            if old is not None:
                # a refresh keeps the strings the old binding holds: other structures (keepalive peer keys, the
                # bindings writer's steady fields) hold those already, so the new binding adds no equal copies
                aor, key = old.aor, old.key
                user = old.user if old.user == user else user
                contact = old.contact if old.contact == contact else contact
                user_agent = old.user_agent if old.user_agent == user_agent else user_agent
                params = old.params if old.params == params else params
                source = old.source if old.source == source else source
            bindings[key] = Binding(
                aor=aor, user=user, contact=contact, key=key, expires_at=now + expires,
                call_id=call_id, cseq=cseq, q=_q(c.param("q")), instance=instance, reg_id=reg_id,
                path=req.values("Path"), source=source, user_agent=user_agent,
                node=self.options.node_id, registered_at=old.registered_at if old else now, params=params,
            )
            changed = True
        after = sorted(bindings.values(), key=lambda b: b.registered_at)
        if len(after) > self.options.max_contacts:
            # Keep the newest: a phone that moved (new NAT port) must not be locked out by its old binding.
            after = after[-self.options.max_contacts:]
        if changed:
            await self.store.replace(aor, after, now)
            self._notify(user, before, after)
            self.stats["registered"] += 1
        return self._ok(req, after, now)

    def challenge_if_needed(self, req: Request, now: float) -> Response | None:
        """A REGISTER without credentials gets its 401 here, without a transaction or any state (the nonce
        carries its own time); a retransmission just gets a fresh challenge."""
        if req.has("Authorization") or not isinstance(req.to.uri, SipURI):
            return None
        # "Contact: *" takes the stateful path; a raw look is enough to see it, and the contacts are only
        # parsed (and judged) once the request is authenticated.
        for value in req.get_all("Contact"):
            if value.strip(" \t") == "*":
                return None
        self.stats["challenged"] += 1
        return self._challenge(req, now)

    def _authenticate(self, req: Request, now: float, source_host: str = "") -> Verdict | Response:
        values = [v for v in req.get_all("Authorization") if v.lstrip().lower().startswith("digest")]
        if not values:
            self.stats["challenged"] += 1
            return self._challenge(req, now)
        result = self.authn.check(req.method, values[0], now, source_host)
        kind = result.kind
        if kind == "ok":
            if not _same_uri(result.uri, req):
                raise SipError(400, "digest uri does not match the Request-URI")
            return result
        if kind == "stale":
            self.stats["stale"] += 1
            return self._challenge(req, now, stale=True)
        if kind == "replay":
            self.stats["replays"] += 1
            return self._challenge(req, now)
        if kind == "challenge":
            return self._challenge(req, now)
        if kind == "malformed":
            raise SipError(400, "malformed Authorization")
        # wrong password, unknown user and locked account look the same from outside (no account enumeration)
        self.stats["auth_failed"] += 1
        return make_response(req, 403, to_tag=to_tag(req))

    def _challenge(self, req: Request, now: float, stale: bool = False) -> Response:
        user = req.to.uri.user_unescaped if isinstance(req.to.uri, SipURI) else None
        return make_response(req, 401, to_tag=to_tag(req), headers=[
            ("WWW-Authenticate", v) for v in self.authn.challenge(user, now, stale=stale)])

    def _ok(self, req: Request, bindings: Iterable[Binding], now: float) -> Response:
        headers = []
        for b in bindings:
            q = f";q={b.q}" if b.q is not None else ""
            headers.append(("Contact", f"<{b.contact}>{b.params}{q};expires={b.expires_in(now)}"))
        for p in req.get_all("Path"):
            headers.append(("Path", p))
        headers.append(("Date", _http_date(now)))
        return make_response(req, 200, to_tag=to_tag(req), headers=headers)

    # --- bindings from elsewhere -------------------------------------------------------------------------
    async def expire(self, now: float) -> list[Binding]:
        gone = await self.store.expire(now)
        by_user: dict[str, list[Binding]] = {}
        for b in gone:
            by_user.setdefault(b.user, []).append(b)
        for user, removed in by_user.items():
            remaining = await self.store.lookup(removed[0].aor, now)
            self._notify(user, removed + remaining, remaining)
        self.stats["expired"] += len(gone)
        return gone

    async def drop(self, aor: str, keys: set[str], now: float) -> list[Binding]:
        """Remove these bindings of an AOR at once (their flow closed, RFC 5626 s. 5.2); returns them."""
        before = await self.store.lookup(aor, now)
        after = [b for b in before if b.key not in keys]
        if len(after) == len(before):
            return []
        await self.store.replace(aor, after, now)
        self._notify(before[0].user, before, after)
        self.stats["flows_closed"] = self.stats.get("flows_closed", 0) + 1
        return [b for b in before if b.key in keys]

    async def lookup_user(self, aor: str, now: float) -> list[Binding]:
        return await self.store.lookup(aor, now)

    def _notify(self, user: str, before: list[Binding], after: list[Binding]) -> None:
        for listener in self.listeners:
            listener(user, before, after)


_DATE: list = [0, ""]


def _http_date(now: float) -> str:
    """The Date header (RFC 3261 s. 20.17), formatted once per second."""
    second = int(now)
    if _DATE[0] != second:
        _DATE[0], _DATE[1] = second, email.utils.formatdate(second, usegmt=True)
    return _DATE[1]


def to_tag(req: Request) -> str:
    """Our To tag in the answers to a REGISTER: the same for its retransmissions, without any state."""
    return format(abs(hash(req.call_id)) & 0xFFFFFFFF, "x")


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    t = text.strip()
    # RFC 3261 s. 20.19: a malformed value is treated as the default, as if absent.
    if not t.isascii() or not t.isdigit() or len(t) > 10:
        return None
    return min(int(t), 2**31 - 1)


def _q(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        v = float(text)
    except ValueError:
        return None
    return v if 0.0 <= v <= 1.0 else None


def _binding_key(c: NameAddr) -> tuple[str, str | None, str | None]:
    """RFC 5626: a binding with +sip.instance (and reg-id) is identified by them, else by its URI (s. 19.1.4)."""
    instance = c.param("+sip.instance")
    reg_id = c.param("reg-id")
    if instance:
        return f"instance:{instance}:{reg_id or ''}", instance, reg_id
    uri = c.uri
    if isinstance(uri, SipURI):
        transport = (uri.param("transport") or "").lower()
        return f"{uri.aor()}:{uri.port or ''};{transport}", None, None
    return str(uri), None, None


def _same_uri(digest_uri: str | None, req: Request) -> bool:
    if not digest_uri:
        return False
    if digest_uri == req.uri_text or digest_uri == str(req.uri):
        return True
    try:
        u = parse_uri(digest_uri)
    except SipError:
        return False
    r = req.uri
    return isinstance(u, SipURI) and isinstance(r, SipURI) and u.aor() == r.aor() and u.port == r.port
