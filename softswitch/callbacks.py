"""Callbacks, the asyncio side: the confirmation played to the caller, and the customer called back once an
agent has answered the call in turn (calls/callback.py and calls/flow.py decide)."""

from __future__ import annotations

import time

from .aio import drive
from .calls.call import Call
from .legs import Leg
from .trunk_calls import place_via_dial_plan, routes_via_trunks
from .trunks.inbound import uri_user

__all__ = ["call_back", "confirm_callback"]


async def confirm_callback(cc, call: Call) -> None:
    """The caller keeps their place: confirm, hang up their line; the agent is rung first when it is
    their turn, then the caller is called back."""
    await cc.media.play(call.customer.stream, cc.media.system("callback_confirm"))
    cc.carry(cc.core.callback_confirmed(call))


def call_back(cc, call: Call, agent_leg: Leg) -> None:
    """The agent answered a callback: play a note to the agent and call the customer: through the outbound
    dial plan's trunks when the caller's number is one it routes (the queue's caller ID shown), else at the
    address they called from."""
    old = call.customer
    hello = cc.media.system("callback_hello")
    if hello is not None:
        cc.media.engine.play(agent_leg.stream, hello)
    leg = Leg(cc, "uac", call, old.peer)
    number = uri_user(old.remote_uri or call.customer_contact)

    async def place() -> None:
        sdp = await cc.media.offer_agent(leg, None)
        if call.ended:
            cc.media.close(leg)
            return
        if routes_via_trunks(cc, number):
            place_via_dial_plan(cc, call, leg, number, sdp, queue=call.queue, caller_fallback=call.number,
                                on_progress=lambda lg, status, resp: lg.provisional(status),
                                on_answered=lambda lg, resp: callback_answer(cc, call, lg, "response", resp),
                                on_failed=lambda lg, status, reason: _not_reached(cc, call, lg, reason))
            return
        to = old.dialog.remote_uri if old.dialog else f"<{call.customer_contact}>"
        leg.invite(call.customer_contact, to, f"<sip:{call.number}@{cc.domain}>", sdp, [],
                   lambda ev, tx, resp: callback_answer(cc, call, leg, ev, resp))
    drive(place(), cc.done_for(call.id))


def _not_reached(cc, call: Call, leg: Leg, reason: str) -> None:
    """No trunk reached the customer; `leg` is the last one tried (it holds the media)."""
    cc.log.info("callback_not_reached", call_id=call.id, reason=reason)
    if leg.state == "init":
        leg.fire("hangup")          # no trunk could be tried: the leg never left
    cc.carry(cc.core.callback_failed(call, leg, time.time(), cc.acd_state()))


def callback_answer(cc, call: Call, leg: Leg, event: str, resp) -> None:
    if event in ("timeout", "error") or (resp is not None and resp.status >= 300):
        cc.carry(cc.core.callback_failed(call, leg, time.time(), cc.acd_state()))
        return
    if resp.status < 200 or not leg.accept_2xx(resp):
        return
    cc.carry(cc.core.callback_connected(call, leg, resp.body))
