"""Signed, short-lived, single-use tickets for anonymous web visitors (pure: the clock is passed in).

Two kinds share one format, `v1.<payload>.<mac>` (base64url JSON payload, HMAC-SHA256 over `v1.<payload>`):
  - a nonce (`k: n`): the first step, bound to the page origin that asked for it, spent by the token request;
  - a token (`k: t`): bound to that origin, the widget's routes and the page; spent by the first INVITE.
A ticket is refused when it is malformed, over MAX_TICKET characters (checked before anything is decoded), of
the other kind, signed with another key, expired or already spent. Spent ids are kept until they expire, so the
memory they take is bounded by the issuing rate limits times the lifetime.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import dataclass

MAX_TICKET = 4096
MAX_SPENT = 200_000          # past this many live spent ids, tickets are refused (fail closed) until some expire


class TicketError(ValueError):
    """Why a ticket is refused (`str(exc)`): for logs; the visitor gets a plain 403."""


@dataclass(frozen=True)
class Ticket:
    kind: str                # "n" nonce, "t" token
    widget: str
    origin: str
    expires: float
    id: str
    routes: tuple[str, ...] = ()
    page: str = ""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, secret: bytes | None = None) -> None:
        """`secret`: shared by the nodes of a pool so a token from one is good on another; None: a random key
        for this process (tokens die with it)."""
        self._key = hashlib.sha256(b"softswitch widget ticket\0" + (secret or os.urandom(32))).digest()
        self._spent: dict[str, float] = {}      # ticket id -> its expiry

    def _mac(self, signed: bytes) -> str:
        return _b64(hmac.new(self._key, signed, hashlib.sha256).digest())

    def issue(self, kind: str, widget: str, origin: str, now: float, ttl: float, routes=(), page: str = "") -> str:
        body = {"k": kind, "w": widget, "o": origin, "e": round(now + ttl, 3), "j": _b64(os.urandom(12))}
        if kind == "t":
            body.update(r=list(routes), p=page)
        signed = "v1." + _b64(json.dumps(body, separators=(",", ":")).encode())
        return signed + "." + self._mac(signed.encode())

    def read(self, text: str, kind: str, now: float, fresh: bool = True) -> Ticket:
        """The ticket's claims once its signature, kind and (when `fresh`) expiry and not being spent check out.
        fresh=False reads back a ticket checked before (the signature still is)."""
        if not isinstance(text, str) or not text or len(text) > MAX_TICKET or not text.isascii():
            raise TicketError("malformed")
        parts = text.split(".")
        if len(parts) != 3 or parts[0] != "v1":
            raise TicketError("malformed")
        if not hmac.compare_digest(self._mac(f"v1.{parts[1]}".encode()), parts[2]):
            raise TicketError("bad signature")
        try:
            body = json.loads(_unb64(parts[1]))
            t = Ticket(str(body["k"]), str(body["w"]), str(body["o"]), float(body["e"]), str(body["j"]),
                       tuple(str(r) for r in body.get("r", ())), str(body.get("p", "")))
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise TicketError("malformed") from None      # signed by us, so only if the format changed
        if t.kind != kind:
            raise TicketError("wrong kind")
        if fresh and now >= t.expires:
            raise TicketError("expired")
        if fresh and t.id in self._spent:
            raise TicketError("already used")
        return t

    def spend(self, ticket: Ticket, now: float) -> None:
        """Mark a ticket used: read() refuses it from now on. TicketError when too many are live to track."""
        if len(self._spent) >= MAX_SPENT // 2:
            self._spent = {j: e for j, e in self._spent.items() if e > now}
            if len(self._spent) >= MAX_SPENT:
                raise TicketError("too many tickets in flight")
        self._spent[ticket.id] = ticket.expires
