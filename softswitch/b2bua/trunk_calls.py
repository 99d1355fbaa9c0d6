"""Outbound calls over the trunks, the asyncio side: calls/trunk_outbound.py decides (which trunk, when to
answer its challenge, when to fail over, what the caller is told when none is left); this sends the INVITEs,
one leg per trunk tried, the anchored media handed from one attempt's leg to the next.

`place_via_dial_plan` is the one entry: agents' outbound calls (outbound.py) and callbacks (callbacks.py) use
it, and so can anything else that calls an external number. Each attempt offers the SDP cut to its trunk's
codecs (trunks/codecs.py).
"""

from __future__ import annotations

import secrets
from typing import Callable

from ..calls.trunk_outbound import Abandon, ArmAttempt, Authenticate, GiveUp, Place, TrunkDial, TrunkFailed
from .legs import Leg
from ..sip.message import Request
from ..trunks.codecs import restrict

__all__ = ["TrunkCall", "place_via_dial_plan", "routes_via_trunks"]


def routes_via_trunks(cc, number: str | None) -> bool:
    """The outbound dial plan has trunks for this number."""
    svc = getattr(cc, "trunks", None)
    return bool(number) and svc is not None and bool(svc.settings.dial_plan.trunks_for(number))


def place_via_dial_plan(cc, call, leg: Leg, number: str, sdp: bytes, *, queue: str | None = None,
                        agent: str | None = None, caller_fallback: str | None = None,
                        on_progress: Callable, on_answered: Callable, on_failed: Callable,
                        on_failover: Callable | None = None) -> "TrunkCall":
    """Call `number` through the dial plan's trunks for `call`, starting on `leg` (a UAC leg not yet used, its
    media prepared: `sdp` is offered to each trunk in turn). The caller ID is the dial plan's for `agent` or
    `queue` (else `caller_fallback`). Reported back: on_progress(leg, status, resp) for 18x,
    on_answered(leg, resp) for the 2xx (the answering leg, which may not be the first), on_failed(leg,
    status, reason) when no trunk answered (`leg` the last one, holding the media), on_failover(trunk) when a
    trunk failed and the next is tried."""
    walk = cc.trunks.outbound_for(call.id, number, queue, agent)
    tc = TrunkCall(cc, call, leg, walk, sdp, caller_fallback, on_progress, on_answered, on_failed, on_failover)
    tc.start()
    return tc


