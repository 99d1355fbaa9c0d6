"""The click-to-dial policy (sans-I/O: the clock is injected): who gets a token, and which INVITEs a token lets in.

A visitor's browser, on a page whose origin a widget allows, asks for a nonce (bound to that origin), then
trades it for a token (bound to the origin, the widget's routes and the page's URL). The token goes in the
INVITE's `X-Widget-Token` header over the node's SIP WebSocket, whose upgrade carried the same Origin:
  - a valid token, the same origin on the WebSocket, a route of the widget -> the call goes ahead as a
    customer's call with CDR channel `click_to_dial` and the page;
  - a token that is forged, expired, spent, for another route or from another origin -> 403;
  - no token -> the usual rules, except on the widget's own WebSocket path (/widget), which is for token
    calls only (403).
Settings are read from the running config on every request, so a reload changes origins, routes and limits
at once; spent tickets and rate-limit buckets carry on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from .limits import RateLimit
from .origins import origin_of_url, origin_or_none
from .tokens import Signer, Ticket, TicketError

HEADER = "X-Widget-Token"
CHANNEL = "click_to_dial"
OTHER_CHANNEL = "phone"
MAX_PAGE = 1024            # characters of the page URL kept (in the token and the CDR)


@dataclass
class Reply:
    status: int
    body: dict = field(default_factory=dict)
    retry_after: int = 0


@dataclass(frozen=True)
class Refusal:
    reason: str             # for the log; the caller gets 403 Forbidden


class WidgetGate:
    def __init__(self, config_of: Callable[[], object], clock: Callable[[], float] = time.time) -> None:
        self.config_of = config_of
        self.clock = clock
        secret = self.settings.secret
        self.signer = Signer(secret.encode() if secret else None)
        self.nonce_limit = RateLimit(self.settings.per_address, self.settings.per_node)
        self.token_limit = RateLimit(self.settings.per_address, self.settings.per_node)
        self.flows: dict[object, set[str]] = {}     # visitor's WebSocket -> Call-IDs of the calls it started
        self.stats = {"nonces": 0, "tokens": 0, "refused": 0, "rate_limited": 0, "calls": 0, "calls_refused": 0}

    @property
    def settings(self):
        return self.config_of().click_to_dial

    def _widget(self, name, origin_header):
        """(widget, origin) when the widget exists and allows this Origin header; else a 403 Reply."""
        w = self.settings.widget(name) if isinstance(name, str) else None
        origin = origin_or_none(origin_header)
        if w is None or origin is None or origin not in w.origins:
            self.stats["refused"] += 1
            return None, Reply(403, {"error": "this page may not use this widget"})
        return w, origin

    def _limited(self, limit: RateLimit, address: str) -> Reply | None:
        s = self.settings
        limit.per_address, limit.total = s.per_address, s.per_node
        wait = limit.allow(address, self.clock())
        if not wait:
            return None
        self.stats["rate_limited"] += 1
        return Reply(429, {"error": "too many requests, try again later"}, max(1, int(wait + 0.999)))

    # --- HTTP: nonce, then token --------------------------------------------------------------------------
    def nonce(self, name, origin_header: str | None, address: str) -> Reply:
        w, origin = self._widget(name, origin_header)
        if w is None:
            return origin
        limited = self._limited(self.nonce_limit, address)
        if limited:
            return limited
        self.stats["nonces"] += 1
        ttl = self.settings.nonce_ttl
        return Reply(200, {"nonce": self.signer.issue("n", w.name, origin, self.clock(), ttl), "expires_in": ttl})

    def token(self, name, origin_header: str | None, address: str, nonce, page) -> Reply:
        w, origin = self._widget(name, origin_header)
        if w is None:
            return origin
        if not isinstance(page, str) or origin_of_url(page) != origin:
            self.stats["refused"] += 1
            return Reply(400, {"error": "page must be the URL of the page the widget is on"})
        limited = self._limited(self.token_limit, address)
        if limited:
            return limited
        now = self.clock()
        try:
            n = self.signer.read(nonce, "n", now)
            if n.widget != w.name or n.origin != origin:
                raise TicketError("nonce of another widget or origin")
            self.signer.spend(n, now)
        except TicketError:
            self.stats["refused"] += 1
            return Reply(403, {"error": "ask for a new nonce first"})
        self.stats["tokens"] += 1
        ttl = self.settings.token_ttl
        token = self.signer.issue("t", w.name, origin, now, ttl, w.routes, page[:MAX_PAGE])
        return Reply(200, {"token": token, "expires_in": ttl, "header": HEADER,
                           "routes": [{"called": r, "video": self.route_is_video(r)} for r in w.routes]})

    def route_is_video(self, called: str) -> bool:
        cfg = self.config_of()
        for rt in cfg.routes:
            if rt.called == called and rt.ext is None and rt.kind == "queue":
                q = cfg.queue(rt.target)
                return bool(q and q.type == "video_click_to_dial")
        return False

    # --- SIP ----------------------------------------------------------------------------------------------
    def ws_origin_allowed(self, origin_header: str | None) -> bool:
        """The WebSocket upgrade to the widget path: only from a page some widget allows."""
        origin = origin_or_none(origin_header)
        return origin is not None and any(origin in w.origins for w in self.settings.widgets)

    def check_invite(self, req, target, number: str | None) -> Ticket | Refusal | None:
        """None: no token, the usual rules apply. A Ticket: a click-to-dial call to let in (the token is spent
        now). A Refusal: answer 403."""
        conn = getattr(target, "conn", None)
        value = req.get(HEADER)
        if value is None:
            if getattr(conn, "widget", False):
                return self._refuse("a widget connection without a token")
            return None
        now = self.clock()
        try:
            t = self.signer.read(value.strip(), "t", now)
        except TicketError as exc:
            return self._refuse(f"token {exc}")
        w = self.settings.widget(t.widget)
        if w is None or t.origin not in w.origins:
            return self._refuse("token of a widget or origin no longer configured")
        if target.proto not in ("ws", "wss") or origin_or_none(getattr(conn, "origin", None)) != t.origin:
            return self._refuse("token used from another origin than its page's")
        if not number or number not in t.routes or number not in w.routes:
            return self._refuse("token used for a route its widget does not have")
        try:
            self.signer.spend(t, now)
        except TicketError as exc:
            return self._refuse(str(exc))
        self.stats["calls"] += 1
        return t

    def _refuse(self, reason: str) -> Refusal:
        self.stats["calls_refused"] += 1
        return Refusal(reason)

    def cdr_fields(self, req) -> dict:
        """The CDR's channel and page for the call this INVITE started (its token was checked on arrival)."""
        value = req.get(HEADER)
        if value is None:
            return {"channel": OTHER_CHANNEL, "page": None}
        try:
            t = self.signer.read(value.strip(), "t", 0.0, fresh=False)
        except TicketError:
            return {"channel": OTHER_CHANNEL, "page": None}
        return {"channel": CHANNEL, "page": t.page}
