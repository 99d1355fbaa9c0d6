"""A node built from one config: the one module that wires every package together."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from media.engine import MediaEngine

from .. import log
from ..aio import finish_tasks
from ..api.account_passwords import AccountPasswords
from ..api.server import start_api
from ..b2bua.call_media import CallMedia
from ..b2bua.contact_center import ContactCenter
from ..b2bua.control import CallControl
from ..b2bua.ivr import IvrRunner
from ..b2bua.routing import Router
from ..calls import admission
from ..endpoint import Endpoint
from ..options import make_options_handler
from ..pool.queue_board import RedisQueueBoard
from ..pool.reservations import Pool
from ..records.recovery import recover, resume_agents
from ..records.store import RecordStore, RecordStoreClosed, redact_url
from ..registrar.credentials import Credentials
from ..registrar.keepalive import KeepaliveOptions
from ..registrar.location import MemoryLocationStore
from ..registrar.location_redis import RedisLocationStore
from ..registrar.location_sqlite import SqliteLocationStore
from ..registrar.phones import keepalive_options, PhoneWatch
from ..registrar.lane import RegisterLane
from ..registrar.registrar import Registrar, RegistrarOptions
from ..security.authn import Authenticator
from ..security.config import agent_algorithms, front_options, guard_options, lockout_options, overload_options
from ..security.gate import GateOptions
from ..security.guard import Guard
from ..security.lockout import AccountLockout
from ..security.overload import OverloadOptions, OverloadPolicy
from ..security.watchdog import Watchdog
from ..settings import ConfigError, load_config
from ..sip.digest import DigestAuth
from ..sip.uri import size_cache
from ..transport.tcp import listen_tcp, TlsConnection
from ..transport.front import available as front_available
from ..transport.front import spawn_front
from ..transport.udp import listen_udp
from ..transport.ws import listen_ws
from ..trunks.service import TrunkService
from ..widget.gate import WidgetGate
from ..widget.sip import end_calls_of_flow
from .reload import apply_config


@dataclass
class Listen:
    proto: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.proto}:{host}:{self.port}"


@dataclass
class NodeOptions:
    """What the node needs from the config, flattened (tests build it directly)."""
    listen: list[Listen] = field(default_factory=lambda: [Listen("udp", "127.0.0.1", 5060),
                                                          Listen("tcp", "127.0.0.1", 5060)])
    domain: str = "localhost"
    force_rport: bool = True
    partial_timeout: float = 10.0
    user_agent: str = "softswitch"
    registrar: RegistrarOptions = field(default_factory=RegistrarOptions)
    nonce_ttl: float = 300.0
    overload: OverloadOptions | None = None      # None: no overload control (the config turns it on)
    keepalive: KeepaliveOptions = KeepaliveOptions(interval=0)   # off unless the config (phones:) asks
    front: GateOptions | None = None             # None: the node reads its UDP sockets itself


class Node:
    def __init__(self, options: NodeOptions, config=None, loop: asyncio.AbstractEventLoop | None = None,
                 credentials: Credentials | None = None) -> None:
        self.options = options
        self.config = config
        self.loop = loop or asyncio.get_event_loop()
        self.log = log.get("node")
        self.endpoint = Endpoint(self.loop, force_rport=options.force_rport,
                                 partial_timeout=options.partial_timeout, user_agent=options.user_agent)
        self.endpoint.handlers["OPTIONS"] = make_options_handler(self.endpoint)
        self.watchdog = Watchdog(config.server.stall_threshold if config is not None else 0.1, time.perf_counter,
                                 log.get("watchdog"))
        self.endpoint.watchdog = self.watchdog
        self.overload = None if options.overload is None else OverloadPolicy(
            options.overload, tag=os.urandom(4).hex(), server=options.user_agent)
        realm = options.registrar.realm
        if config is not None:
            size_cache(4 * len(config.agents))     # an AOR and a contact or two per softphone, with room
        self.credentials = credentials or Credentials(realm, {})
        self.auth = DigestAuth(realm, os.urandom(32), nonce_ttl=options.nonce_ttl,
                               algorithms=options.registrar.algorithms)
        db_file = sqlite_path(config.server.storage.cdr) if config is not None else None
        self.accounts = AccountPasswords(db_file)      # passwords changed through the API, over the YAML's
        state_url = config.server.storage.state if config is not None else "memory"
        self.pool = None
        if state_url.startswith(("redis://", "rediss://")):
            # each node stays an independent registrar (its own bindings, kept in Redis); agents are shared
            self.location = RedisLocationStore(state_url, prefix=f"ss:loc:{config.server.node_id}:")
            self.pool = Pool(state_url, config.server.node_id, self.loop)
            self.accounts.redis = self.pool.redis          # changed passwords shared by the pool
        elif db_file:
            self.location = SqliteLocationStore(db_file)      # registrations survive a restart
        else:
            self.location = MemoryLocationStore()
        self.authn = Authenticator(self.auth, self.credentials.ha1)
        if config is not None:
            self.authn.per_user = agent_algorithms(config)
        self.registrar = Registrar(self.location, self.auth, self.credentials.ha1, options.registrar,
                                   authn=self.authn)
        self.endpoint.answered["REGISTER"] = self.registrar.serve
        self.endpoint.stateless["REGISTER"] = lambda req: self.registrar.challenge_if_needed(req, time.time())
        self.endpoint.register_lane = RegisterLane(self.endpoint, self.registrar)
        self.router = Router(config.routes if config else [],
                             {a.softphone: a.id for a in config.agents} if config else {})
        self.center: ContactCenter | None = None
        self.media_engine = None
        self.records = None
        call_media = None
        base = None
        self._resume: list[dict] = []            # agents signed in when the last run ended, to sign in again
        if config is not None:
            self.records = RecordStore(config.server.storage.cdr, node=config.server.node_id)
            # calls and agent states a crash left open are closed before anything new is written
            _, self._resume = recover(self.records)
        if config is not None and config.queues:
            self.center = ContactCenter(config, self.loop)
            self.center.records = self.records
            if self.pool is not None:
                self.pool.center = self.center
                self.center.pool = self.pool
                self.center.board = self.pool.board = RedisQueueBoard(self.pool.redis, config.server.node_id)
            self.registrar.listeners.append(self.center.on_bindings)
            base = Path(config.file).resolve().parent
            if config.server.media.anchor:
                call_media = self._media(config, base)
        media = config.server.media if config else None
        self.calls = CallControl(self.endpoint, self.router, domain=options.domain,
                                 media_address=media.address if media else "127.0.0.1",
                                 rtp_ports=media.rtp_ports if media else (20000, 29999),
                                 session_expires=int(config.server.sip.session_expires) if config else 1800,
                                 authn=self.authn, center=self.center, media=call_media,
                                 pool=self.pool if self.center is not None else None, records=self.records,
                                 node_id=config.server.node_id if config else "",
                                 queue_settings={q.name: q for q in config.queues} if config else {},
                                 max_calls=config.server.sip.max_calls if config else 0)
        # click-to-dial: tokens for web visitors; it reads self.config, so a reload applies to it too
        self.widgets = self.calls.widgets = WidgetGate(lambda: self.config) if config is not None else None
        if self.widgets is not None:
            self.endpoint.flow_listeners.append(lambda conn: end_calls_of_flow(self.calls, conn))
        self.guard = None
        if config is not None:
            self._security(config.server.sip.security)
        self.trunks = TrunkService(self, config.trunks, log.get("trunks")) if config is not None else None
        if self.trunks is not None:
            if self.guard is not None:
                self.guard.trusted = self.trunks.trusted
            self.endpoint.filters.append(self.trunks.admit)
            self.calls.trunk_invite = self.trunks.on_invite
            self.calls.trunks = self.trunks
        self.phones = PhoneWatch(self.loop, self.endpoint, self.registrar, options.keepalive, self.calls,
                                 options.domain)
        self.registrar.listeners.insert(0, self.phones.on_bindings)    # first: the others see reachability
        self.endpoint.response_lane = self.phones.answer_datagram
        self.endpoint.stray_response_handlers.append(self.phones.answer)
        if self.overload is not None:
            self.phones.deferring = lambda: self.overload.shedding
        self.endpoint.flow_listeners.append(self.phones.flow_closed)
        if self.center is not None:
            self.center.calls = self.calls      # the ACD's actions (offers, withdrawals) go to call control
            self.center.reachable = self.phones.reachable
            self.phones.listeners.append(self.center.on_bindings)
            self.phones.flow_listeners.append(self.center.flow_lost)
            self.calls.ivr_runner = IvrRunner(self.calls, config.ivr, base, self.loop)
            if call_media is not None:
                self.calls.ivr_runner.player = lambda call, path: call_media.play(call.customer.stream, str(path))
        self.api = None
        self._tasks: list[asyncio.Task] = []
        self.servers: list = []
        self.bound: list[Listen] = []
        self.stopped = asyncio.Event()
        self.front = None                   # softswitch.transport.front.Front, when one reads the UDP sockets

    def _security(self, sec) -> None:
        self.guard = Guard(guard_options(sec), log.get("guard"))
        guard, loop, ep = self.guard, self.loop, self.endpoint
        ep.source_filter = lambda src: guard.admit(src.host, loop.time())
        ep.filters.append(lambda msg, src: guard.allow(src.host, msg.get("User-Agent"), loop.time()))
        ep.limits, ep.max_message_size, ep.max_vias = True, sec.max_message_size, sec.max_vias
        self.authn.on_source_failure = lambda host: guard.auth_failed(host, loop.time())
        self.authn.lockout = AccountLockout(lockout_options(sec), log.get("guard"))
        self.calls.outbound_per_minute = sec.outbound_calls_per_minute

    def _media(self, config, base: Path):
        self.media_engine = MediaEngine(self.loop, config.server.media.address, config.server.media.rtp_ports)
        recordings = recordings_dir(config.server.storage.cdr)
        return CallMedia(self.media_engine, base, recordings, log.get("media"))

    async def start(self) -> None:
        ep = self.endpoint
        ep.overload = self.overload
        for spec in self.options.listen:
            if spec.proto == "udp":
                u = await listen_udp(self.loop, ep, spec.host, spec.port)
                u.watchdog, u.overload = self.watchdog, self.overload
                if self.guard is not None:
                    guard, loop = self.guard, self.loop
                    u.allowed = lambda host, ua: guard.allow(host, ua, loop.time())
                ep.udp.append(u)
                self.bound.append(Listen("udp", spec.host, u.local[1]))
            elif spec.proto == "tcp":
                srv = await listen_tcp(self.loop, ep, spec.host, spec.port)
                self.servers.append(srv)
                self.bound.append(Listen("tcp", spec.host, srv.sockets[0].getsockname()[1]))
            elif spec.proto == "tls" and self.config is not None and self.config.server.sip.tls:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.load_cert_chain(*self.config.server.sip.tls)
                srv = await listen_tcp(self.loop, ep, spec.host, spec.port, ssl=ctx, conn_class=TlsConnection)
                self.servers.append(srv)
                self.bound.append(Listen("tls", spec.host, srv.sockets[0].getsockname()[1]))
            elif spec.proto in ("ws", "wss"):
                ctx = None
                if spec.proto == "wss":
                    if self.config is None or not self.config.server.sip.tls:
                        raise ValueError("wss: listener needs server.sip.tls (certificate, key)")
                    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    ctx.load_cert_chain(*self.config.server.sip.tls)
                srv = await listen_ws(self.loop, ep, spec.host, spec.port, ssl=ctx,
                                      widget_origin=self.widgets.ws_origin_allowed if self.widgets else None)
                self.servers.append(srv)
                self.bound.append(Listen(spec.proto, spec.host, srv.port))
            else:
                raise ValueError(f"transport {spec.proto!r} is not available on this node")
        # the front process starts while the rest of the node does; it reads the UDP sockets from the end of start
        front = self._spawn_front() if self.options.front is not None and self.overload is not None and ep.udp \
            and front_available() else None
        for b in self.bound:
            self.calls.listen.setdefault(b.proto, (b.host, b.port))
        if self.media_engine is not None:
            await self.media_engine.start()
        restored = getattr(self.location, "loaded", {})
        self.phones.restoring = True          # they count once they answer a keepalive
        for aor, bindings in list(restored.items()):
            if bindings:
                for listener in self.registrar.listeners:
                    listener(bindings[0].user, [], list(bindings))
        self.phones.restoring = False
        if restored:
            self.log.info("bindings_restored", aors=len(restored))
        self.phones.drop_orphans()
        if self.center is not None and self._resume:
            resume_agents(self.center, self.records, self._resume)
            self._resume = []
            try:        # the agents' lines after a restart are on disk before the node says it listens
                await self.loop.run_in_executor(None, self.records.flush, self.records.commit_wait)
            except Exception as exc:
                self.log.error("records_flush_failed", error=repr(exc))
        ep.start()
        if self.trunks is not None:
            await self.trunks.start()
        if self.center is not None:
            self.center.start()
        if self.pool is not None:
            self.pool.start()
        http = self.config.server.http_listen if self.config is not None else None
        if http is not None and self.center is not None:
            self.api = await start_api(self, http[0], http[1])
        self._tasks.append(self.loop.create_task(self._expire_bindings()))
        if self.accounts.redis is not None:
            self._tasks.append(self.loop.create_task(self.accounts.follow(log=self.log)))
        self._tasks.append(self.loop.create_task(self._watch_loop_lag()))
        if self.records is not None:
            self._tasks.append(self.loop.create_task(self._alive()))
        if front is not None and await front.started():
            self._attach_front(front)
        self.log.info("listening", sip=[str(b) for b in self.bound])

    async def _expire_bindings(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.credentials.refresh()
                await self.registrar.expire(time.time())
            except Exception:
                self.log.exception("binding_expiry_failed")

    async def _alive(self, every: float = 1.0) -> None:
        """A sign of life in the records store: the calls a crash interrupts end when it was last given."""
        while True:
            try:
                self.records.touch()
            except RecordStoreClosed:   # the node is stopping
                return
            except Exception:
                self.log.exception("records_touch_failed")
            await asyncio.sleep(every)

    async def _watch_loop_lag(self, every: float = 0.05) -> None:
        """Overload signals for call admission, smoothed (admission.Watch): how late the loop runs callbacks,
        the share of time spent handling SIP, how often peers' requests wait long enough for an answer to be
        re-sent, and how old the datagrams the overload policy sheds are. Our own requests re-sent to a peer
        that does not answer (keepalives to a phone that went away, an agent's phone that never rings) say
        nothing of this node's load and are left out. Past their limits new calls get 503 + Retry-After
        instead of every call slowing down."""
        watch = admission.Watch()
        ep, stats = self.endpoint, self.endpoint.layer.stats
        last_busy, last_resent, last_created = ep.busy, stats["server_resent"], stats["server_created"]
        while True:
            t0 = self.loop.time()
            await asyncio.sleep(every)
            dt = self.loop.time() - t0
            busy, resent, created = ep.busy, stats["server_resent"], stats["server_created"]
            worst = self.overload.take_worst() if self.overload is not None else 0.0
            watch.tick(every, dt, busy - last_busy, resent - last_resent, created - last_created, worst)
            last_busy, last_resent, last_created = busy, resent, created
            calls = self.calls
            calls.loop_lag, calls.busy, calls.resend_ratio, calls.backlog = (
                watch.loop_lag, watch.busy, watch.resend_ratio, watch.backlog)
            if self.overload is not None:
                self.overload.note_loop_lag(watch.loop_lag)      # what stream connections' bytes wait

    def reload(self, path: str | None = None) -> dict:
        """Re-read the config; a file that fails validation changes nothing and says why."""
        path = path or (self.config.file if self.config is not None else None)
        try:
            new = load_config(path)
        except ConfigError as err:
            self.log.error("reload_rejected", file=path, problems=[str(p) for p in err.problems],
                           detail=str(err))
            return {"ok": False, "errors": str(err).splitlines()}
        changes = apply_config(self, new)
        self.log.info("reloaded", file=path, **{k: v for k, v in changes.items()})
        return {"ok": True, "changes": changes}

    async def drain(self, limit: float, interrupt: asyncio.Event | None = None) -> None:
        """Take no new calls (503) and let the calls in progress end, up to `limit` seconds (a second
        signal cuts it short); then the rest are ended with BYE and the records are flushed."""
        self.calls.draining = True
        deadline = self.loop.time() + limit
        while self.calls.calls and self.loop.time() < deadline and not (interrupt and interrupt.is_set()):
            await asyncio.sleep(0.1)
        if self.calls.calls:
            self.log.warning("drain_limit_reached", calls=len(self.calls.calls))
        self.calls.stop()
        await asyncio.sleep(0.2)         # let the BYEs go out
        if self.records is not None:
            await self.loop.run_in_executor(None, self.records.flush, 10)

    def _spawn_front(self):
        guard = self.guard
        return spawn_front([u.sock for u in self.endpoint.udp], self.options.front,
                           guard.o if guard is not None else None, self.overload.tag, self.overload.server, self.log)

    def _attach_front(self, front) -> None:
        self.front = front
        front.transports = list(self.endpoint.udp)
        for u, pair in zip(self.endpoint.udp, front.pairs):
            u.attach_front(pair, front)
        if self.guard is not None:
            self.guard.on_ban = front.ban

    async def stop(self) -> None:
        if self.trunks is not None:
            await self.trunks.stop()        # un-REGISTER while the transports are still up
        self.phones.stop()
        self.calls.stop()
        if self.records is not None:     # the calls' BYEs leave once their records are in
            try:
                await self.loop.run_in_executor(None, self.records.flush, self.records.commit_wait)
            except Exception as exc:
                self.log.error("records_flush_failed", error=repr(exc))
            await asyncio.sleep(0)
        self.endpoint.flush()
        if self.center is not None:
            self.center.stop()
        if self.pool is not None:
            await self.pool.stop()
        if self.api is not None:
            await self.api.cleanup()
        if self.media_engine is not None:
            await self.media_engine.stop()
        if self.records is not None:
            await self.loop.run_in_executor(None, self.records.close)
        self.accounts.close()
        if hasattr(self.location, "close"):
            closing = self.location.close
            if asyncio.iscoroutinefunction(closing):
                await closing()
            else:
                await self.loop.run_in_executor(None, closing)
        for t in self._tasks:
            t.cancel()
        self.endpoint.stop()
        if self.front is not None:
            self.front.close()
        for srv in self.servers:
            srv.close()
        for srv in self.servers:
            await srv.wait_closed()
        self.stopped.set()

    def port(self, proto: str) -> int:
        return next(b.port for b in self.bound if b.proto == proto)


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency, but the node runs without it
        return asyncio.new_event_loop()


def options_from_config(cfg) -> NodeOptions:
    sip = cfg.server.sip
    reg = sip.registrar
    listen = [Listen(x.transport, x.host, x.port) for x in sip.listen]
    ovl = sip.overload
    overload = overload_options(ovl)
    return NodeOptions(listen=listen, domain=sip.domain, user_agent=sip.user_agent, nonce_ttl=reg.nonce_ttl,
                       overload=overload if ovl.enabled else None,
                       front=front_options(ovl) if ovl.enabled and ovl.front else None,
                       keepalive=keepalive_options(cfg.keepalive),
                       registrar=RegistrarOptions(realm=sip.realm, min_expires=reg.min_expires,
                                                  max_expires=reg.max_expires, default_expires=reg.default_expires,
                                                  max_contacts=reg.max_contacts,
                                                  randomize_expires=reg.randomize_expires,
                                                  node_id=cfg.server.node_id, algorithms=reg.digest))


def credentials_from_config(cfg) -> Credentials:
    return Credentials(cfg.server.sip.realm, {a.softphone: dict(a.ha1) for a in cfg.agents},
                       db_path=sqlite_path(cfg.server.storage.cdr))


def sqlite_path(url: str) -> str | None:
    """sqlite:///relative/path or sqlite:////absolute/path; the directory is created."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):]
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def storage_paths(cfg) -> list[tuple[str, str]]:
    """Where this node writes, as absolute paths (a relative sqlite:/// path is relative to the working
    directory, which an operator starting the node from elsewhere would not guess)."""
    db = sqlite_path(cfg.server.storage.cdr)
    where = str(Path(db).resolve()) if db else redact_url(cfg.server.storage.cdr)
    recordings = recordings_dir(cfg.server.storage.cdr)
    return ([("recordings", str(recordings))] if recordings else []) + [("records", where)]


def recordings_dir(cdr_url: str) -> Path | None:
    """Recordings go beside the SQLite records file (none are kept with PostgreSQL records)."""
    db = sqlite_path(cdr_url)
    return Path(db).resolve().parent / "recordings" if db else None


def tune_gc() -> None:
    """Long-lived objects (config, tables) leave the young generations; collections get rarer. A node makes
    many short-lived objects per message, and default thresholds spend a tenth of the CPU in the collector.
    No collection first: what start-up built is alive (at 20,000 agents a full collection here finds nothing
    and costs a sixth of a second before the node listens)."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    gc.enable()


async def _serve_until_signal(loop, node: Node, cfg, config_path: str) -> asyncio.Event:
    """Say where the node listens, then wait for SIGTERM/SIGINT; returns the event a second one sets. The
    handlers are set from the running loop before the listening lines, so a signal sent as soon as they are
    read drains the node (set while the loop stood still, it would wait unseen for the loop's next run)."""
    stop, interrupt = asyncio.Event(), asyncio.Event()
    signals: list[int] = []

    def on_signal(sig: int) -> None:
        # the first SIGTERM/SIGINT drains; a second one cuts the drain short
        signals.append(sig)
        (interrupt if len(signals) > 1 else stop).set()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, lambda: node.reload(config_path))
    for b in node.bound:
        print(f"listening sip {b}", flush=True)
    if node.api is not None:
        print(f"listening http http://{cfg.server.http_listen[0]}:{node.http_port}", flush=True)
    for what, where in storage_paths(cfg):
        print(f"{what} {where}", flush=True)
    node.log.info("serving", config=config_path, node_id=cfg.server.node_id, realm=cfg.server.sip.realm,
                  agents=len(cfg.agents), queues=len(cfg.queues), routes=len(cfg.routes))
    await stop.wait()
    return interrupt


def run(config_path: str) -> int:
    log.setup()
    # The tenant's objects are built once and live for the run: no cyclic collections while they are made
    # (at 20,000 agents these cost more than the building); tune_gc freezes them and turns the collector on.
    gc.disable()
    try:
        cfg = load_config(config_path)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    loop = new_loop()
    asyncio.set_event_loop(loop)
    node = Node(options_from_config(cfg), cfg, loop, credentials_from_config(cfg))
    tune_gc()
    try:
        loop.run_until_complete(node.start())
    except OSError as exc:
        # start() binds the SIP listeners in order, then HTTP: the first one not bound is the one that failed
        listen = node.options.listen
        where = (f"{listen[len(node.bound)].proto}:{listen[len(node.bound)].host}:{listen[len(node.bound)].port}"
                 if len(node.bound) < len(listen) else "http:%s:%s" % tuple(cfg.server.http_listen or ("?", "?")))
        print(f"cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    interrupt = loop.run_until_complete(_serve_until_signal(loop, node, cfg, config_path))
    node.log.info("draining", calls=len(node.calls.calls), limit=cfg.server.drain_timeout)
    loop.run_until_complete(node.drain(cfg.server.drain_timeout, interrupt))
    node.log.info("stopping")
    loop.run_until_complete(node.stop())
    node.credentials.close()
    finish_tasks(loop)
    node.log.info("stopped")
    loop.close()
    return 0
