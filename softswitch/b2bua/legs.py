"""One side of a call: a SIP dialog the B2BUA holds with a customer (UAS leg) or an agent phone (UAC leg).

A leg knows how to send requests inside its dialog to the flow the peer used (so NAT'd phones are reached on
the address they registered or called from), retransmits its own 2xx until the ACK (RFC 3261 s. 13.3.1.4),
ACKs 2xx it receives, and keeps the session timer (RFC 4028) so dead calls end.
"""

from __future__ import annotations

import itertools
import os
from typing import Callable

from ..calls import ack, flow
from ..calls.effects import ArmSessionTimer, SendBye, SendCancel, SendRefresh, StopTimers
from ..calls.leg import LegState
from ..sip.dialog import Dialog, cancel_for
from ..sip.message import Request, Response, make_response
from ..sip.uri import parse_uri
from ..transport.base import Target

_tags = itertools.count(1)
_PREFIX = os.urandom(3).hex()


def new_tag() -> str:
    return f"{_PREFIX}{next(_tags):x}"


class Leg(LegState):
    """The core's LegState (softswitch/calls/leg.py: its state table) with the SIP dialog and the sending."""

    def __init__(self, cc, role: str, call, peer: Target) -> None:
        super().__init__(role, call)
        self.cc = cc                      # the CallControl (endpoint, addresses, logging)
        self.peer = peer
        self.dialog: Dialog | None = None
        self.local_tag = new_tag()
        self.invite_tx = None
        self.invite_req: Request | None = None
        self.final: Response | None = None
        self.local_sdp = b""
        self.remote_sdp = b""
        self.sdp_version = 1
        self._ack_timer = None
        self._ack_wait: ack.AckWait | None = None
        self._pending_reinvite = None     # (tx, req) of a relayed re-INVITE waiting for the other side

    # --- addressing ----------------------------------------------------------------------------------------
    @property
    def key(self) -> tuple[str, str]:
        return (self.dialog.call_id if self.dialog else "", self.local_tag)

    @property
    def remote_uri(self) -> str:
        return self.dialog.remote_uri if self.dialog else ""

    @property
    def sip_call_id(self) -> str:
        return self.dialog.call_id if self.dialog else ""

    def carry(self, effects: list) -> None:
        """Carry out the core's effects on this leg's own signalling."""
        for eff in effects:
            if isinstance(eff, StopTimers):
                self.stop_timers()
            elif isinstance(eff, SendBye):
                self.request("BYE")
            elif isinstance(eff, SendCancel):
                self._send_cancel()
            elif isinstance(eff, SendRefresh):
                self.request("INVITE", self.local_sdp, "application/sdp", list(eff.headers), self._reinvite_done)
            elif isinstance(eff, ArmSessionTimer):
                self._arm_session(eff.delay)
            else:
                self.cc.carry([eff])

    def contact(self) -> str:
        return self.cc.contact_for(self.peer.proto)

    def via(self) -> str:
        return self.cc.via_for(self.peer.proto)

    # --- UAS side ------------------------------------------------------------------------------------------
    def answer(self, req: Request, sdp: bytes, extra: list[tuple[str, str]] = ()) -> None:
        """200 OK to the initial INVITE; then retransmit it until the ACK comes."""
        self.dialog = Dialog.as_uas(req, self.local_tag)
        self.dialog.state = "confirmed"
        self.local_sdp = sdp
        headers = [("Contact", self.contact()), ("Allow", self.cc.ALLOW), ("Supported", "timer")]
        headers += list(extra)
        if sdp:
            headers.append(("Content-Type", "application/sdp"))
        resp = make_response(req, 200, to_tag=self.local_tag, headers=headers, body=sdp)
        self.final = resp
        self.fire("answer")
        self.cc.register_leg(self)
        self.cc.endpoint.respond(self.invite_tx, resp)
        self._ack_wait, delay = ack.start(self.cc.loop.time(), self.peer.reliable)
        self._ack_timer = self.cc.loop.call_later(delay, self._resend_2xx)

    def _resend_2xx(self) -> None:
        self._ack_timer = None
        if self.state != "confirmed" or self.final is None:
            return
        what, delay = ack.due(self._ack_wait, self.cc.loop.time())
        if what == "give_up":
            self.cc.log.info("ack_timeout", call_id=self.dialog.call_id)
            self.final = None
            self.cc.leg_failed(self, "no ACK")
            return
        if what == "resend":
            self.cc.endpoint.send_stateless(self.final, self.peer)
        self._ack_timer = self.cc.loop.call_later(delay, self._resend_2xx)

    def got_ack(self, req: Request) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        self.final = None

    # --- UAC side ------------------------------------------------------------------------------------------
    def invite(self, uri: str, to: str, from_: str, sdp: bytes, extra: list[tuple[str, str]],
               listener: Callable) -> None:
        ep = self.cc.endpoint
        call_id = f"{new_tag()}-{_PREFIX}@{self.cc.domain}"
        branch = ep.layer.new_branch()
        headers = [["Via", f"{self.via()};branch={branch}"], ["Max-Forwards", "70"],
                   ["From", f"{from_};tag={self.local_tag}"], ["To", to], ["Call-ID", call_id],
                   ["CSeq", "1 INVITE"], ["Contact", self.contact()], ["Allow", self.cc.ALLOW],
                   ["Supported", "timer"]]
        headers += [[n, v] for n, v in extra]
        if sdp:
            headers.append(["Content-Type", "application/sdp"])
        req = Request("INVITE", parse_uri(uri), headers, sdp)
        self.invite_req = req
        self.local_sdp = sdp
        self.fire("invite")
        self.cc.register_pending(call_id, self)
        self.invite_tx = ep.send_request(req, self.peer, listener)

    def ack_2xx(self, resp: Response) -> None:
        """ACK for a 2xx is its own transaction-less request (s. 13.2.2.4), sent for every 2xx copy."""
        if self.dialog is None:
            self.dialog = Dialog.as_uac(self.invite_req, resp)
            self.cc.register_leg(self)
            # Answered: no CANCEL can follow (calls/flow.py cancel), the dialog has what the INVITE gave it.
            self.invite_req = None
        else:
            self.dialog.update_from_response(resp)
        ack = self.dialog.request("ACK", via=self.via(), branch=self.cc.endpoint.layer.new_branch(),
                                  contact=None, cseq=resp.cseq[0])
        self.cc.endpoint.send_stateless(ack, self.peer)

    def accept_2xx(self, resp: Response) -> bool:
        """ACK a 2xx to our INVITE (every copy). True only for the first one, when the leg is wanted: it is then
        confirmed. A leg whose call ended or that was cancelled meanwhile is confirmed and hung up at once."""
        first = self.dialog is None
        self.ack_2xx(resp)
        if not first:
            return False
        self.remote_sdp = resp.body
        unwanted = flow.answered(self)
        self.carry(unwanted)
        return not unwanted

    def cancel(self) -> None:
        """CANCEL an INVITE not yet answered; before any provisional response it waits for one (s. 9.1)."""
        if self.invite_req is not None:
            self.carry(flow.cancel(self))

    def provisional(self, status: int) -> None:
        self.carry(flow.provisional(self, status))

    def _send_cancel(self) -> None:
        self.cancel_pending = False
        self.cc.endpoint.send_request(cancel_for(self.invite_req), self.peer, lambda *a: None)

    # --- in-dialog requests --------------------------------------------------------------------------------
    def request(self, method: str, body: bytes = b"", content_type: str | None = None,
                extra: list[tuple[str, str]] = (), listener: Callable | None = None):
        if self.dialog is None:
            return None
        req = self.dialog.request(method, via=self.via(), branch=self.cc.endpoint.layer.new_branch(),
                                  contact=self.contact(), body=body, content_type=content_type, extra=extra)
        return self.cc.endpoint.send_request(req, self.peer, listener or (lambda *a: None))

    def bye(self) -> None:
        self.carry(flow.hangup(self))

    def reinvite(self, sdp: bytes, listener: Callable | None = None) -> None:
        self.sdp_version += 1
        self.local_sdp = sdp
        self.request("INVITE", sdp, "application/sdp", [("Allow", self.cc.ALLOW)], listener or self._reinvite_done)

    def _reinvite_done(self, event: str, tx, resp: Response | None) -> None:
        if event == "response" and resp is not None and 200 <= resp.status < 300:
            self.dialog.update_from_response(resp)
            ack = self.dialog.request("ACK", via=self.via(), branch=self.cc.endpoint.layer.new_branch(),
                                      contact=None, cseq=resp.cseq[0])
            self.cc.endpoint.send_stateless(ack, self.peer)
            if resp.body:
                self.remote_sdp = resp.body
        elif event == "response" and resp is not None and resp.status in (408, 481):
            self.cc.leg_failed(self, f"re-INVITE got {resp.status}")
        elif event in ("timeout", "error"):
            self.cc.leg_failed(self, f"re-INVITE {event}")

    # --- session timer (RFC 4028): the decisions are the core's (calls/session_timer.py, calls/flow.py) ------
    def start_session_timer(self, interval: int, we_refresh: bool) -> None:
        self.carry(flow.start_session(self, interval, we_refresh))

    def refreshed(self) -> None:
        self.carry(flow.refreshed(self))

    def _arm_session(self, delay: float) -> None:
        self.cc.leg_timers.arm(self, delay, self._session_due)     # softswitch/leg_timers.py: shared loop timers

    def _session_due(self) -> None:
        self.carry(flow.session_due(self))

    def stop_timers(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
        self._ack_timer = None
        self.cc.leg_timers.cancel(self)
