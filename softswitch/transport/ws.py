"""SIP over WebSocket (RFC 7118): browser softphones (SIP.js, JsSIP) reach the switch over ws: / wss:.

An aiohttp web server answers the WebSocket upgrade at `path` (and at "/ws"). Each WebSocket message, text or
binary, carries exactly one SIP message (RFC 7118 s. 5.1): there is no stream framing, so a message is parsed
as a datagram would be (no Content-Length needed). A WsConnection has the duck-typed surface of a
StreamConnection, so the endpoint answers on it (Target.conn) and finds it again for requests to a phone that
registered over it (endpoint.find_connection("ws", host, port), peer = the client's TCP address).

Handshake policy:
  - not a WebSocket upgrade at all (plain GET, unsupported Sec-WebSocket-Version) -> 426 Upgrade Required
    with `Upgrade: websocket` and `Sec-WebSocket-Version: 13` (RFC 6455 s. 4.2.2 / 4.4);
  - a WebSocket upgrade that does not offer the `sip` subprotocol -> 400 Bad Request (RFC 7118 s. 4: the
    connection is for SIP only; accepting it without a subprotocol would leave the client guessing);
  - an Origin outside `origins` (when given) -> 403; a source the endpoint's source_filter bans -> 403;
  - at WIDGET_PATH, the click-to-dial widget's own path, an Origin `widget_origin` does not allow -> 403 (none
    given: no such path). Each connection keeps its Origin header and whether it came in there (`widget`).
  On success the response carries `Sec-WebSocket-Protocol: sip`.

Keepalives: an empty message or a bare CRLF is ignored; a double CRLF gets a CRLF pong (RFC 5626 s. 3.5.1,
what SIP.js/JsSIP keepalives expect). A message over `max_message` octets closes the socket with 1009.
A WebSocket server cannot open connections to its clients: once the socket is gone, the phone must reconnect
and re-register.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque

from aiohttp import WSCloseCode, WSMsgType, web

from .. import log
from ..sip.errors import SipError
from ..sip.parser import parse_message
from ..security.watchdog import describe
from .base import Target

SUBPROTOCOL = "sip"
MAX_QUEUE = 2000          # frames waiting for a slow client before the connection is dropped
WIDGET_PATH = "/widget"


class WsConnection:
    """One SIP-over-WebSocket flow. Same surface as transport.tcp.StreamConnection."""

    def __init__(self, endpoint, ws: web.WebSocketResponse, proto: str, peer: tuple[str, int],
                 max_queue: int = MAX_QUEUE, widget_origin=None) -> None:
        self.endpoint = endpoint
        self.widget_origin = widget_origin      # Origin header -> allowed at WIDGET_PATH
        self.ws = ws
        self.proto = proto                      # "ws" or "wss"
        self.peer = peer                        # the client's TCP address
        self.last_activity = endpoint.now()
        self.partial_since: float | None = None  # WebSocket frames are whole messages: never half a message
        self.closed = False
        self.close_code: int | None = None
        self.origin: str | None = None          # the upgrade's Origin header
        self.widget = False                     # upgraded at WIDGET_PATH
        self.max_queue = max_queue
        self.ready = asyncio.get_event_loop().create_future()
        self._queue: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._writer = asyncio.ensure_future(self._write_loop())
        self._closer: asyncio.Task | None = None
        self._lost = False
        endpoint.connections.add(self)
        self.ready.set_result(self)

    def __repr__(self) -> str:
        return f"<WsConnection {self.proto} {self.peer[0]}:{self.peer[1]}{' closed' if self.closed else ''}>"

    @property
    def target(self) -> Target:
        return Target(self.proto, self.peer[0], self.peer[1], self)

    # --- input -------------------------------------------------------------------------------------------
    def on_message(self, data: bytes) -> None:
        ep = self.endpoint
        self.last_activity = ep.now()
        if not data.strip(b"\r\n"):
            if b"\r\n\r\n" in data:
                self.send(b"\r\n")          # double-CRLF ping -> CRLF pong
            return
        if ep.source_filter is not None and not ep.source_filter(self.target):
            return                          # banned (or flooding) source: not even parsed, like UDP
        policy = getattr(ep, "overload", None)
        if policy is not None:
            age = policy.stream_late(0.0)   # the loop's lag: how long frames wait before they are read
            if age is not None:
                verdict, reply = policy.shed_stream_bytes(data, age, time.time())
                if reply is not None:
                    self.send(reply)
                if verdict != "admit":
                    return
        try:
            msg = parse_message(data, datagram=True)
        except SipError as err:
            ep.on_stream_item(err, self)    # counted, logged, answered 400 when the headers allow
            return
        ep.on_stream_item(msg, self)

    # --- output ------------------------------------------------------------------------------------------
    def send(self, data: bytes, target: Target | None = None) -> None:
        """Queue one SIP message as one WebSocket frame (text when it is UTF-8, binary otherwise)."""
        if self.closed:
            return
        if len(self._queue) >= self.max_queue:
            log.get("ws").warning("ws_send_queue_full", peer=f"{self.peer[0]}:{self.peer[1]}")
            self.close(WSCloseCode.POLICY_VIOLATION)
            return
        self._queue.append(bytes(data))
        self._wake.set()

    async def _write_loop(self) -> None:
        ws, queue, wake = self.ws, self._queue, self._wake
        try:
            while True:
                await wake.wait()
                wake.clear()
                while queue:
                    data = queue.popleft()
                    await ws.send_frame(data, WSMsgType.TEXT if _is_utf8(data) else WSMsgType.BINARY)
                if self.closed:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:            # the socket went away under us
            log.get("ws").info("ws_send_failed", peer=f"{self.peer[0]}:{self.peer[1]}", error=repr(exc))
            queue.clear()
            self.close(WSCloseCode.INTERNAL_ERROR)   # 1006 may not be sent in a frame

    async def _flush_and_close(self, code: int) -> None:
        try:
            await asyncio.wait_for(self._writer, 2.0)     # what was queued before close() goes out first
        except BaseException:
            pass
        try:
            await self.ws.close(code=code)
        except Exception:
            pass

    def close(self, code: int = WSCloseCode.GOING_AWAY) -> None:
        """Close the WebSocket (queued frames go out first, for up to 2 s); leaves endpoint.connections now."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self.endpoint.connections.discard(self)
        self._wake.set()
        if not self.ws.closed:
            self._closer = asyncio.ensure_future(self._flush_and_close(code))
        else:
            self._writer.cancel()

    def connection_lost(self) -> None:
        """Called once when the handler ends, whichever side closed."""
        if self._lost:
            return
        self._lost = True
        self.closed = True
        if self._closer is None:
            self._writer.cancel()
        self.endpoint.connections.discard(self)
        self.endpoint.on_connection_lost(self)


