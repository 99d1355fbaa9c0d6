"""Consults, the asyncio side: the API's consult/swap/conference/complete/cancel feed calls/consult.py, and
this module carries out what it decides (who is in the call's room, the second party's INVITE, the ACD's
consult and hand-over). A SIP phone's attended transfer (REFER with Replaces) is transfers.py's."""

from __future__ import annotations

import time

from acd import AcdError, AgentStateError
from acd.handover import begin_consult, consult_over, take_over

from ..aio import drive
from ..calls import consult, session_timer
from ..calls import effects as fx
from ..calls.offer import agent_offer_headers
from ..calls.transfer import TransferError
from .legs import Leg
from ..log import get as get_logger
from ..sip.message import Response

__all__ = ["ACTIONS", "act", "install"]

log = get_logger("consult")
ACTIONS = ("consult", "swap", "conference", "complete", "cancel")


def install(cc) -> None:
    cc._carriers.update({
        fx.Mix: lambda e: _mix(cc, e),
        fx.DialConsult: lambda e: _dial(cc, e.call, e.phone),
        fx.AcdConsult: lambda e: _acd(cc, begin_consult, e.agent_id, e.other, e.key),
        fx.AcdConsultOver: lambda e: _acd(cc, consult_over, e.key),
        fx.AcdTakeOver: lambda e: _acd(cc, take_over, e.call_id, e.agent_id, e.key)})


def act(cc, call_id: str, action: str, body: dict, *, by_agent: str | None, by: str, resolve) -> dict:
    """One consult action from the API. resolve(text): the transfers' target resolution."""
    call = cc.calls.get(call_id)
    if action == "consult":
        if cc.media is None:
            raise TransferError(501, "consults need media anchored on the switch")
        to = body.get("to")
        if not isinstance(to, str):
            raise TransferError(400, "body must be JSON {to}")
        target = resolve(to)
        if target.kind == "number" and cc.binding_for(target.name) is None:
            raise TransferError(501, "a consult reaches registered phones only (trunks: transfer blind)")
        effects = consult.start(call, target, by_agent=by_agent, acd=cc.acd_state())
    elif action == "swap":
        effects = consult.swap(call, by_agent)
    elif action == "conference":
        effects = consult.conference(call, by_agent)
    elif action == "complete":
        effects = consult.complete(call, time.time(), by_agent=by_agent, by=by)
        cc.stats["attended_transfers"] += 1
    elif action == "cancel":
        effects = consult.cancel(call, by_agent)
    else:
        raise TransferError(404, f"no call action {action!r}")
    cc.carry(effects)
    c = call.consult
    return {"call_id": call.id, "consult": c.mode if c is not None else None,
            "agent_id": call.agent_leg.agent_id if call.agent_leg is not None else None}


def occupy_for_outbound(cc, agent_id: str, number: str, call_id: str) -> None:
    """An agent's call out occupies them (talking) for its length. An agent already talking with a customer is
    consulting from their phone: the called agent, when the number is one's softphone, is occupied by the
    consult instead, and the caller flagged as consulting. AgentStateError when the call may not be made."""
    acd = cc.center.acd
    a = acd.agent(agent_id)
    call = cc.calls.get(a.call_id or "")
    if a.state == "talking" and call is not None and call.agent_leg is not None and call.agent_leg.agent_id == agent_id:
        other = acd.by_softphone.get(number)
        if other is not None:
            cc.center.run(begin_consult, acd, agent_id, other.id, call_id)
        else:
            acd.consulting[agent_id] = call_id
        return
    cc.center.run(acd.outbound, agent_id, call_id)


def consult_agent_calls(call, acd, out: dict) -> None:
    """The agents a call engages beyond its offers (for the reconciler's live calls): the agent it was handed
    over to, the agent it consults, and an agent called from an agent's phone (a consult placed there)."""
    callee = acd.by_softphone.get(call.number) if acd is not None and call.outbound_to is not None else None
    for agent_id, key in ((getattr(call.agent_leg, "agent_id", ""), call.id),
                          (call.consult.agent_id, call.consult.key) if call.consult else ("", ""),
                          (callee.id if callee else "", call.id)):
        if agent_id:
            out.setdefault(agent_id, set()).add(key)


def _acd(cc, fn, *args) -> None:
    try:
        cc.center.run(fn, cc.center.acd, *args)
    except (AcdError, AgentStateError) as exc:
        log.warning("consult_acd_refused", error=str(exc), args=repr(args))


def _mix(cc, e: fx.Mix) -> None:
    if cc.media is None:
        return
    engine = cc.media.engine
    for leg in e.held:
        s = getattr(leg, "stream", None)
        if s is not None and not s.closed:
            engine.leave(s)
            q = cc.queue_settings.get(e.call.queue)
            cc.media.hold_music(s, q.music_on_hold if q is not None else None)
    for leg in e.present:
        s = getattr(leg, "stream", None)
        if s is not None and not s.closed and s.room != e.call.id:     # already there: its mixing stays as set
            engine.stop_play(s)
            engine.join(s, e.call.id)


def _dial(cc, call, phone: str) -> None:
    c = call.consult
    b = cc.binding_for(phone)
    leg = Leg(cc, "uac", call, cc.binding_target(b) if b is not None else None)
    leg.agent_id = c.agent_id if c is not None else ""
    if c is not None:
        c.leg = leg
    if b is None or c is None:
        cc.carry(consult.second_failed(call, leg))
        return
    caller = call.customer.remote_uri or "<sip:anonymous@anonymous.invalid>"
    a = cc.center.acd.agents.get(c.agent_id) if c.agent_id and cc.center is not None else None
    extra = [("Route", p) for p in b.path] if a is None else agent_offer_headers(
        domain=cc.domain, auto_answer_after=a.auto_answer_after, session_expires=cc.session_expires, path=b.path,
        queue=call.queue)

    async def go() -> None:
        sdp = await cc.media.offer_agent(leg, None)
        if call.ended or call.consult is not c:
            cc.carry([fx.CloseMedia(leg)])
            return
        leg.invite(b.contact, f"<sip:{phone}@{cc.domain}>", caller, sdp, extra,
                   lambda ev, tx, resp: _response(cc, call, leg, ev, resp))
    drive(go(), cc.done_for(call.id))


def _response(cc, call, leg: Leg, event: str, resp: Response | None) -> None:
    if event == "response" and resp.status < 200:
        leg.provisional(resp.status)
        return
    if event == "response" and resp.status < 300:
        if leg.accept_2xx(resp):
            se = resp.get("Session-Expires")
            leg.start_session_timer(session_timer.interval_of(se, cc.session_expires),
                                    session_timer.we_refresh_as_uac(se))
            cc.carry(consult.answered(call, leg, resp.body))
        return
    cc.carry(consult.second_failed(call, leg))
