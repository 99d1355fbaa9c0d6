"""The two client shells of a trunk on the node's endpoint: its registration to a provider and its OPTIONS
pinger. Each feeds its pure machine (register.py, ping.py) the answers of requests sent as client transactions
through the endpoint, and carries out the effects with loop timers."""

from __future__ import annotations

import asyncio
import secrets
from time import perf_counter

from ..sip.errors import SipError
from ..sip.message import Request, Response
from ..sip.uri import parse_uri
from ..transport.base import Target
from .ping import Arm as PingArm
from .ping import Changed, Ping, PingState, answered
from .register import Account, Arm, Registration, Send


class _Client:
    def __init__(self, svc, trunk, target: Target) -> None:
        self.svc, self.trunk, self.target = svc, trunk, target
        self.loop: asyncio.AbstractEventLoop = svc.loop
        self.timer: asyncio.TimerHandle | None = None
        self.call_id = f"{secrets.token_hex(10)}@softswitch"
        self.tag = secrets.token_hex(6)
        self.cseq = 0
        self.seq = 0                 # the request whose answer counts; older answers are ignored
        self.stopped = False

    def _arm(self, at: float, fn) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_at(at, fn)

    def _request(self, method: str, uri: str, to: str, extra: list[list[str]], listener) -> None:
        ep = self.svc.endpoint
        host, port = self.svc.local(self.target.proto)
        self.cseq += 1
        self.seq += 1
        seq = self.seq
        branch = ep.layer.new_branch()
        # alias (RFC 5923): the provider may send its requests for our Contact back on this connection
        alias = ";alias" if self.target.proto == "tls" else ""
        headers = [["Via", f"SIP/2.0/{self.target.proto.upper()} {_h(host)}:{port};rport{alias};branch={branch}"],
                   ["Max-Forwards", "70"], ["From", f"{to};tag={self.tag}"], ["To", to],
                   ["Call-ID", self.call_id], ["CSeq", f"{self.cseq} {method}"]] + extra
        if ep.user_agent:
            headers.append(["User-Agent", ep.user_agent])
        req = Request(method, parse_uri(uri), headers)
        ep.send_request(req, self.target, lambda event, tx, msg: listener(seq, event, msg))

    def stop(self) -> None:
        self.stopped = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class RegisterClient(_Client):
    """`trunk.register` kept alive at the registrar: the contact it registers is the node's own address, so
    the provider's calls on that registration reach the node."""

    def __init__(self, svc, trunk, target: Target) -> None:
        super().__init__(svc, trunk, target)
        reg = trunk.register
        s = reg.secret
        self.aor = f"sip:{s.username}@{reg.domain}"
        self.machine = Registration(
            Account(reg.registrar, self.aor, s.username, s.password, dict(s.ha1), s.realm, reg.expires),
            reg.retry, reg.retry_max, cnonce=lambda: secrets.token_hex(8))
        self.round_trips: list[float] = []     # seconds from a round's first REGISTER to its 200
        self._round_start: float | None = None

    @property
    def state(self) -> str:
        return self.machine.state

    def contact(self) -> str:
        host, port = self.svc.local(self.target.proto)
        t = "" if self.target.proto == "udp" else f";transport={self.target.proto}"
        return f"<sip:{self.machine.account.username}@{_h(host)}:{port}{t}>"

    def start(self) -> None:
        self._apply(self.machine.start(self.loop.time()))

    def _apply(self, effects) -> None:
        for eff in effects:
            if isinstance(eff, Send):
                if self._round_start is None:
                    self._round_start = perf_counter()     # the loop's clock may tick in milliseconds
                extra = [["Contact", self.contact()], ["Expires", str(eff.expires)]]
                if eff.authorization:
                    extra.append([eff.header, eff.authorization])
                self._send(extra)
            elif isinstance(eff, Arm):
                self._arm(eff.at, self._timer)
        self.svc.changed(self.trunk.name)

    def _send(self, extra) -> None:
        """Over TCP and TLS the connection is opened first, so a provider that refuses it (or whose certificate
        does not verify) is a network error now (and a back-off), not a transaction left to time out."""
        t = self.target
        if t.proto == "udp" or self.svc.endpoint.find_connection(t.proto, t.host, t.port) is not None:
            self._request("REGISTER", self.machine.account.registrar, f"<{self.aor}>", extra, self._answer)
            return
        self.seq += 1              # an answer to an earlier REGISTER no longer counts
        self.svc.track(self.loop.create_task(self._connect_then(extra)))

    async def _connect_then(self, extra) -> None:
        t = self.target
        try:
            await self.svc.endpoint.connector.connect(t)
        except OSError as exc:
            if not self.stopped:
                self.svc.log.info("trunk_connect_failed", trunk=self.trunk.name, error=str(exc))
                self._round_start = None
                self._apply(self.machine.network_error(self.loop.time()))
            return
        if not self.stopped:
            self._request("REGISTER", self.machine.account.registrar, f"<{self.aor}>", extra, self._answer)

    def flow_closed(self, conn) -> None:
        """The connection to the registrar closed: register again (on a new one)."""
        t = self.target
        if not self.stopped and conn.proto == t.proto and tuple(conn.peer[:2]) == (t.host, t.port):
            self._apply(self.machine.network_error(self.loop.time()))

    def _timer(self) -> None:
        self.timer = None
        if not self.stopped:
            self._apply(self.machine.timer(self.loop.time()))

    def _answer(self, seq: int, event: str, msg) -> None:
        if self.stopped or seq != self.seq:
            return
        now = self.loop.time()
        if event == "timeout":
            self._round_start = None
            self._apply(self.machine.timeout(now))
        elif event == "error":
            self._round_start = None
            self._apply(self.machine.network_error(now))
        elif event == "response" and isinstance(msg, Response) and msg.status >= 200:
            if 200 <= msg.status < 300 and self._round_start is not None:
                self.round_trips.append(perf_counter() - self._round_start)
                del self.round_trips[:-100]
            if msg.status not in (401, 407):
                self._round_start = None
            proxy = msg.status == 407
            challenges = msg.get_all("Proxy-Authenticate" if proxy else "WWW-Authenticate")
            before = self.machine.state
            granted = self._granted(msg) if msg.status != 423 else _int(msg.get("Min-Expires"))
            self._apply(self.machine.response(msg.status, now, challenges, granted, proxy))
            if self.machine.state != before:
                self.svc.log.info("trunk_registration", trunk=self.trunk.name, state=self.machine.state,
                                  status=msg.status)

    def _granted(self, resp: Response) -> int | None:
        """The expiry the registrar gave our contact: its Contact's expires, else the Expires header."""
        mine = self.contact().strip("<>")
        try:
            contacts = resp.contacts
        except SipError:
            contacts = []
        for c in contacts if isinstance(contacts, list) else ():
            if str(c.uri).split(";")[0] == mine.split(";")[0] and (e := c.param("expires")) and e.isdigit():
                return int(e)
        return _int(resp.get("Expires"))

    def unregister(self) -> None:
        effects = self.machine.stop(self.loop.time())
        self.stop()
        for eff in effects:
            if isinstance(eff, Send):
                extra = [["Contact", self.contact()], ["Expires", "0"]]
                if eff.authorization:
                    extra.append([eff.header, eff.authorization])
                self._request("REGISTER", self.machine.account.registrar, f"<{self.aor}>", extra,
                              lambda *a: None)


