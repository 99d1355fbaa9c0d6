"""Registered phones that come and go: OPTIONS keepalives and RFC 5626 flows, the shell around keepalive.py.

- Every binding the registrar holds gets an OPTIONS now and then (the schedule and the verdicts are the pure
  `Keepalive`); a binding that stops answering is unreachable: `reachable()` leaves it out, so the contact
  center never offers it a call, until it answers or registers again.
- Probes are stateless, as Kamailio's nathelper pings: one OPTIONS per probe, no client transaction (no
  re-sends, no timers of its own: the keepalive's timeout is the only one), its answer found by the Via branch,
  which carries the probe's token and a random secret: over UDP read straight from the datagram
  (`answer_datagram`, the endpoint's response lane), otherwise from the parsed response no transaction took.
  A site of 20,000 phones probed every 30 s sends 667 a second, more with dead bindings: as transactions
  (re-sent to the silent ones) they cost the 20,000-agent benchmark tenant a tenth of its registration
  capacity. A probe lost over UDP is one failure, and `failures` in a row are needed.
- A binding registered over a stream (TCP, TLS, WebSocket) lives as long as its connection: when the
  connection closes, the bindings registered over it are removed at once (RFC 5626 s. 5.2, flow semantics),
  since nothing can reach that phone any more (a browser or a phone behind NAT cannot be dialled back).
Listeners hear of both, with the registrar's listener signature (user, before, after).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import re
import secrets
import time
from typing import Callable

from .. import log
from ..aio import drive
from .keepalive import Failed, Keepalive, KeepaliveOptions, Probe, Reachable, Unreachable
from .location import Binding
from ..sip.errors import SipError
from ..sip.message import Request, Response
from ..sip.uri import parse_uri

STREAMS = ("tcp", "tls", "ws", "wss")
DEFER = 1.0          # seconds between looks while the node sheds
Flow = tuple[str, str, int]          # transport, peer host, peer port: one connection
_PREFIX = os.urandom(3).hex()
# a probe's branch: RFC 3261's magic cookie, "ka.", its token and its secret in hex
_BRANCH = "z9hG4bKka."
_BRANCH_AT = b";branch=" + _BRANCH.encode()
_BRANCH_RE = re.compile(rb"z9hG4bKka\.([0-9a-f]{1,16})\.[0-9a-f]{16}(?![A-Za-z0-9.!%*_+`'~-])")   # group 1: token
_tags = itertools.count(1)


def _tag() -> str:
    return f"{_PREFIX}{next(_tags):x}"


def keepalive_options(k) -> KeepaliveOptions:
    """phones.keepalive of the config (the defaults for a node built without one)."""
    return KeepaliveOptions() if k is None else KeepaliveOptions(k.interval, k.timeout, k.failures)


class PhoneWatch:
    def __init__(self, loop: asyncio.AbstractEventLoop, endpoint, registrar, options: KeepaliveOptions,
                 calls, domain: str, clock: Callable[[], float] = time.time) -> None:
        self.loop = loop
        self.endpoint = endpoint
        self.registrar = registrar
        self.calls = calls                   # CallControl: where a binding is reached, our Via per transport
        self.domain = domain
        self.clock = clock
        self.core = Keepalive(options, random.Random())
        self.log = log.get("phones")
        self.by_aor: dict[str, dict[str, Binding]] = {}
        self.flows: dict[Flow, set[tuple[str, str]]] = {}
        self.listeners: list[Callable[[str, list, list], None]] = []     # reachability changed
        self.flow_listeners: list[Callable[[str], None]] = []            # a user's flow closed (before removal)
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None
        self._pending: dict[int, tuple] = {}        # probe token -> (binding key, its branch)
        self.stats = {"flows_closed": 0, "bindings_dropped": 0, "ticks_deferred": 0}
        self.stopped = False
        self.restoring = False      # bindings kept from a previous run are coming in: unreachable until answered
        # fn() -> True while the node sheds peers' requests: probes wait (the peers' work comes first, and a
        # phone's answer queued behind a storm would read as silence)
        self.deferring: Callable[[], bool] = lambda: False

    def stop(self) -> None:
        """The node is stopping: its connections close, but the bindings are no business of ours now."""
        self.stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- what the contact center asks ----------------------------------------------------------------------
    def reachable(self, bindings: list[Binding]) -> list[Binding]:
        core = self.core
        return [b for b in bindings if not core.is_unreachable((b.aor, b.key))]

    def set_options(self, options: KeepaliveOptions) -> None:
        """A reload with other keepalive settings: the schedule starts again, verdicts are kept."""
        if options == self.core.options:
            return
        old, now = self.core, self.clock()
        self.core = Keepalive(options, old.rng)
        self._pending.clear()                   # the old schedule's probes: their answers mean nothing now
        for aor, bindings in self.by_aor.items():
            for key in bindings:
                self.core.add((aor, key), now, unreachable=old.is_unreachable((aor, key)))
        self._rearm()

    # --- inputs --------------------------------------------------------------------------------------------
    def on_bindings(self, user: str, before: list[Binding], after: list[Binding]) -> None:
        """The registrar's listener (placed before the contact center's, which then sees reachability)."""
        now = self.clock()
        new = {b.key: b for b in after}
        aor = (after or before)[0].aor if (after or before) else ""
        known = self.by_aor.get(aor, {})
        for key, b in list(known.items()):
            if key not in new:
                self._forget(b)
        for key, b in new.items():
            old = known.get(key)
            if old is not None and old.source != b.source:
                self._unindex(old)
            self._index(b)
            if self.restoring:      # the phone may be long gone: it answers before it is offered a call
                self.core.add((b.aor, key), now, unreachable=True, within=self.core.options.interval / 3)
            self.core.add((b.aor, key), now)
            if old is not None and (old.call_id, old.cseq) != (b.call_id, b.cseq):
                # a refresh proves the phone is there; the contact center hears it from this very change
                self.core.alive((b.aor, key), now)
        if new:
            self.by_aor[aor] = dict(new)
        else:
            self.by_aor.pop(aor, None)
        self._rearm()

    def flow_closed(self, conn) -> None:
        """The endpoint lost a stream connection: its bindings go at once."""
        if self.stopped:
            return
        flow = (conn.proto, conn.peer[0], conn.peer[1])
        keys = self.flows.pop(flow, None)
        if keys:
            self.stats["flows_closed"] += 1
            self._drop(flow, keys)

    def drop_orphans(self) -> None:
        """Stream bindings restored from a past run: their connections died with it."""
        live = {(c.proto, c.peer[0], c.peer[1]) for c in self.endpoint.connections if not c.closed}
        for flow in [f for f in self.flows if f not in live]:
            self._drop(flow, self.flows.pop(flow))

    def _drop(self, flow: Flow, keys: set[tuple[str, str]]) -> None:
        by_aor: dict[str, set[str]] = {}
        for aor, key in keys:
            by_aor.setdefault(aor, set()).add(key)
        now = self.clock()
        for aor, ks in by_aor.items():
            b = self.by_aor.get(aor, {}).get(next(iter(ks)))
            if b is None:
                continue
            self.log.info("flow_closed", user=b.user, proto=flow[0], peer=f"{flow[1]}:{flow[2]}", bindings=len(ks))
            for fn in self.flow_listeners:
                fn(b.user)
            self.stats["bindings_dropped"] += len(ks)
            drive(self.registrar.drop(aor, ks, now), self._dropped)

    def _dropped(self, result, err) -> None:
        if err is not None:
            self.log.error("flow_drop_failed", error=repr(err))

    # --- bookkeeping ---------------------------------------------------------------------------------------
    def _index(self, b: Binding) -> None:
        if b.source[0] in STREAMS:
            self.flows.setdefault(tuple(b.source), set()).add((b.aor, b.key))

    def _unindex(self, b: Binding) -> None:
        flow = tuple(b.source)
        keys = self.flows.get(flow)
        if keys is not None:
            keys.discard((b.aor, b.key))
            if not keys:
                del self.flows[flow]

    def _forget(self, b: Binding) -> None:
        self._unindex(b)
        self._unwatch((b.aor, b.key))

    def _unwatch(self, key) -> None:
        """No more probes for this binding, and none outstanding (nothing else ends a stateless one)."""
        self._pending.pop(self.core.remove(key), None)

    # --- the timer and the probes --------------------------------------------------------------------------
    def _rearm(self) -> None:
        deadline = self.core.next_deadline()
        if deadline == self._armed_for and (self._timer is not None or deadline is None):
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed_for = deadline
        if deadline is not None and not self.stopped:
            self._timer = self.loop.call_later(max(0.0, deadline - self.clock()), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._armed_for = None
        if self.deferring():
            self.stats["ticks_deferred"] += 1
            if not self.stopped:         # due probes stay due: _rearm sees them armed and leaves the timer
                self._armed_for = self.core.next_deadline()
                self._timer = self.loop.call_later(DEFER, self._tick)
            return
        try:
            self._carry_out(self.core.poll(self.clock()))
        except Exception:
            self.log.exception("keepalive_failed")
        self._rearm()

    def _carry_out(self, effects: list) -> None:
        for eff in effects:
            if isinstance(eff, Failed):
                self._pending.pop(eff.token, None)      # a late answer finds nothing
                continue
            aor, key = eff.key
            b = self.by_aor.get(aor, {}).get(key)
            if b is None:
                self._unwatch(eff.key)
            elif isinstance(eff, Probe):
                self._probe(b, eff)
            elif isinstance(eff, (Unreachable, Reachable)):
                reachable = isinstance(eff, Reachable)
                self.log.info("phone_reachable" if reachable else "phone_unreachable", user=b.user,
                              contact=b.contact, proto=b.source[0])
                current = list(self.by_aor.get(aor, {}).values())
                for fn in self.listeners:
                    fn(b.user, current, current)

    def _probe(self, b: Binding, probe: Probe) -> None:
        try:
            uri = parse_uri(b.contact)
        except SipError:
            self._unwatch(probe.key)             # a contact we cannot send to: nothing to watch
            return
        target = self.calls.binding_target(b)
        branch = f"{_BRANCH}{probe.token:x}.{secrets.token_hex(8)}"
        headers = [["Via", f"{self.calls.via_for(target.proto)};branch={branch}"],
                   ["Max-Forwards", "70"], ["From", f"<sip:softswitch@{self.domain}>;tag={_tag()}"],
                   ["To", f"<sip:{b.user}@{self.domain}>"], ["Call-ID", f"ka-{_tag()}@{self.domain}"],
                   ["CSeq", "1 OPTIONS"], ["Accept", "application/sdp"]]
        headers += [["Route", p] for p in b.path]
        self._pending[probe.token] = (probe.key, branch)
        self.endpoint.send_stateless(Request("OPTIONS", uri, headers), target)

    # --- the answers ---------------------------------------------------------------------------------------
    def answer_datagram(self, data: bytes) -> bool:
        """The endpoint's response lane: True when the response datagram `data` answers a probe outstanding
        (its branch, token and secret, in the head). Two searches and an anchored match, linear in the
        datagram; anything else (a late or forged answer too) goes the general way."""
        end = data.find(b"\r\n\r\n")
        i = data.find(_BRANCH_AT, 0, end if end >= 0 else len(data))
        if i < 0:
            return False
        m = _BRANCH_RE.match(data, i + 8)
        return m is not None and self._answered(m)

    def answer(self, resp: Response, src) -> bool:
        """A stray-response handler, for a parsed response no client transaction took (a stream's, or a
        datagram the lane left): True when it carries a probe's branch (answering one outstanding or not:
        nothing else waits for it)."""
        try:
            branch = resp.top_via.param("branch") or ""
        except (SipError, IndexError):
            return False
        if not branch.startswith(_BRANCH):
            return False
        m = _BRANCH_RE.fullmatch(branch.encode("latin-1", "replace"))
        if m is not None:
            self._answered(m)
        return True

    def _answered(self, m: re.Match) -> bool:
        """Any answer to the probe whose branch `m` matched (`_BRANCH_RE`; a 404 or 501 too: the phone is
        there), while it is outstanding: True."""
        token = int(m.group(1), 16)
        entry = self._pending.get(token)
        if entry is None or entry[1] != m.group().decode("ascii"):
            return False
        del self._pending[token]
        self._carry_out(self.core.answered(entry[0], token, self.clock()))
        self._rearm()
        return True