class TrunkCall:
    def __init__(self, cc, call, leg: Leg, walk, sdp: bytes, caller_fallback, on_progress, on_answered,
                 on_failed, on_failover) -> None:
        self.cc, self.svc, self.call, self.leg = cc, cc.trunks, call, leg
        self.walk, self.sdp, self.caller_fallback = walk, sdp, caller_fallback
        self.on_progress, self.on_answered, self.on_failed = on_progress, on_answered, on_failed
        self.on_failover = on_failover
        self.dial = TrunkDial(walk, attempt_timeout=self.svc.settings.dial_plan.attempt_timeout,
                              cnonce=lambda: secrets.token_hex(8))
        self.timer = None
        self.trunks_tried: list[str] = []

    def start(self) -> None:
        self._carry(self.dial.start(self.cc.loop.time()))

    # --- the core's effects --------------------------------------------------------------------------------
    def _carry(self, effects: list) -> None:
        for e in effects:
            if isinstance(e, Place):
                self._place(e.attempt)
            elif isinstance(e, Authenticate):
                self._authenticate(e)
            elif isinstance(e, ArmAttempt):
                self._arm(e.at)
            elif isinstance(e, Abandon):
                self.leg.cancel()
                self.leg.fire("failed")
            elif isinstance(e, TrunkFailed):
                self.svc.attempt_failed(e.trunk, self.call.id, e.outcome)
                self.cc.log.info("trunk_attempt_failed", call_id=self.call.id, trunk=e.trunk, outcome=str(e.outcome))
                if self.on_failover is not None and not self.dial.done:
                    self.on_failover(e.trunk)
            elif isinstance(e, GiveUp):
                self._disarm()
                self.cc.log.info("trunk_call_failed", call_id=self.call.id, status=e.status, reason=e.reason)
                self.on_failed(self.leg, e.status, e.reason)

    def _place(self, attempt) -> None:
        old = self.leg
        if old.state != "init":      # a trunk already tried on this leg: a new leg, the media handed over
            new = Leg(self.cc, "uac", self.call, old.peer)
            new.stream, new.video, old.stream, old.video = old.stream, old.video, None, None
            if old.invite_req is not None:
                self.cc.pending.pop(old.invite_req.call_id, None)
            if self.call.outbound_to is old:
                self.call.outbound_to = new
            self.leg = new
        leg = self.leg
        target = self.svc.target_for(attempt)
        if target is None:           # its host name did not resolve
            self.cc.log.warning("trunk_unresolved", call_id=self.call.id, trunk=attempt.trunk)
            self._carry(self.dial.unreachable("error", self.cc.loop.time()))
            return
        leg.peer = target
        self.trunks_tried.append(attempt.trunk)
        self.svc.attempt_placed(attempt.trunk)
        trunk = self.svc.settings.trunk(attempt.trunk)
        sdp = restrict(self.sdp, trunk.codecs) if self.sdp and trunk is not None else self.sdp
        if sdp is None:              # the caller's own session (direct media) has none of the trunk's codecs
            self.cc.log.warning("trunk_codecs_unmatched", call_id=self.call.id, trunk=attempt.trunk)
            self._carry(self.dial.unreachable("error", self.cc.loop.time()))
            return
        frm, extra = self.svc.caller_headers(attempt, self.caller_fallback)
        to = f"<{attempt.uri.split(';')[0]}>"
        self.cc.log.info("trunk_attempt", call_id=self.call.id, trunk=attempt.trunk, uri=attempt.uri)
        leg.invite(attempt.uri, to, frm, sdp, extra, self._listener(leg))

    def _authenticate(self, e: Authenticate) -> None:
        """The same INVITE again, next CSeq and a new branch, with the credentials (RFC 3261 s. 22.2)."""
        leg = self.leg
        old = leg.invite_req
        req = Request("INVITE", old.uri, [list(h) for h in old.headers], old.body)
        req.set("Via", f"{leg.via()};branch={self.cc.endpoint.layer.new_branch()}")
        req.set("CSeq", f"{old.cseq[0] + 1} INVITE")
        req.remove("Authorization")
        req.remove("Proxy-Authorization")
        req.add(e.header, e.value)
        leg.invite_req = req
        leg.invite_tx = self.cc.endpoint.send_request(req, leg.peer, self._listener(leg))

    def _arm(self, at: float) -> None:
        self._disarm()
        self.timer = self.cc.loop.call_at(at, self._timer)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timer(self) -> None:
        self.timer = None
        if self.call.ended:
            self.dial.stop()
            return
        self._carry(self.dial.timer(self.cc.loop.time()))

    # --- the trunks' answers -------------------------------------------------------------------------------
    def _listener(self, leg: Leg):
        return lambda event, tx, resp: self._answer(leg, event, resp)

    def _answer(self, leg: Leg, event: str, resp) -> None:
        if leg is not self.leg or self.call.ended or self.dial.done and not (resp and resp.status < 300):
            self._stale(leg, event, resp)
            return
        now = self.cc.loop.time()
        if event in ("timeout", "error"):
            leg.fire("failed")
            self._carry(self.dial.unreachable(event, now))
            return
        if event != "response" or resp is None:
            return
        status = resp.status
        if status < 200:
            self.dial.provisional(status, now)
            if status > 100:
                self.on_progress(leg, status, resp)
            return
        if status < 300:
            self._disarm()
            self.dial.final(status, now)
            self.on_answered(leg, resp)
            return
        proxy = status == 407
        effects = self.dial.final(status, now, resp.get_all("Proxy-Authenticate" if proxy else "WWW-Authenticate"),
                                  proxy)
        if not any(isinstance(e, Authenticate) for e in effects):
            leg.fire("failed")
        self._carry(effects)

    def _stale(self, leg: Leg, event: str, resp) -> None:
        """News for a leg given up (or of a call over): a late 2xx is ACKed and BYE'd, a 1xx lets a waiting
        CANCEL go."""
        if self.call.ended:
            self.dial.stop()
            self._disarm()
        if event != "response" or resp is None:
            return
        if 200 <= resp.status < 300:
            leg.accept_2xx(resp)
        elif 100 <= resp.status < 200:
            leg.provisional(resp.status)
