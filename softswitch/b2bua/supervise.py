"""Supervisors on agents' calls, the shell side: the rules are calls/supervision.py (what a request does) and
calls/flow.py (what each mode changes); this module calls the supervisor's phone and reports back."""

from __future__ import annotations

from ..aio import drive
from ..calls.supervision import MODES, SuperviseError, decide, offer_headers
from .legs import Leg

__all__ = ["MODES", "SuperviseError", "supervise"]


def supervise(cc, call_id: str, supervisor_phone: str, mode: str) -> str:
    """Start or change supervision; returns "calling" while the supervisor's phone is being called, else the
    mode now in force."""
    call = cc.calls.get(call_id)
    binding = cc.binding_for(supervisor_phone) if cc.media is not None else None
    d = decide(mode, anchored=cc.media is not None, call=call, has_binding=binding is not None)
    if d.action == "apply":
        cc.carry(cc.core.supervise_now(call, mode, cc.acd_state()))
    elif d.action == "call":
        drive(_call_supervisor(cc, call, binding, supervisor_phone), cc.done_for(call.id))
    return d.result


async def _call_supervisor(cc, call, binding, phone: str) -> None:
    leg = Leg(cc, "uac", call, cc.binding_target(binding))
    call.supervisor = leg
    sdp = await cc.media.offer_agent(leg, None)

    def on_response(event, tx, resp) -> None:
        if event in ("timeout", "error") or (event == "response" and resp.status >= 300):
            cc.carry(cc.core.supervisor_failed(call, leg))
            return
        if event != "response" or resp.status < 200 or not leg.accept_2xx(resp):
            return
        cc.carry(cc.core.supervisor_connected(call, leg, resp.body, cc.acd_state(), phone))

    leg.invite(binding.contact, f"<sip:{phone}@{cc.domain}>", f"<sip:supervise@{cc.domain}>", sdp,
               offer_headers(cc.domain, call.id, binding.path), on_response)
