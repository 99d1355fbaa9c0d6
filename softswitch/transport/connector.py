"""Outgoing stream connections (TCP and TLS) to peers the node sends requests to: trunks, providers, phones
reached over TCP.

One connection per (proto, host, port), opened on the first message and used for every later one (and found
again by the endpoint for the peer's own requests on it: RFC 5923 reuse). Messages sent while it connects wait
in a bounded queue; a failed or timed-out connect drops them and tells the endpoint, which fails the client
transactions waiting on that destination (RFC 3261 s. 8.1.3.1: a transport error, not a 32 s timeout). A closed
connection is opened again by the next message.

TLS needs a policy for the destination (`tls[(host, port)]`, set by whoever configured it, the trunks): the node
dials TLS only where it was told to, with that policy's certificate checks, and never back to a TLS phone whose
connection is gone (its ephemeral port cannot be dialled; the phone reconnects by itself).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from dataclasses import dataclass, field

from .. import log
from .base import Target
from .tcp import StreamConnection

MAX_QUEUED = 64             # messages waiting for one connection; more are dropped (the peer is not there yet)
CONNECT_TIMEOUT = 5.0       # seconds for TCP connect plus TLS handshake


@dataclass(frozen=True)
class ClientTls:
    """How to check a TLS peer: `server_name` is sent as SNI and matched against its certificate; `cafile`
    None means the system's CAs; `pins` (SHA-256 of the DER certificate) replace the CA and name checks: the
    peer's certificate must be one of them; `verify` False checks nothing (lab use only)."""
    server_name: str | None = None
    cafile: str | None = None
    verify: bool = True
    pins: tuple[bytes, ...] = ()
    certificate: tuple[str, str] | None = None       # (certificate, key) files to present (mutual TLS)
    connect_timeout: float = CONNECT_TIMEOUT
    _ctx: list = field(default_factory=list, compare=False, hash=False, repr=False)

    def context(self) -> ssl.SSLContext:
        if not self._ctx:
            self._ctx.append(client_context(self))
        return self._ctx[0]


def client_context(p: ClientTls) -> ssl.SSLContext:
    """The SSLContext for a policy (raises ssl.SSLError / OSError on a bad CA or certificate file)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=p.cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if p.pins or not p.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if p.certificate is not None:
        ctx.load_cert_chain(*p.certificate)
    return ctx


def fingerprint(der: bytes) -> bytes:
    return hashlib.sha256(der).digest()


class _Pending:
    __slots__ = ("queue", "task", "dropped")

    def __init__(self) -> None:
        self.queue: list[bytes] = []
        self.task: asyncio.Task | None = None
        self.dropped = 0


class ClientConnection(StreamConnection):
    """A connection the node opened. A pinned TLS peer whose certificate is not pinned is closed before it
    joins the endpoint's connections, so nothing is ever sent on it."""

    def __init__(self, endpoint, proto: str, pins: tuple[bytes, ...] = ()) -> None:
        super().__init__(endpoint)
        self.proto = proto
        self.pins = pins
        self.refused: str | None = None

    def connection_made(self, transport) -> None:
        if self.pins:
            sslobj = transport.get_extra_info("ssl_object")
            der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
            if der is None or fingerprint(der) not in self.pins:
                self.refused = "certificate not pinned: sha256 " + (fingerprint(der).hex(":") if der else "none")
                self.closed = True
                self.transport = transport
                transport.abort()
                if not self.ready.done():
                    self.ready.set_result(self)
                return
        super().connection_made(transport)

    def connection_lost(self, exc) -> None:
        if self.refused is not None:
            return                # never joined the endpoint's connections
        super().connection_lost(exc)


