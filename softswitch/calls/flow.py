"""The call core: each method takes one event (a SIP outcome on a leg, an ACD decision, a timer, an API
command) plus `now`, updates the calls and legs it holds, and returns the effects for the shell to carry out.

Nothing here sends, sleeps or reads a clock; tests drive it with a fake clock (tests/unit/calls/).
`acd` arguments are the pure ACD (acd.Acd) or None: the core reads its state, the shell runs its methods
(the Acd* effects) so the ACD's own actions reach call control.
"""

from __future__ import annotations

from . import cdr, consult, session_timer
from .effects import (AcceptBrowserAnswer, AcdCallback, AcdCallEnded, AcdCallerGone, AcdOfferFailed,
                      ArmSessionTimer, Bridge, CallBack, CallOver, CloseMedia, CloseRecording, Forget, LegFailed, Log,
                      PlayCallbackConfirm, PointMedia, Record, Reinvite, SendBye, SendCancel, SendRefresh,
                      SetSupervision, StopIvr, StopTimers, WriteCdr)
from .hangup import _cancel, cancel, hangup  # noqa: F401  (flow.hangup, flow.cancel: the legs' API)
from .leg import LegState


# --- one leg ---------------------------------------------------------------------------------------------------
def provisional(leg: LegState, status: int) -> list:
    """A 1xx to our INVITE: 18x moves the leg to early; any of them, 100 included, lets a waiting CANCEL go."""
    if status > 100:
        leg.fire("provisional")
    if leg.cancel_pending:
        leg.cancel_pending = False
        return [SendCancel(leg)]
    return []


def answered(leg: LegState) -> list:
    """The first 2xx to our INVITE (already ACKed): the leg is confirmed; one no longer wanted (cancelled, hung
    up, its call over) is BYE'd at once, since a CANCEL that loses the race to a 2xx ends by BYE."""
    call = leg.call
    unwanted = leg.cancelled or leg.state == "ended" or (call is not None and call.ended)
    leg.fire("answered")
    if unwanted:
        if leg.state == "confirmed":
            leg.fire("hangup")
        return [StopTimers(leg), SendBye(leg)]
    return []


def start_session(leg: LegState, interval: int, we_refresh: bool) -> list:
    leg.session_expires, leg.we_refresh = interval, we_refresh
    return refreshed(leg)


def refreshed(leg: LegState) -> list:
    """The session was refreshed (by either side): the deadline starts over."""
    delay = session_timer.due_in(leg.session_expires, leg.we_refresh)
    return [] if delay is None else [ArmSessionTimer(leg, delay)]


def session_due(leg: LegState) -> list:
    """The session timer fired: refresh it ourselves, or end the leg the peer stopped refreshing (RFC 4028
    s. 10: a session not refreshed in time is over)."""
    what = session_timer.on_due(leg.state, leg.we_refresh)
    if what == "refresh":
        return [SendRefresh(leg, tuple(session_timer.refresh_headers(leg.session_expires))), *refreshed(leg)]
    if what == "expire":
        return [Log("session_expired", {"call_id": leg.sip_call_id}), LegFailed(leg, "session timer expired")]
    return []


