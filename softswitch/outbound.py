"""An agent's outbound call: the agent's INVITE (leg A) relayed to the called party (leg B).

Allowed only while the agent is registered and signed in (routing decides); the agent is occupied
(talking) for the length of the call. Provisional responses are relayed; final failures are mapped.
"""

from __future__ import annotations

import time

from acd import AgentStateError

from .aio import drive
from .legs import Leg, new_tag
from .sip.message import Request, Response, make_response


def map_failure(status: int) -> int:
    """What the agent sees for the far side's final failure: no redirects followed, no auth passed back."""
    if 300 <= status < 400:
        return 480
    if status in (401, 407):
        return 403
    if status == 408 or status >= 700:
        return 480
    return status


def place_outbound(cc, tx, req: Request, number: str, agent_id: str) -> None:
    from .b2bua import Call
    bindings = [b for b in cc.center.bindings.get(number, ()) if b.expires_at > time.time()] if cc.center else []
    if not bindings:
        cc.endpoint.respond(tx, make_response(req, 404 if number not in cc.router.softphones else 480,
                                              "No route" if number not in cc.router.softphones else None,
                                              to_tag=new_tag()))
        return
    try:
        cc.center.run(cc.center.acd.outbound, agent_id, req.call_id)
    except AgentStateError as exc:
        cc.endpoint.respond(tx, make_response(req, 403, str(exc).capitalize(), to_tag=new_tag()))
        return
    a = Leg(cc, "uas", None, tx.context)
    a.invite_tx = tx
    a.agent_id = agent_id
    call = Call(req.call_id, a, number)
    a.call = call
    call.offer_sdp = req.body
    cc.calls[call.id] = call
    b_binding = sorted(bindings, key=lambda x: x.registered_at)[-1]
    b = Leg(cc, "uac", call, cc.binding_target(b_binding))
    call.outbound_to = b
    cc.outbound_by_tx[id(tx)] = b
    extra = [("Route", p) for p in b_binding.path]
    to, frm = f"<sip:{number}@{cc.domain}>", f"<sip:{req.from_.uri.user}@{cc.domain}>"
    listener = lambda ev, ctx, resp: _response(cc, call, tx, req, ev, resp)    # noqa: E731
    cc.log.info("outbound_call", call_id=call.id, agent_id=agent_id, number=number)
    if cc.media is not None and req.body:
        drive(_anchored(cc, call, tx, req, b_binding.contact, to, frm, extra, listener), cc._done_for(call.id))
        return
    b.invite(b_binding.contact, to, frm, req.body, extra, listener)


async def _anchored(cc, call, tx, req: Request, contact: str, to: str, frm: str, extra, listener) -> None:
    """Media through the switch: the caller's side answered by our engine (WebRTC for a browser), the called
    phone offered a plain RTP session; the two streams share a room once the far side answers."""
    from .sdp import parse_sdp
    from .sip.errors import SipError
    a, b = call.customer, call.outbound_to
    try:
        call.answer_sdp = await cc.media.answer_customer(a, parse_sdp(req.body))
        sdp = await cc.media.offer_agent(b, None)
    except SipError as err:
        if tx.state in ("trying", "proceeding"):
            cc.endpoint.respond(tx, make_response(req, err.status, err.detail, to_tag=a.local_tag))
        cc.end_call(call, "caller's session not usable")
        return
    if call.ended:
        return
    b.invite(contact, to, frm, sdp, extra, listener)


def _response(cc, call, tx, req: Request, event: str, resp: Response | None) -> None:
    a, b = call.customer, call.outbound_to
    if event in ("timeout", "error"):
        if a.state == "init" and tx.state in ("trying", "proceeding"):
            cc.endpoint.respond(tx, make_response(req, 480 if event == "timeout" else 503, to_tag=a.local_tag))
        b.state = "ended"
        cc.end_call(call, f"far side {event}")
        return
    status = resp.status
    if status < 200:
        if b.cancel_pending:
            b._send_cancel()
        if status > 100:
            if b.state == "calling":
                b.state = "early"
            if tx.state in ("trying", "proceeding"):
                headers = [("Contact", a.contact())]
                early = resp.body if a.stream is None else b""      # anchored: our session, not theirs
                if early:
                    headers.append(("Content-Type", "application/sdp"))
                cc.endpoint.respond(tx, make_response(req, status, to_tag=a.local_tag, headers=headers,
                                                      body=early))
        return
    if status < 300:
        if not b.accept_2xx(resp):
            return
        if a.stream is not None and b.stream is not None:
            cc.media.agent_answered(call, b, resp.body)     # the called side as an agent leg: one room
            a.answer(req, getattr(call, "answer_sdp", b""))
        else:
            a.answer(req, resp.body)
        call.answered_at = time.time()
        return
    b.state = "ended"
    if tx.state in ("trying", "proceeding"):
        cc.endpoint.respond(tx, make_response(req, map_failure(status), to_tag=a.local_tag))
    cc.end_call(call, f"far side {status}")