class Pinger(_Client):
    """OPTIONS to the trunk every `interval`; a ping unanswered after `timeout` is a miss (the transaction's own
    32 s would be far too slow to notice a dead peer)."""

    def __init__(self, svc, trunk, target: Target) -> None:
        super().__init__(svc, trunk, target)
        o = trunk.options
        self.machine = PingState(o.interval, o.threshold, o.timeout)
        self.sent_at = 0.0
        self.resolved = True
        self.changes: list[Changed] = []

    @property
    def state(self) -> str:
        return self.machine.state

    def start(self) -> None:
        self._apply(self.machine.start(self.loop.time()))

    def _apply(self, effects) -> None:
        for eff in effects:
            if isinstance(eff, Ping):
                self.sent_at, self.resolved = self.loop.time(), False
                host, port = self.target.host, self.target.port
                uri = f"sip:{_h(host)}:{port}" + ("" if self.target.proto == "udp" else f";transport={self.target.proto}")
                self._request("OPTIONS", uri, f"<{uri}>", [["Accept", "application/sdp"]], self._answer)
                self._arm(self.sent_at + eff.timeout, self._missed)
            elif isinstance(eff, PingArm):
                self._arm(eff.at, self._due)
            elif isinstance(eff, Changed):
                self.changes.append(eff)
                del self.changes[:-20]
                self.svc.log.warning("trunk_state", trunk=self.trunk.name, state=eff.state)
        self.svc.changed(self.trunk.name)

    def _due(self) -> None:
        self.timer = None
        if not self.stopped:
            self._apply(self.machine.due(self.loop.time()))

    def _missed(self) -> None:
        self.timer = None
        if not self.stopped and not self.resolved:
            self.resolved = True
            self._apply(self.machine.result(False, self.loop.time()))

    def _answer(self, seq: int, event: str, msg) -> None:
        if self.stopped or seq != self.seq or self.resolved:
            return
        if event == "response" and (msg is None or msg.status < 200):
            return
        self.resolved = True
        ok = event == "response" and answered(msg.status)
        self._apply(self.machine.result(ok, self.loop.time()))


def _int(value: str | None) -> int | None:
    return int(value.strip()) if value and value.strip().isdigit() and len(value.strip()) < 10 else None


def _h(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