# --- calls ---------------------------------------------------------------------------------------------------
class CallCore:
    """The calls of one node and the rules between their legs."""

    def __init__(self, *, node_id: str = "") -> None:
        self.node_id = node_id
        self.calls: dict = {}                   # call id -> calls.call.Call

    def add(self, call) -> None:
        self.calls[call.id] = call

    # agents' offers
    def connected(self, call, leg, now: float, *, body: bytes, record: bool) -> list:
        """The ACD took the agent's answer: the agent is the call's, and media follows (bridged here, a browser's
        DTLS finished first, the customer called back, or the customer re-INVITEd to the agent's session when
        media goes straight between the phones)."""
        call.agent_leg = leg
        call.answered_at = now
        out: list = [Log("call_connected", {"call_id": call.id, "agent_id": leg.agent_id, "queue": call.queue},
                         "debug")]
        if leg.rtc is not None and body:
            out.append(AcceptBrowserAnswer(call, leg, body))
        elif call.callback and leg.stream is not None and body:
            out += [PointMedia(leg, body), CallBack(call, leg)]
        elif leg.stream is not None and body:
            out.append(Bridge(call, leg, body))
            if record:
                out.append(Record(call, leg))
        elif body and call.customer.state == "confirmed":
            out.append(Reinvite(call.customer, body))
        return out

    def offer_failed(self, call, leg, reason: str) -> list:
        call.offers.pop(leg.agent_id, None)
        return [CloseMedia(leg), AcdOfferFailed(call.id, leg.agent_id, reason)]

    def agent_rejected(self, call, leg, status: int) -> list:
        """A final non-2xx from the agent's phone (a CANCELled offer's 487 reports nothing more)."""
        if leg.state == "ended":
            return []
        leg.fire("failed")
        out: list = [Forget(leg)]
        if not leg.cancelled:
            out += self.offer_failed(call, leg, "no_answer" if status in (408, 480) else "declined")
        return out

    def agent_unreachable(self, call, leg, event: str) -> list:
        """The offer's INVITE timed out (the phone never answered: ring timeout) or could not be sent."""
        if leg.state == "ended" or leg.cancelled:
            return []
        leg.fire("failed")
        return self.offer_failed(call, leg, "no_answer" if event == "timeout" else "declined")

    def withdraw(self, call_id: str, agent_id: str) -> list:
        """The ACD stops ringing an agent (answered elsewhere, the caller hung up, ring timeout)."""
        call = self.calls.get(call_id)
        leg = call.offers.pop(agent_id, None) if call else None
        if leg is None:
            return []
        return [*hangup(leg), CloseMedia(leg)]

    # ends
    def peer_bye(self, leg, now: float, acd=None) -> list:
        out = [StopTimers(leg)]
        leg.fire("bye")
        return out + [Forget(leg)] + self.leg_gone(leg, "bye", now, acd)

    def leg_failed(self, leg, why: str, now: float, acd=None) -> list:
        call_id = leg.call.id if leg.call is not None else ""
        return [Log("leg_failed", {"call_id": call_id, "why": why}), *hangup(leg), Forget(leg),
                *self.leg_gone(leg, why, now, acd)]

    def leg_gone(self, leg, why: str, now: float, acd=None) -> list:
        """A leg is over: the customer's or the connected agent's ends the call; a supervisor just leaves; a
        ringing offer is dropped from the call."""
        call = leg.call
        if call is None or call.ended:
            return []
        if leg is not call.customer and call.consult is not None:
            handled = consult.leg_gone(call, leg, now)
            if handled is not None:
                return handled
        if leg is call.customer:
            return self.end_call(call, "customer " + why, now, acd)
        if leg is call.agent_leg or leg is call.outbound_to:
            return self.end_call(call, "agent " + why, now, acd)
        if leg is call.supervisor:
            call.supervisor = None
            return [CloseMedia(leg)]
        call.offers.pop(leg.agent_id, None)
        return []

    def end_call(self, call, reason: str, now: float, acd=None) -> list:
        """The one way a call ends: its record first, then every leg hung up and forgotten, its IVR, recording
        and media closed, and the ACD told (the agent to wrap-up, or the caller abandoned)."""
        if call.ended:
            return []
        call.ended = True
        self.calls.pop(call.id, None)
        acd_state = None
        if acd is not None:
            acd_state = "talking" if call.id in acd.talking else ("waiting" if call.id in acd.entries else None)
        outcome = cdr.outcome(call, acd_state, acd.outcomes.get(call.id) if acd is not None else None)
        row = cdr.cdr_row(call, node=self.node_id, reason=reason, outcome=outcome, now=now,
                          caller=call.customer.remote_uri)
        legs = call.legs()
        out: list = [CallOver(call), WriteCdr(row, call)]
        for leg in legs:
            out += [*hangup(leg), Forget(leg)]
        if call.ivr is not None:
            out.append(StopIvr(call))
        if call.recording is not None:
            out.append(CloseRecording(call))
        out += [CloseMedia(leg) for leg in legs]
        if acd_state == "talking":
            out.append(AcdCallEnded(call.id))
        elif acd_state == "waiting":
            out.append(AcdCallerGone(call.id))
        out += consult.ended(call)
        out.append(Log("call_ended", {"call_id": call.id, "reason": reason, "duration": round(now - call.started, 3)}))
        return out

    # callbacks
    def book_callback(self, call) -> list:
        """The caller pressed the callback digit (callback.accepts said yes)."""
        call.callback = True
        return [AcdCallback(call.id), PlayCallbackConfirm(call)]

    def callback_confirmed(self, call) -> list:
        """The confirmation was played: the caller's line is hung up; the call keeps its place."""
        if call.ended or call.agent_leg is not None:
            return []
        leg = call.customer
        return [*hangup(leg), Forget(leg), CloseMedia(leg),
                Log("callback_requested", {"call_id": call.id, "contact": call.customer_contact})]

    def callback_failed(self, call, leg, now: float, acd=None) -> list:
        leg.fire("failed")
        return [CloseMedia(leg), *self.end_call(call, "callback not answered", now, acd)]

    def callback_connected(self, call, leg, body: bytes) -> list:
        call.customer = leg
        return [PointMedia(leg, body), Bridge(call, call.agent_leg),
                Log("callback_connected", {"call_id": call.id, "agent_id": call.agent_leg.agent_id})]

    # supervision
    def supervisor_connected(self, call, leg, body: bytes, acd=None, phone: str = "") -> list:
        return [PointMedia(leg, body), Log("supervisor_connected", {"call_id": call.id, "phone": phone}),
                *self.supervise_now(call, call.supervisor_mode, acd)]

    def supervisor_failed(self, call, leg) -> list:
        call.supervisor = None
        return [CloseMedia(leg)]

    def supervise_now(self, call, mode: str, acd=None) -> list:
        """Apply a mode to a connected supervisor. Intercept: the supervisor takes the customer, the agent is
        hung up and freed (to wrap-up) while the call goes on."""
        sup, agent = call.supervisor, call.agent_leg
        out: list = [SetSupervision(call.id, sup, agent, call.customer, mode)]
        if mode == "intercept":
            call.agent_leg = None
            out += [*hangup(agent), CloseMedia(agent), Forget(agent)]
            if acd is not None and call.id in acd.talking:
                out.append(AcdCallEnded(call.id))
            call.agent_leg, call.supervisor = sup, None
        call.supervisor_mode = mode
        out.append(Log("supervise_mode", {"call_id": call.id, "mode": mode}))
        return out