class Connector:
    def __init__(self, endpoint, max_queued: int = MAX_QUEUED, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.endpoint = endpoint
        self.max_queued = max_queued
        self.connect_timeout = connect_timeout
        self.tls: dict[tuple[str, int], ClientTls] = {}     # (host, port) -> how to check that TLS peer
        self.pending: dict[tuple[str, str, int], _Pending] = {}
        self.stats = {"opened": 0, "failed": 0, "dropped": 0}
        self.last_error: dict[tuple[str, str, int], str] = {}   # why the last connect to a destination failed
        self.log = log.get("sip")

    def set_tls(self, policies: dict[tuple[str, int], ClientTls]) -> None:
        """Replace the TLS policies: a destination whose policy changed (or went) loses its connection, so the
        next message opens one checked the new way."""
        for key in set(self.tls) | set(policies):
            if self.tls.get(key) != policies.get(key):
                conn = self.endpoint.find_connection("tls", *key)
                if conn is not None:
                    conn.close()
        self.tls = dict(policies)

    def dialable(self, target: Target) -> bool:
        return target.proto == "tcp" or (target.proto == "tls" and (target.host, target.port) in self.tls)

    def send(self, data: bytes, target: Target) -> None:
        """Send on the destination's connection, opening it first (the message waits) when there is none."""
        key = (target.proto, target.host, target.port)
        conn = self.endpoint.find_connection(*key)
        if conn is not None:
            conn.send(data)
            return
        p = self._opening(key)
        if len(p.queue) >= self.max_queued:
            p.dropped += 1
            self.stats["dropped"] += 1
            return
        p.queue.append(data)

    async def connect(self, target: Target) -> StreamConnection:
        """The destination's connection, opened (or the one being opened) now; raises OSError if it fails."""
        key = (target.proto, target.host, target.port)
        conn = self.endpoint.find_connection(*key)
        if conn is not None:
            return conn
        p = self._opening(key)
        conn = await asyncio.shield(p.task)
        if conn is None:
            raise ConnectionError(self.last_error.get(key) or f"cannot connect to {key[0]}:{key[1]}:{key[2]}")
        return conn

    def _opening(self, key: tuple[str, str, int]) -> _Pending:
        """The connect under way to this destination, started now if there is none."""
        p = self.pending.get(key)
        if p is None:
            p = self.pending[key] = _Pending()
            p.task = self.endpoint.loop.create_task(self._open(key, p))
        return p

    async def _open(self, key: tuple[str, str, int], p: _Pending) -> StreamConnection | None:
        proto, host, port = key
        policy = self.tls.get((host, port)) if proto == "tls" else None
        timeout = policy.connect_timeout if policy is not None else self.connect_timeout
        loop, ep = self.endpoint.loop, self.endpoint
        conn = None
        error = None
        try:
            if proto == "tls":
                if policy is None:
                    raise ConnectionError("no TLS policy for this destination")
                coro = loop.create_connection(lambda: ClientConnection(ep, "tls", policy.pins), host, port,
                                              ssl=policy.context(), server_hostname=policy.server_name or host,
                                              ssl_handshake_timeout=timeout)
            else:
                coro = loop.create_connection(lambda: ClientConnection(ep, "tcp"), host, port)
            _, conn = await asyncio.wait_for(coro, timeout)
            if conn.refused is not None:
                error, conn = conn.refused, None
        except asyncio.TimeoutError:
            error = f"no connection within {timeout:g} s"
        except (OSError, ssl.SSLError, ValueError) as exc:
            error = _reason(exc)
        finally:
            if self.pending.get(key) is p:
                del self.pending[key]
        queued, p.queue = p.queue, []
        if conn is None or conn.closed:
            self.stats["failed"] += 1
            self.last_error[key] = error or "closed"
            self.log.info("stream_connect_failed", proto=proto, host=host, port=port, error=error or "closed",
                          dropped=len(queued) + p.dropped)
            ep.on_connect_failed(proto, host, port)
            return None
        self.stats["opened"] += 1
        self.last_error.pop(key, None)
        self.log.info("stream_connected", proto=proto, host=host, port=port,
                      check=_check(policy) if proto == "tls" else "none")
        for data in queued:
            conn.send(data)
        return conn

    def close(self) -> None:
        for p in list(self.pending.values()):
            if p.task is not None:
                p.task.cancel()
        self.pending.clear()


def _check(p: ClientTls) -> str:
    return "pinned" if p.pins else ("verified" if p.verify else "NOT VERIFIED")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)         # "Connection refused", without the address the log has already
    return str(exc) or type(exc).__name__


