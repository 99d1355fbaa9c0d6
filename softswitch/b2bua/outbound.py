"""An agent's outbound call: the agent's INVITE (leg A) relayed to the called party (leg B).

Allowed only while the agent is registered and signed in (routing decides); the agent is occupied
(talking) for the length of the call. Provisional responses are relayed; final failures are mapped
(calls/outbound.py). A number that is no softphone but one the outbound dial plan routes leaves through its
trunks (trunk_calls.py, decided by calls/trunk_outbound.py).
"""

from __future__ import annotations

import time

from acd import AgentStateError

from ..aio import drive
from ..calls.call import Call
from ..calls.effects import Respond
from ..calls.outbound import (far_side_answered, far_side_failed, far_side_provisional, far_side_unreachable,
                             map_failure)
from ..calls.trunk_outbound import agent_hears_progress, agent_queue, no_trunk_answered
from .consults import occupy_for_outbound
from .legs import Leg, new_tag
from ..sip.sdp import parse_sdp
from ..sip.errors import SipError
from ..sip.message import Request, Response, make_response
from ..transport.base import Target
from .trunk_calls import place_via_dial_plan, routes_via_trunks

__all__ = ["map_failure", "place_outbound", "respond"]


def place_outbound(cc, tx, req: Request, number: str, agent_id: str) -> None:
    b_binding = cc.binding_for(number)
    via_trunks = b_binding is None and number not in cc.router.softphones and routes_via_trunks(cc, number)
    if b_binding is None and not via_trunks:
        cc.endpoint.respond(tx, make_response(req, 404 if number not in cc.router.softphones else 480,
                                              "No route" if number not in cc.router.softphones else None,
                                              to_tag=new_tag()))
        return
    try:
        occupy_for_outbound(cc, agent_id, number, req.call_id)      # a consult while talking
    except AgentStateError as exc:
        cc.endpoint.respond(tx, make_response(req, 403, str(exc).capitalize(), to_tag=new_tag()))
        return
    a = Leg(cc, "uas", None, tx.context)
    a.invite_tx = tx
    a.agent_id = agent_id
    call = Call(req.call_id, a, number, time.time())
    a.call = call
    call.offer_sdp = req.body
    cc.core.add(call)
    if via_trunks:
        _via_trunks(cc, call, tx, req, number, agent_id)
        return
    b = Leg(cc, "uac", call, cc.binding_target(b_binding))
    call.outbound_to = b
    cc.outbound_by_tx[id(tx)] = b
    extra = [("Route", p) for p in b_binding.path]
    to, frm = f"<sip:{number}@{cc.domain}>", f"<sip:{req.from_.uri.user}@{cc.domain}>"
    listener = lambda ev, ctx, resp: _response(cc, call, ev, resp)    # noqa: E731
    cc.log.info("outbound_call", call_id=call.id, agent_id=agent_id, number=number)
    if cc.media is not None and req.body:
        drive(_anchor_then(cc, call, tx, req, lambda sdp: b.invite(b_binding.contact, to, frm, sdp, extra, listener)),
              cc.done_for(call.id))
        return
    b.invite(b_binding.contact, to, frm, req.body, extra, listener)


def _via_trunks(cc, call, tx, req: Request, number: str, agent_id: str) -> None:
    """An external number: the dial plan's trunks in turn (trunk_calls.py), the caller ID the dial plan gives the
    agent or the agent's queue."""
    b = Leg(cc, "uac", call, Target("udp", "127.0.0.1", 0))     # its trunk's address is set per attempt
    call.outbound_to = b
    cc.outbound_by_tx[id(tx)] = b
    agent = cc.center.acd.agents.get(agent_id) if cc.center is not None else None
    queue = agent_queue(agent.queues, cc.trunks.settings.dial_plan.caller_ids) if agent is not None else None
    cc.log.info("outbound_call", call_id=call.id, agent_id=agent_id, number=number, via="trunks")

    def answered(leg, resp: Response) -> None:
        if leg.accept_2xx(resp):
            cc.carry(far_side_answered(call, time.time(), resp.body))

    def failed(leg, status: int, reason: str) -> None:
        cc.carry(no_trunk_answered(cc.core, call, status, reason, time.time(), cc.acd_state()))

    def place(sdp: bytes) -> None:
        place_via_dial_plan(cc, call, b, number, sdp, queue=queue, agent=agent_id,
                            caller_fallback=req.from_.uri.user,
                            on_progress=lambda leg, status, resp: cc.carry(far_side_provisional(call, status,
                                                                                                resp.body)),
                            on_answered=answered, on_failed=failed,
                            on_failover=lambda trunk: cc.carry(agent_hears_progress(call)))

    if cc.media is not None and req.body:
        drive(_anchor_then(cc, call, tx, req, place), cc.done_for(call.id))
    else:
        place(req.body)


async def _anchor_then(cc, call, tx, req: Request, place) -> None:
    """Media through the switch: the caller's side answered by our engine (WebRTC for a browser), the called
    side offered a plain RTP session (`place(sdp)` sends it); the two streams share a room once it answers."""
    a, b = call.customer, call.outbound_to
    try:
        call.answer_sdp = await cc.media.answer_customer(a, parse_sdp(req.body))
        sdp = await cc.media.offer_agent(b, None)
    except SipError as err:
        if tx.state in ("trying", "proceeding"):
            cc.endpoint.respond(tx, make_response(req, err.status, err.detail, to_tag=a.local_tag))
        cc.end_call(call, "caller's session not usable")
        return
    if not call.ended:
        place(sdp)


def _response(cc, call, event: str, resp: Response | None) -> None:
    now, acd = time.time(), cc.acd_state()
    if event in ("timeout", "error"):
        cc.carry(far_side_unreachable(cc.core, call, event, now, acd))
        return
    status = resp.status
    if status < 200:
        cc.carry(far_side_provisional(call, status, resp.body))
    elif status < 300:
        if call.outbound_to.accept_2xx(resp):
            cc.carry(far_side_answered(call, now, resp.body))
    else:
        cc.carry(far_side_failed(cc.core, call, status, now, acd))


def respond(cc, e: Respond) -> None:
    """A response to the agent's INVITE while it is still unanswered."""
    tx = e.leg.invite_tx
    if tx is None or tx.state not in ("trying", "proceeding"):
        return
    headers = [("Contact", e.leg.contact())] if e.provisional else []
    if e.body:
        headers.append(("Content-Type", "application/sdp"))
    cc.endpoint.respond(tx, make_response(tx.request, e.status, e.reason, to_tag=e.leg.local_tag, headers=headers,
                                          body=e.body))
