"""The SIP endpoint: the thin asyncio shell around the pure core.

After each input (a datagram, stream bytes, a timer) it runs the transaction layer, hands new requests to
the transaction user registered for the method, sends whatever the layer queued, and re-arms its one timer.
Transaction users (registrar, B2BUA, ...) call `respond`, `send_request` and `send_stateless`.
"""

from __future__ import annotations

import asyncio
import secrets
from time import perf_counter
from typing import Callable

from .log import get as get_logger
from .sip.errors import SipError
from .sip.framing import Keepalive
from .sip.message import Request, Response, make_response
from .sip.answers import Answers
from .sip.parser import parse_message
from .sip.transaction import Transaction, TransactionLayer, server_key
from .sip.uas import check_request, error_answer, error_response, response_address, stamp_via
from .transport.base import Target
from .transport.connections import Connections
from .transport.connector import Connector
from .transport.tcp import StreamConnection

Handler = Callable[[Transaction, Request], None]
Answer = Callable[[Response], None]
AnsweredHandler = Callable[[Request, Target, Answer], None]    # the request, where it came from, its answer

SUPPORTED = frozenset({"path", "outbound", "gruu", "timer", "replaces", "100rel"})


class Endpoint:
    def __init__(self, loop: asyncio.AbstractEventLoop, *, force_rport: bool = True,
                 stream_idle_timeout: float = 3600.0, partial_timeout: float = 10.0,
                 supported: frozenset[str] = SUPPORTED, user_agent: str = "softswitch") -> None:
        self.loop = loop
        self.layer = TransactionLayer(branch_seed=secrets.token_hex(4) + ".")
        self.handlers: dict[str, Handler] = {}
        self.ack_handler: Callable[[Request, Target], None] | None = None
        # fn(response, source) -> True when it took a response no client transaction matched (the call
        # control's 2xx retransmissions, the keepalive's stateless probes); asked in turn
        self.stray_response_handlers: list[Callable[[Response, Target], bool | None]] = []
        self.force_rport = force_rport
        self.supported = supported
        self.user_agent = user_agent
        self.udp: list = []              # UdpTransport listeners
        self.connections = Connections()     # open StreamConnection / WsConnection, by peer
        self.stream_idle_timeout = stream_idle_timeout
        self.partial_timeout = partial_timeout
        self.log = get_logger("sip")
        self.counters: dict[str, int] = {"rx_requests": 0, "rx_responses": 0, "parse_errors": 0,
                                         "tx_stateless": 0, "handler_errors": 0}
        self.method_counts: dict[str, int] = {}
        self.status_counts: dict[int, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._sweeper: asyncio.Task | None = None
        self.busy = 0.0                  # seconds spent handling messages (overload control reads it)
        self.watchdog = None             # softswitch.security.watchdog.Watchdog: the stream shells time their inputs
        self.overload = None             # softswitch.security.overload.OverloadPolicy: the stream shells shed with it
        self.source_filter: Callable[[Target], bool] | None = None     # before parsing (bans)
        self.limits = False                                            # enforce the two limits below
        self.max_message_size = 65535
        self.max_vias = 70
        self._allowed: frozenset[str] = frozenset()
        self._allowed_for = -1
        self.stateless: dict[str, Callable] = {}     # method -> fn(req, src) answering without a transaction
        # method -> handler of a non-INVITE request whose final answer is kept for its retransmissions without
        # a transaction object (REGISTER: a registration storm's cost is mostly per-message machinery)
        self.answered: dict[str, AnsweredHandler] = {}
        self.answers = Answers(64 * self.layer.t1)
        # fn(datagram, source) -> bool: takes a plain REGISTER datagram past the general parser and dispatch
        # (softswitch/registrar/lane.py); False sends it the general way
        self.register_lane: Callable[[bytes, Target], bool] | None = None
        # fn(datagram) -> bool: takes a response datagram past the parser (the keepalive's probe answers,
        # softswitch/registrar/phones.py); False sends it the general way
        self.response_lane: Callable[[bytes], bool] | None = None
        self.filters: list[Callable[[Request, Target], bool]] = []   # return False to drop silently
        self.flow_listeners: list[Callable] = []     # fn(conn): a stream connection closed
        self.connector = Connector(self)             # the connections the node opens (TCP, TLS)

    def now(self) -> float:
        return self.loop.time()

    @property
    def allowed(self) -> frozenset[str]:
        n = len(self.handlers) + len(self.answered)
        if self._allowed_for != n:      # handlers are only ever added
            self._allowed = frozenset(self.handlers) | frozenset(self.answered) | {"ACK"}
            self._allowed_for = n
        return self._allowed

    # --- inputs ------------------------------------------------------------------------------------------
    def on_datagram(self, data: bytes, src: Target) -> None:
        if len(data) <= 4 and not data.strip(b"\r\n\x00"):
            return  # NAT keepalive
        if self.source_filter is not None and not self.source_filter(src):
            return  # banned source: not even parsed
        t0 = perf_counter()
        lane = self.register_lane
        if lane is not None and data[:9] == b"REGISTER " and lane(data, src):
            self.busy += perf_counter() - t0
            return
        if data[:8] == b"SIP/2.0 " and self.response_lane is not None and self.response_lane(data):
            self.counters["rx_responses"] += 1
            self.busy += perf_counter() - t0
            return
        try:
            msg = parse_message(data)
        except SipError as err:
            self._parse_error(err, src)
            return
        self._dispatch(msg, src, len(data))
        self.busy += perf_counter() - t0

    def on_stream_item(self, item, conn: StreamConnection) -> None:
        if isinstance(item, Keepalive):
            conn.send(b"\r\n")  # RFC 5626 s. 3.5.1 pong
            return
        if isinstance(item, SipError):
            self._parse_error(item, conn.target)
            return
        t0 = perf_counter()
        self._dispatch(item, conn.target)
        self.busy += perf_counter() - t0

    def on_connection_lost(self, conn: StreamConnection) -> None:
        for fn in self.flow_listeners:
            fn(conn)

    def _parse_error(self, err: SipError, src: Target) -> None:
        self.counters["parse_errors"] += 1
        resp = error_response(err)
        self.log.info("sip_parse_error", status=err.status, detail=err.detail, src=f"{src.host}:{src.port}",
                      proto=src.proto)
        if resp is not None:
            self._count_status(resp.status)
            self._send(resp.serialize(), src)

    def _dispatch(self, msg: Request | Response, src: Target, size: int = 0) -> None:
        now = self.loop.time()
        if isinstance(msg, Response):
            self.counters["rx_responses"] += 1
            tx = self.layer.receive_response(msg, now)
            if tx is None:
                for handler in self.stray_response_handlers:
                    if handler(msg, src):
                        break
            self.flush()
            return
        if not self.take(msg, src):
            return
        if self.limits and msg.method != "ACK":
            size = size or len(msg.body) + sum(len(n) + len(v) + 4 for n, v in msg.headers)
            vias = len(msg.vias)
            if size > self.max_message_size or vias > self.max_vias:
                status = 513 if size > self.max_message_size else 483
                self._count_status(status)
                self.send_stateless(make_response(msg, status, "Message Too Large" if status == 513
                                                  else "Too many Via headers"), src)
                return
        stamp_via(msg, src.host, src.port, self.force_rport)
        if src.reliable or (self.force_rport and msg.top_via.param("maddr") is None):
            reply_to = src      # what response_address gives once rport and received name the source
        else:
            reply_to = Target(src.proto, *response_address(msg), src.conn)
        quick = self.stateless.get(msg.method)
        if quick is not None:
            try:
                resp = quick(msg)
            except SipError as err:     # bad input gets its answer, never an exception out of here
                resp = error_answer(msg, err)
            except Exception:
                self.counters["handler_errors"] += 1
                self.log.exception("stateless_handler_failed", method=msg.method, call_id=msg.call_id)
                resp = None             # the transaction path answers (500 if the handler fails again)
            if resp is not None:
                try:     # the generic checks (420, 483, 416 ...) still win over the stateless answer
                    resp = check_request(msg, supported=self.supported, allowed=self.allowed) or resp
                except SipError as err:
                    resp = make_response(msg, err.status)
            if resp is not None:
                if self.user_agent:
                    resp.add("Server", self.user_agent)
                self._count_status(resp.status)
                self.send_stateless(resp, reply_to)
                return
        answered = self.answered.get(msg.method)
        if answered is not None:
            self._answer(answered, msg, src, reply_to, now)
            self.flush()
            return
        status, tx = self.layer.receive_request(msg, reply_to, src.reliable, now)
        if status == "new":
            tx.context = src
            try:
                early = check_request(msg, supported=self.supported, allowed=self.allowed)
            except SipError as err:
                early = make_response(msg, err.status)
            if early is not None:
                self.respond(tx, early)
            else:
                self._call(tx, msg)
        elif status == "ack" and self.ack_handler is not None:
            self.ack_handler(msg, src)
        self.flush()

    def take(self, req: Request, src: Target) -> bool:
        """A request is in: counted, then through the filters (False: one of them dropped it)."""
        self.counters["rx_requests"] += 1
        self.method_counts[req.method] = self.method_counts.get(req.method, 0) + 1
        for f in self.filters:
            if not f(req, src):
                return False
        return True

    def _call(self, tx: Transaction, req: Request) -> None:
        try:
            self.handlers[req.method](tx, req)
        except SipError as err:
            if tx.state in ("trying", "proceeding"):
                self.respond(tx, error_answer(req, err))
        except Exception:
            self.counters["handler_errors"] += 1
            self.log.exception("handler_failed", method=req.method, call_id=req.call_id)
            if tx.state in ("trying", "proceeding"):
                self.respond(tx, make_response(req, 500))

    def _answer(self, handler: AnsweredHandler, req: Request, src: Target, reply_to: Target, now: float,
                key: tuple | None = None) -> None:
        """A request of an `answered` method: what its server transaction would do (absorb retransmissions
        while it is handled, re-send the final answer for Timer J), kept as the answer's bytes only. `key`:
        its server_key when the caller has it already."""
        answers, stats = self.answers, self.layer.stats
        if key is None:
            key = server_key(req)
        kept = answers.get(key)
        if kept is not None:
            stats["retransmissions_absorbed"] += 1
            if kept[1] is not None:
                stats["resent"] += 1
                stats["server_resent"] += 1     # a peer that waited for our answer
                self._send(kept[1], kept[2])
            return
        stats["server_created"] += 1
        answers.expire(now)
        answers.pending(key, reply_to)
        reliable = src.reliable

        def answer(resp: Response) -> None:
            if not answers.is_pending(key):
                return                          # answered already: a transaction would refuse a second one
            if self.user_agent and not resp.has("Server"):
                resp.add("Server", self.user_agent)
            self._count_status(resp.status)
            data = resp.serialize()
            answers.done(key, data, self.loop.time(), reliable)
            self._send(data, reply_to)
        try:
            early = check_request(req, supported=self.supported, allowed=self.allowed)
        except SipError as err:
            early = make_response(req, err.status)
        if early is not None:
            answer(early)
            return
        try:
            handler(req, src, answer)
        except SipError as err:
            answer(error_answer(req, err))
        except Exception:
            self.counters["handler_errors"] += 1
            self.log.exception("handler_failed", method=req.method, call_id=req.call_id)
            answer(make_response(req, 500))

    # --- outputs -----------------------------------------------------------------------------------------
    def respond(self, tx: Transaction, resp: Response) -> None:
        if self.user_agent and not resp.has("Server"):
            resp.add("Server", self.user_agent)
        self._count_status(resp.status)
        self.layer.respond(tx, resp, self.loop.time())
        self.flush()

    def respond_stateless(self, tx: Transaction, resp: Response) -> None:
        """Answer and forget the transaction (RFC 3261 s. 8.2.7 stateless UAS): challenges under a flood keep
        no state; a retransmission simply gets a fresh answer."""
        if self.user_agent and not resp.has("Server"):
            resp.add("Server", self.user_agent)
        self._count_status(resp.status)
        self.layer.forget(tx)
        self.send_stateless(resp, tx.target)

    def _count_status(self, status: int) -> None:
        self.status_counts[status] = self.status_counts.get(status, 0) + 1

    def send_request(self, req: Request, target: Target, listener=None) -> Transaction:
        tx = self.layer.send_request(req, target, target.reliable, self.loop.time(), listener)
        self.flush()
        return tx

    def send_stateless(self, msg: Request | Response, target: Target) -> None:
        self.counters["tx_stateless"] += 1
        self._send(msg.serialize(), target)

    def flush(self) -> None:
        layer = self.layer
        if layer.effects:
            effects, layer.effects = layer.effects, []
            for eff in effects:
                if eff[0] == "send":
                    self._send(eff[1], eff[2])
                else:
                    _, listener, event, tx, msg = eff
                    try:
                        listener(event, tx, msg)
                    except Exception:
                        self.counters["handler_errors"] += 1
                        self.log.exception("listener_failed", tx=repr(tx))
            if layer.effects:
                self.flush()
                return
        self._rearm()

    def _send(self, data: bytes, target: Target) -> None:
        conn = target.conn
        if conn is not None and not getattr(conn, "closed", False):
            conn.send(data, target)
            return
        if target.proto == "udp":
            if self.udp:
                self.udp[0].send(data, target)
            return
        # A stream whose connection is gone: the destination's own connection, opened if need be (RFC 3261
        # s. 18.2.2); browsers and TLS phones cannot be dialled back on their ephemeral port: they reconnect
        # and register again themselves (TLS is dialled only to destinations given a TLS policy: trunks)
        connector = self.connector
        if connector.dialable(target):
            connector.send(data, target)
            return
        existing = self.find_connection(target.proto, target.host, target.port)
        if existing is not None:
            existing.send(data)
            return
        self.log.info("flow_gone", proto=target.proto, host=target.host, port=target.port)

    def find_connection(self, proto: str, host: str, port: int) -> StreamConnection | None:
        return self.connections.find(proto, host, port)

    def on_connect_failed(self, proto: str, host: str, port: int) -> None:
        """A connection to this destination could not be opened: the client transactions waiting for their
        first answer from it fail now with a transport error (RFC 3261 s. 8.1.3.1)."""
        layer, now = self.layer, self.loop.time()
        for tx in list(layer.client.values()):
            t = tx.target
            if tx.state in ("calling", "trying") and (t.proto, t.host, t.port) == (proto, host, port):
                layer.transport_error(tx, now)
        self.flush()

    # --- timers ------------------------------------------------------------------------------------------
    def _rearm(self) -> None:
        deadline = self.layer.next_deadline()
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.layer.poll(self.loop.time() + 0.001)
        self.flush()

    async def _sweep(self) -> None:
        """Close stream connections stuck on half a message, or silent for too long (torture: clerr over TCP)."""
        while True:
            await asyncio.sleep(min(1.0, self.partial_timeout / 2))
            now = self.loop.time()
            self.answers.expire(now)
            for conn in list(self.connections):
                if conn.partial_since is not None and now - conn.partial_since > self.partial_timeout:
                    self.log.info("stream_partial_timeout", peer=f"{conn.peer[0]}:{conn.peer[1]}")
                    conn.close()
                elif now - conn.last_activity > self.stream_idle_timeout:
                    conn.close()

    def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = self.loop.create_task(self._sweep())

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for u in self.udp:
            u.close()
        self.connector.close()
        for c in list(self.connections):
            c.close()
