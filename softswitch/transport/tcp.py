"""TCP (and the base for TLS): a connection feeds a StreamFramer; idle and partial-message timeouts close it."""

from __future__ import annotations

import asyncio
import socket
import time

from ..log import get as get_logger
from ..security.overload import CONTINUING, REJECT, retry_spread
from ..security.watchdog import describe
from ..sip.errors import SipError
from ..sip.framing import StreamFramer
from ..sip.message import Request, make_response
from .base import Target

MAX_WRITE_BUFFER = 2 * 1024 * 1024      # bytes queued for a peer that does not read before it is cut off


def stream_kind(req: Request) -> str:
    """"continuing" for work already started (ACK, BYE..., in-dialog, the second half of a challenge), else
    "new": the overload policy's sorting, on a parsed request."""
    try:
        if req.method.encode() in CONTINUING or req.to.tag or req.has("Authorization") \
                or req.has("Proxy-Authorization"):
            return "continuing"
    except SipError:
        return "continuing"             # the endpoint answers what is wrong with it
    return "new"


class StreamConnection(asyncio.Protocol):
    proto = "tcp"

    def __init__(self, endpoint, max_message: int = 65535) -> None:
        self.endpoint = endpoint
        self.framer = StreamFramer(max_message)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.last_activity = 0.0
        self.partial_since: float | None = None
        self.closed = False
        self._draining = False
        self.ready = asyncio.get_event_loop().create_future()

    @property
    def target(self) -> Target:
        return Target(self.proto, self.peer[0], self.peer[1], self)

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername")[:2]
        self.last_activity = self.endpoint.now()
        self.endpoint.connections.add(self)
        if not self.ready.done():
            self.ready.set_result(self)

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return                        # after a fatal framing error: read and drop until we close
        wd = self.endpoint.watchdog
        if wd is None:
            self._received(data)
            return
        t0 = wd.clock()
        try:
            self._received(data)
        finally:
            dt = wd.clock() - t0
            if wd.observe(self.proto, dt):
                wd.stall(self.proto, dt, f"{self.peer[0]}:{self.peer[1]}",
                         f"{self.proto} chunk of {len(data)} bytes, " + describe(data), data)

    def _received(self, data: bytes) -> None:
        ep = self.endpoint
        now = ep.now()
        self.last_activity = now
        items = self.framer.feed(data)
        self.partial_since = (self.partial_since or now) if self.framer.pending else None
        policy = getattr(ep, "overload", None)
        for item in items:
            if policy is not None and isinstance(item, Request):
                # its age: the loop's lag plus the time spent on the messages read before it
                age = policy.stream_late(ep.now() - now)
                if age is not None and not self._admit_late(item, age, policy):
                    continue
            ep.on_stream_item(item, self)
            if self.closed:
                return
        if self.framer.closed:
            self.finish()

    def _admit_late(self, req: Request, age: float, policy) -> bool:
        """A request that waited past the overload bound: the policy decides (True: handle it as usual)."""
        verdict = policy.shed_stream(stream_kind(req), age, time.time())
        if verdict == REJECT:
            retry = retry_spread(req.call_id.encode(), policy.o.retry_after)
            resp = make_response(req, 503, to_tag=policy.tag, headers=[("Retry-After", str(retry))])
            if policy.server:
                resp.add("Server", policy.server)
            self.endpoint.send_stateless(resp, self.target)
        return verdict == "admit"

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.endpoint.connections.discard(self)
        self.endpoint.on_connection_lost(self)

    def send(self, data: bytes, target: Target | None = None) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)
            if self.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
                # a peer that stopped reading: its answers would pile up in memory without end
                get_logger("sip").warning("stream_send_buffer_full", proto=self.proto,
                                          peer=f"{self.peer[0]}:{self.peer[1]}")
                self.closed = True
                self.endpoint.connections.discard(self)
                self.transport.abort()

    def finish(self, linger: float = 2.0) -> None:
        """Close after a fatal framing error without losing our answer: half-close, drop what the peer is
        still sending for a moment, then close. Closing at once with unread input resets the connection, and a
        reset can destroy the 400 the peer has not read yet."""
        if self.closed or self.transport is None:
            return
        self.closed = True
        self._draining = True
        self.endpoint.connections.discard(self)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_event_loop().call_later(linger, self.transport.close)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()


class TlsConnection(StreamConnection):
    """SIP over TLS (RFC 3261 s. 26.3.1): the same stream framing inside the encrypted channel."""
    proto = "tls"


async def listen_tcp(loop, endpoint, host: str, port: int, ssl=None, conn_class=StreamConnection):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return await loop.create_server(lambda: conn_class(endpoint), host, port, family=family,
                                    reuse_address=True, ssl=ssl, backlog=1024)


async def connect_tcp(loop, endpoint, host: str, port: int, ssl=None, conn_class=StreamConnection):
    _, conn = await loop.create_connection(lambda: conn_class(endpoint), host, port, ssl=ssl)
    return conn
