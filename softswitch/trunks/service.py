"""The node's trunks at run time (asyncio shell): host names resolved, the address index the guard and call
admission read, each trunk's call caps, its registration and its OPTIONS pinger, and their /metrics.

Trunk traffic is exempt from the per-source flood limit (`trusted` is the guard's hook) and bounded by the
trunk's own caps instead: a new INVITE from a trunk's address over its rate or its calls at once is answered
503 with Retry-After before call control sees it (`admit`, an endpoint filter).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..sip.errors import SipError
from ..sip.message import make_response
from ..sip.uri import parse_uri
from ..b2bua.trunk_agents import ring_agent
from ..settings.trunks import register_proto
from ..transport.base import Target
from ..transport.connector import ClientTls
from .admission import on_trunk_invite
from .caps import CallCaps
from .clients import Pinger, RegisterClient
from .identify import TrunkIndex, parse_address
from .outbound import OutboundCall


class TrunkService:
    def __init__(self, node, settings, log) -> None:
        self.node, self.loop, self.endpoint, self.log = node, node.loop, node.endpoint, log
        self.settings = settings
        self.resolved: dict[str, tuple[str, ...]] = {}      # host name -> addresses
        self.index = TrunkIndex()
        self.by_username: dict[str, str] = {}          # inbound_auth username -> trunk known only by it
        self.caps: dict[str, CallCaps] = {}
        self.registrations: dict[str, RegisterClient] = {}
        self.pingers: dict[str, Pinger] = {}
        self.started = False
        self._tasks: list[asyncio.Task] = []
        self.stats: dict[str, dict[str, int]] = {}      # trunk -> calls handed to call control, refused
        self.out_stats: dict[str, dict[str, int]] = {}  # trunk -> outbound INVITEs sent, failed, skipped at caps
        self._retune_caps()
        self._reindex()

    # --- hooks the node installs -----------------------------------------------------------------------------
    def trusted(self, host: str) -> bool:
        """For the guard: requests from a trunk's address skip the per-source limits."""
        return self.index.by_source(host) is not None

    def admit(self, msg, src) -> bool:
        """Endpoint filter: a trunk's new INVITE over its caps gets 503 + Retry-After (and goes no further)."""
        if getattr(msg, "method", None) != "INVITE" or not self.index.exact and not self.index.networks:
            return True
        name = self.index.by_source(src.host)
        if name is None:
            return True
        try:
            if msg.to.tag is not None:
                return True                   # a re-INVITE in a call already admitted
        except SipError:
            return True                       # a broken To is call control's to answer (400)
        caps = self.caps.get(name)
        why = caps.admit(msg.call_id, self.loop.time()) if caps is not None else None
        if why is None:
            return True
        resp = make_response(msg, 503, "Trunk call rate exceeded" if why == "rate" else "Trunk call limit reached",
                             headers=[("Retry-After", "1")])
        self.endpoint.send_stateless(resp, src)
        return False

    def on_invite(self, tx, req) -> bool:
        """Call control's hook for a new INVITE: True when answered here (see admission.py)."""
        return on_trunk_invite(self, tx, req, time.time(), lambda: secrets.token_hex(6))

    def admit_proven(self, name: str, tx, req) -> bool:
        """A trunk known by its credentials (no address, so the endpoint filter could not tell): its caps now,
        once its digest is proven; over them, 503 + Retry-After."""
        caps = self.caps.get(name)
        why = caps.admit(req.call_id, self.loop.time()) if caps is not None else None
        if why is None:
            return True
        self.endpoint.respond(tx, make_response(
            req, 503, "Trunk call rate exceeded" if why == "rate" else "Trunk call limit reached",
            to_tag=secrets.token_hex(6), headers=[("Retry-After", "1")]))
        return False

    def auth_failed(self, host: str) -> None:
        """A trunk's digest failed: the guard counts it against the source (and bans a guesser)."""
        authn = getattr(self.node, "authn", None)
        if authn is not None and authn.on_source_failure is not None:
            authn.on_source_failure(host)

    def ring_agent(self, tx, req, agent_id: str, number: str) -> None:
        """A trunk's call to an agent's own number (the trunk may reach agents): their phone rings."""
        ring_agent(self.node.calls, tx, req, agent_id, number)

    def outbound(self, number: str, queue: str | None = None, agent: str | None = None) -> OutboundCall:
        """The trunks an outbound call to `number` tries, in order (see outbound.py)."""
        return OutboundCall(self.settings, number, self.usable, queue, agent)

    def outbound_for(self, call_id: str, number: str, queue: str | None = None,
                     agent: str | None = None) -> OutboundCall:
        """As `outbound`, and a trunk is tried only if the call fits its caps (calls at once and rate, counted
        for outbound calls as for inbound ones): it then counts against them until it fails there or ends."""
        def usable(name: str) -> bool:
            p, caps = self.pingers.get(name), self.caps.get(name)
            if p is not None and not p.machine.usable:
                return False
            why = caps.admit(call_id, self.loop.time(), tally=False) if caps is not None else None
            if why is not None:
                self.out_stats[name]["capped"] += 1
            return why is None
        return OutboundCall(self.settings, number, usable, queue, agent)

    def local(self, proto: str) -> tuple[str, int]:
        """The node's own address for a transport (Via and Contact of our requests)."""
        bound = self.node.bound
        spec = next((b for b in bound if b.proto == proto), None) or next((b for b in bound if b.proto == "udp"),
                                                                          None)
        if spec is None:
            return ("127.0.0.1", 5060)
        host = spec.host
        if host in ("0.0.0.0", "::", ""):
            media = getattr(getattr(self.node.config, "server", None), "media", None)
            host = media.address if media is not None else "127.0.0.1"
        return host, spec.port

    def target_for(self, attempt) -> Target | None:
        """Where an outbound attempt's INVITE goes (its trunk's address resolved), None if it does not resolve."""
        return self._target(attempt.host, attempt.port, attempt.transport)

    def caller_headers(self, attempt, fallback: str | None) -> tuple[str, list[tuple[str, str]]]:
        """From and extra headers of an attempt: the dial plan's caller ID in From and P-Asserted-Identity, at
        the provider's domain for a registering trunk, else at the node's address."""
        trunk = self.settings.trunk(attempt.trunk)
        host = trunk.register.domain if trunk is not None and trunk.register is not None else \
            self.local(attempt.transport)[0]
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        user = attempt.caller_id or fallback or "anonymous"
        uri = f"<sip:{user}@{host}>"
        return uri, ([("P-Asserted-Identity", uri)] if attempt.caller_id else [])

    def attempt_placed(self, name: str) -> None:
        if name in self.out_stats:
            self.out_stats[name]["attempts"] += 1

    def attempt_failed(self, name: str, call_id: str, outcome) -> None:
        """The trunk failed this call: it no longer counts against its caps, and it is counted as a failure."""
        caps = self.caps.get(name)
        if caps is not None:
            caps.release(call_id)
        if name in self.out_stats:
            self.out_stats[name]["failed"] += 1

    def changed(self, name: str) -> None:
        """A registration or ping state moved (a hook for the wallboard; /metrics reads live state)."""

    # --- life --------------------------------------------------------------------------------------------------
    def track(self, task: asyncio.Task) -> None:
        self._tasks = [t for t in self._tasks if not t.done()] + [task]

    def _flow_closed(self, conn) -> None:
        for r in list(self.registrations.values()):
            r.flow_closed(conn)

    async def start(self) -> None:
        self.started = True
        self.endpoint.flow_listeners.append(self._flow_closed)
        await self._resolve_all()
        self._start_clients(self.settings.trunks)
        self._tasks.append(self.loop.create_task(self._prune()))

    async def stop(self) -> None:
        self.started = False
        if self._flow_closed in self.endpoint.flow_listeners:
            self.endpoint.flow_listeners.remove(self._flow_closed)
        for t in self._tasks:
            t.cancel()
        for r in self.registrations.values():
            r.unregister()
        for p in self.pingers.values():
            p.stop()
        self.registrations.clear()
        self.pingers.clear()

    async def _prune(self) -> None:
        """Calls that ended leave their trunk's count (call control keeps calls by the INVITE's Call-ID)."""
        while True:
            await asyncio.sleep(1.0)
            live = self.node.calls.calls
            for caps in self.caps.values():
                if caps.active:
                    caps.keep_only(live)

    def reconfigure(self, settings) -> list[str]:
        """Apply a reload: caps in place (calls counted so far stay), clients restarted only for trunks whose
        registration, pings or destination changed; host names resolved again."""
        old = {t.name: t for t in self.settings.trunks}
        new = {t.name: t for t in settings.trunks}
        changes = [f"-{n}" for n in old if n not in new] + [f"+{n}" for n in new if n not in old]
        changes += [n for n in new if n in old and old[n] != new[n]]
        self.settings = settings
        self._retune_caps()
        restart = [t for n, t in new.items() if n not in old or (old[n].register, old[n].options, old[n].target(),
                                                                  old[n].transport, old[n].tls) != (
            t.register, t.options, t.target(), t.transport, t.tls)]
        for n in [n for n in old if n not in new] + [t.name for t in restart]:
            if n in self.registrations:
                self.registrations.pop(n).unregister()
            if n in self.pingers:
                self.pingers.pop(n).stop()
        self._reindex()
        if self.started:
            async def later():
                await self._resolve_all()
                self._start_clients(restart)
            self.track(self.loop.create_task(later()))
        return changes

    def _retune_caps(self) -> None:
        names = set()
        for t in self.settings.trunks:
            names.add(t.name)
            self.stats.setdefault(t.name, {"calls": 0, "refused": 0})
            self.out_stats.setdefault(t.name, {"attempts": 0, "failed": 0, "capped": 0})
            cur = self.caps.get(t.name)
            if cur is None:
                self.caps[t.name] = CallCaps(t.calls_per_second, t.burst, t.max_calls)
            else:
                cur.retune(t.calls_per_second, t.burst, t.max_calls)
        for n in [n for n in self.caps if n not in names]:
            del self.caps[n]

    def _hosts(self) -> set[str]:
        out = set()
        for t in self.settings.trunks:
            out.update(a for a in t.addresses if parse_address(a) is None)
            if t.target() is not None and parse_address(t.target()[0]) is None:
                out.add(t.target()[0])
            if t.register is not None:
                out.add(parse_uri(t.register.registrar).host.strip("[]"))
        return out

    async def _resolve_all(self) -> None:
        for host in self._hosts():
            if parse_address(host) is not None:
                self.resolved[host] = (host,)
                continue
            try:
                infos = await self.loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
                self.resolved[host] = tuple(dict.fromkeys(i[4][0] for i in infos))
            except OSError as exc:
                self.log.warning("trunk_host_unresolved", host=host, error=str(exc))
                self.resolved.setdefault(host, ())
        self._reindex()
        self._install_tls()

    def _reindex(self) -> None:
        table: dict[str, tuple[str, ...]] = {}
        for t in self.settings.trunks:
            addrs: list[str] = []
            for a in t.addresses:
                addrs.extend(self.resolved.get(a, ()) if parse_address(a) is None else (a,))
            if t.register is not None:       # the provider's calls on our registration come from its registrar
                addrs.extend(self.resolved.get(parse_uri(t.register.registrar).host.strip("[]"), ()))
            table[t.name] = tuple(addrs)
        self.index = TrunkIndex.build(table)
        self.by_username = {t.inbound_auth.username: t.name for t in self.settings.trunks
                            if t.inbound_auth is not None and not table[t.name]}

    def _target(self, host: str, port: int, proto: str) -> Target | None:
        addrs = self.resolved.get(host) or ((host,) if parse_address(host) is not None else ())
        return Target(proto, addrs[0], port) if addrs else None

    def _install_tls(self) -> None:
        """Tell the endpoint's connector how to check each TLS destination of the trunks (proxy, registrar)."""
        policies: dict[tuple[str, int], ClientTls] = {}
        for t in self.settings.trunks:
            dests = []
            if t.transport == "tls" and t.target() is not None:
                dests.append(t.target())
            if t.register is not None and register_proto(t.register, t.transport) == "tls":
                uri = parse_uri(t.register.registrar)
                dests.append((uri.host.strip("[]"), uri.port or 5061))
            s = t.tls
            for host, port in dests:
                policy = ClientTls(s.server_name or host, s.ca_file, not s.insecure_skip_verify, s.pins,
                                   s.certificate, s.connect_timeout)
                for addr in self.resolved.get(host) or ((host,) if parse_address(host) is not None else ()):
                    policies.setdefault((addr, port), policy)
        self.endpoint.connector.set_tls(policies)
        for key, p in policies.items():
            if not p.verify:
                self.log.warning("trunk_tls_not_verified", host=key[0], port=key[1])

    def _start_clients(self, trunks) -> None:
        for t in trunks:
            if t.register is not None and t.name not in self.registrations:
                uri = parse_uri(t.register.registrar)
                proto = register_proto(t.register, t.transport)
                target = self._target(uri.host.strip("[]"), uri.port or (5061 if proto == "tls" else 5060), proto)
                if target is not None:
                    self.registrations[t.name] = c = RegisterClient(self, t, target)
                    c.start()
            if t.options is not None and t.name not in self.pingers and t.target() is not None:
                target = self._target(*t.target(), t.transport)
                if target is not None:
                    self.pingers[t.name] = p = Pinger(self, t, target)
                    p.start()

    # --- outbound (for call control) ----------------------------------------------------------------------------
    def usable(self, name: str) -> bool:
        """Not down by OPTIONS and not at its cap of calls at once."""
        p = self.pingers.get(name)
        caps = self.caps.get(name)
        return (p is None or p.machine.usable) and not (caps and caps.max_calls and len(caps.active) >= caps.max_calls)

    # --- /metrics --------------------------------------------------------------------------------------------
    def metric_families(self):
        up = GaugeMetricFamily("softswitch_trunk_up", "Trunk reachable by OPTIONS (1), down (0); 1 when not pinged",
                               labels=["trunk"])
        reg = GaugeMetricFamily("softswitch_trunk_registered", "Registration to the provider in force (1) or not",
                                labels=["trunk"])
        calls = GaugeMetricFamily("softswitch_trunk_calls", "Calls in progress over the trunk, in and out",
                                  labels=["trunk"])
        out = CounterMetricFamily("softswitch_trunk_outbound_attempts", "Outbound INVITEs sent to the trunk "
                                  "(one per call tried on it)", labels=["trunk"])
        fails = CounterMetricFamily("softswitch_trunk_failures", "Refused calls over the trunk's caps, failed outbound "
                                    "attempts, missed pings, "
                                    "failed registrations", labels=["trunk", "kind"])
        for t in self.settings.trunks:
            p, r, c = self.pingers.get(t.name), self.registrations.get(t.name), self.caps.get(t.name)
            up.add_metric([t.name], 0 if p is not None and p.state == "down" else 1)
            if r is not None:
                reg.add_metric([t.name], int(r.state == "registered"))
            calls.add_metric([t.name], len(c.active) if c else 0)
            st = self.out_stats.get(t.name, {})
            fails.add_metric([t.name, "refused"], self.stats.get(t.name, {}).get("refused", 0))
            fails.add_metric([t.name, "outbound"], st.get("failed", 0))
            fails.add_metric([t.name, "outbound_capped"], st.get("capped", 0))
            out.add_metric([t.name], st.get("attempts", 0))
            if c is not None:
                fails.add_metric([t.name, "over_rate"], c.stats["over_rate"])
                fails.add_metric([t.name, "over_calls"], c.stats["over_calls"])
            if p is not None:
                fails.add_metric([t.name, "ping_missed"], p.machine.stats["misses"])
            if r is not None:
                fails.add_metric([t.name, "registration"], r.machine.stats["failures"])
        return [up, reg, calls, fails, out]

    def view(self) -> list[dict]:
        out = []
        for t in self.settings.trunks:
            p, r, c = self.pingers.get(t.name), self.registrations.get(t.name), self.caps.get(t.name)
            st = self.out_stats.get(t.name, {})
            out.append({"trunk": t.name, "state": p.state if p else "unknown",
                        "registration": r.state if r else None, "calls": len(c.active) if c else 0,
                        "outbound": st.get("attempts", 0), "failures": st.get("failed", 0)})
        return out