def _is_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def offered_protocols(request: web.BaseRequest) -> list[str]:
    return [p.strip() for v in request.headers.getall("Sec-WebSocket-Protocol", []) for p in v.split(",")]


class WsServer:
    """A listening WebSocket server. `close()` then `await wait_closed()` (or `await stop()`), like a
    asyncio Server; `port` is the bound port and `sockets` mirrors asyncio.Server.sockets."""

    def __init__(self, endpoint, host: str, port: int, *, ssl=None, path: str = "/",
                 max_message: int = 65535, origins=None, heartbeat: float | None = None,
                 max_queue: int = MAX_QUEUE, widget_origin=None) -> None:
        self.endpoint = endpoint
        self.widget_origin = widget_origin      # Origin header -> allowed at WIDGET_PATH
        self.host = host
        self.requested_port = port
        self.ssl = ssl
        self.proto = "wss" if ssl is not None else "ws"
        self.path = path
        self.max_message = max_message
        self.origins = frozenset(origins) if origins is not None else None
        self.heartbeat = heartbeat
        self.max_queue = max_queue
        self.connections: set[WsConnection] = set()
        self.log = log.get("ws")
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self._cleanup: asyncio.Task | None = None
        self._port = 0

    @property
    def port(self) -> int:
        return self._port

    @property
    def sockets(self) -> list[socket.socket]:
        return [self._sock] if self._sock is not None else []

    async def start(self) -> "WsServer":
        app = web.Application()
        for p in dict.fromkeys((self.path, "/ws", *((WIDGET_PATH,) if self.widget_origin else ()))):
            app.router.add_get(p, self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.requested_port))
            sock.setblocking(False)
            site = web.SockSite(runner, sock, ssl_context=self.ssl, backlog=1024)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner, self._sock, self._port = runner, sock, sock.getsockname()[1]
        return self

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").strip().lower() != "websocket":
            return web.Response(status=426, text="SIP over WebSocket only (RFC 7118)\n",
                                headers={"Upgrade": "websocket", "Sec-WebSocket-Version": "13"})
        if SUBPROTOCOL not in offered_protocols(request):
            return web.Response(status=400, text="the 'sip' WebSocket subprotocol is required (RFC 7118 s. 4)\n")
        origin = request.headers.get("Origin")
        if self.origins is not None and origin is not None and origin not in self.origins:
            return web.Response(status=403, text="origin not allowed\n")
        widget = request.path == WIDGET_PATH and self.widget_origin is not None
        if widget and not self.widget_origin(origin):
            return web.Response(status=403, text="origin not allowed\n")
        peername = request.transport.get_extra_info("peername") if request.transport else None
        if not peername:
            return web.Response(status=400)
        peer = (peername[0], peername[1])
        ep = self.endpoint
        if self._cleanup is not None:
            return web.Response(status=503)
        if ep.source_filter is not None and not ep.source_filter(Target(self.proto, peer[0], peer[1])):
            return web.Response(status=403)
        ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), max_msg_size=self.max_message, heartbeat=self.heartbeat,
                                   decode_text=False)
        ready = ws.can_prepare(request)
        if not ready.ok:
            return web.Response(status=426, headers={"Upgrade": "websocket", "Sec-WebSocket-Version": "13"})
        await ws.prepare(request)
        conn = WsConnection(ep, ws, self.proto, peer, self.max_queue)
        conn.origin, conn.widget = origin, widget
        self.connections.add(conn)
        self.log.info("ws_connected", proto=self.proto, peer=f"{peer[0]}:{peer[1]}", origin=origin)
        try:
            while not conn.closed:
                msg = await ws.receive()
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    data = msg.data if isinstance(msg.data, bytes) else msg.data.encode("utf-8", "surrogateescape")
                    wd = ep.watchdog
                    t0 = wd.clock() if wd is not None else 0.0
                    try:
                        conn.on_message(data)
                    except Exception:
                        self.log.exception("ws_message_failed", peer=f"{peer[0]}:{peer[1]}")
                    if wd is not None:
                        dt = wd.clock() - t0
                        if wd.observe(self.proto, dt):
                            wd.stall(self.proto, dt, f"{peer[0]}:{peer[1]}",
                                     f"{self.proto} message " + describe(data), data)
                elif msg.type == WSMsgType.ERROR:
                    # aiohttp already closed the socket (1009 for a message over max_message)
                    self.log.info("ws_error", peer=f"{peer[0]}:{peer[1]}", error=str(msg.data),
                                  code=int(ws.close_code) if ws.close_code is not None else None)
                    break
                else:                           # CLOSE / CLOSING / CLOSED
                    break
        finally:
            conn.connection_lost()
            self.connections.discard(conn)
            if conn._closer is not None:
                await asyncio.shield(conn._closer)
            self.log.info("ws_closed", peer=f"{peer[0]}:{peer[1]}",
                          code=int(ws.close_code) if ws.close_code is not None else None)
        return ws

    def close(self) -> None:
        """Stop listening and close every WebSocket (1001 Going Away)."""
        if self._cleanup is not None:
            return
        for conn in list(self.connections):
            conn.close(WSCloseCode.GOING_AWAY)
        if self._runner is not None:
            self._cleanup = asyncio.ensure_future(self._runner.cleanup())
        else:
            fut = asyncio.get_event_loop().create_future()
            fut.set_result(None)
            self._cleanup = fut

    async def wait_closed(self) -> None:
        if self._cleanup is None:
            self.close()
        await self._cleanup

    async def stop(self) -> None:
        self.close()
        await self.wait_closed()


async def listen_ws(loop, endpoint, host: str, port: int, ssl=None, path: str = "/", *,
                    max_message: int = 65535, origins=None, heartbeat: float | None = None,
                    widget_origin=None) -> WsServer:
    """Serve SIP over WebSocket on host:port (wss when `ssl` is an SSLContext). Returns the running WsServer.
    `origins`: when given, browsers whose Origin is not in it are refused (403); `heartbeat`: seconds between
    WebSocket pings (a client that does not pong is dropped); None leaves it to the clients' own keepalives."""
    return await WsServer(endpoint, host, port, ssl=ssl, path=path, max_message=max_message, origins=origins,
                          heartbeat=heartbeat, widget_origin=widget_origin).start()
