"""A trunk's call to an agent's own number (a DID that is the agent's softphone number, on a trunk that may
reach agents): the agent's registered phone rings with the caller's number, and the call is relayed as an
agent's outbound call is (calls/outbound.py decides; media anchored when the node anchors)."""

from __future__ import annotations

import time

from acd import AgentStateError

from ..aio import drive
from ..calls.call import Call
from .legs import Leg, new_tag
from .outbound import _anchor_then, _response
from ..sip.message import Request, make_response

__all__ = ["ring_agent"]


def ring_agent(cc, tx, req: Request, agent_id: str, number: str) -> None:
    """A trunk's call to agent `agent_id`'s own number `number`: their registered phone is rung with the
    caller's number, and the call is relayed as an agent's outbound call is (media anchored when the node
    anchors). A signed-in agent is occupied by it (refused 486 while on another call); an agent whose phone
    is not registered is not reachable (480)."""
    ep = cc.endpoint
    ep.respond(tx, make_response(req, 100))
    refusal = cc.refusal()
    if refusal is not None:
        ep.respond(tx, make_response(req, refusal.status, refusal.reason, to_tag=new_tag(),
                                     headers=[("Retry-After", str(refusal.retry_after))]))
        return
    binding = cc.binding_for(number)
    if binding is None:
        ep.respond(tx, make_response(req, 480, "Agent not reachable", to_tag=new_tag()))
        return
    acd = cc.center.acd if cc.center is not None else None
    agent = acd.agents.get(agent_id) if acd is not None else None
    if agent is not None and agent.state != "offline":
        try:
            cc.center.run(acd.outbound, agent_id, req.call_id)      # no queue call is offered meanwhile
        except AgentStateError:
            ep.respond(tx, make_response(req, 486, to_tag=new_tag()))
            return
    a = Leg(cc, "uas", None, tx.context)
    a.invite_tx = tx
    a.agent_id = agent_id                  # the CDR's agent
    call = Call(req.call_id, a, number, time.time())
    a.call = call
    call.offer_sdp = req.body
    call.to_agent = True
    cc.core.add(call)
    b = Leg(cc, "uac", call, cc.binding_target(binding))
    call.outbound_to = b
    cc.outbound_by_tx[id(tx)] = b
    frm = req.from_
    shown = frm.display.replace("\\", "").replace('"', "") if frm.display else ""
    user = getattr(frm.uri, "user", None) or "anonymous"
    caller = (f'"{shown}" ' if shown else "") + f"<sip:{user}@{cc.domain}>"
    extra = [("Route", p) for p in binding.path]
    listener = lambda ev, ctx, resp: _response(cc, call, ev, resp)    # noqa: E731
    cc.log.info("trunk_call_to_agent", call_id=call.id, agent_id=agent_id, number=number)
    to = f"<sip:{number}@{cc.domain}>"
    if cc.media is not None and req.body:
        drive(_anchor_then(cc, call, tx, req, lambda sdp: b.invite(binding.contact, to, caller, sdp, extra,
                                                                    listener)), cc.done_for(call.id))
        return
    b.invite(binding.contact, to, caller, req.body, extra, listener)
