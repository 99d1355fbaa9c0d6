"""Supervisors on agents' calls: listen (hears both, heard by none), whisper (heard by the agent only), barge
(three-party) and intercept (the supervisor takes the customer, the agent is released).

The supervisor's softphone is called once (auto-answer); switching modes afterwards only changes the mixer's
contribution masks, the customer and the agent see no new call.
"""

from __future__ import annotations

import time

from .legs import Leg

MODES = ("listen", "whisper", "barge", "intercept")


class SuperviseError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def supervise(cc, call_id: str, supervisor_phone: str, mode: str) -> str:
    """Start or change supervision; returns "calling" while the supervisor's phone is being called, else the
    mode now in force."""
    if mode not in MODES:
        raise SuperviseError(400, f"mode must be one of {', '.join(MODES)}")
    if cc.media is None:
        raise SuperviseError(409, "supervision needs media anchored by the switch (server.media.anchor)")
    call = cc.calls.get(call_id)
    if call is None or call.agent_leg is None or call.agent_leg.stream is None:
        raise SuperviseError(404, "no connected call with that id")
    sup = getattr(call, "supervisor", None)
    if sup is not None and sup.state == "confirmed":
        _apply(cc, call, mode)
        return mode
    if sup is not None:
        call.supervisor_mode = mode          # still ringing: applied when the phone answers
        return "calling"
    bindings = [b for b in cc.center.bindings.get(supervisor_phone, ()) if b.expires_at > time.time()]
    if not bindings:
        raise SuperviseError(409, "the supervisor's softphone is not registered")
    call.supervisor_mode = mode
    cc.loop.create_task(_call_supervisor(cc, call, bindings[-1], supervisor_phone))
    return "calling"


async def _call_supervisor(cc, call, binding, phone: str) -> None:
    leg = Leg(cc, "uac", call, cc.binding_target(binding))
    call.supervisor = leg
    sdp = await cc.media.offer_agent(leg, None)
    extra = [("Call-Info", f"<sip:{cc.domain}>;answer-after=0"),
             ("Alert-Info", "<http://localhost>;info=alert-autoanswer;delay=0"),
             ("X-CC-Supervise", call.id)] + [("Route", p) for p in binding.path]

    def on_response(event, tx, resp) -> None:
        if event != "response" or resp.status < 200:
            if event in ("timeout", "error"):
                call.supervisor = None
                cc.media.close(leg)
            return
        if resp.status >= 300:
            call.supervisor = None
            cc.media.close(leg)
            return
        if not leg.accept_2xx(resp):
            return
        cc.media.point(leg, resp.body)
        cc.log.info("supervisor_connected", call_id=call.id, phone=phone)
        _apply(cc, call, call.supervisor_mode)

    leg.invite(binding.contact, f"<sip:{phone}@{cc.domain}>", f"<sip:supervise@{cc.domain}>", sdp, extra,
               on_response)


def _apply(cc, call, mode: str) -> None:
    engine = cc.media.engine
    sup, agent, cust = call.supervisor.stream, call.agent_leg.stream, call.customer.stream
    if mode == "intercept":
        engine.mode(sup, agent, cust, None)
        engine.leave(agent)
        engine.join(sup, call.id)
        leg, call.agent_leg = call.agent_leg, None
        leg.bye()
        cc.media.close(leg)
        cc.dialogs.pop(leg.key, None)
        if call.id in cc.center.acd.talking:
            cc.center.run(cc.center.acd.call_ended, call.id)       # the agent is free; the call goes on
        call.agent_leg = call.supervisor                            # the supervisor now holds the customer
        call.supervisor = None
    else:
        engine.mode(sup, agent, cust, mode)
    call.supervisor_mode = mode
    cc.log.info("supervise_mode", call_id=call.id, mode=mode)
