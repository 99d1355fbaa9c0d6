"""Offering a queued call to an agent's phone, the asyncio side: the pool reservation, the media prepared for
the phone (a WebRTC probe for a browser), the INVITE, and the phone's answer fed to the call core.

The rules (which binding, which headers, what an answer or a failure does) are the core's: calls/bindings.py,
calls/offer.py, calls/flow.py.
"""

from __future__ import annotations

import time

from acd import AcdError, Offer

from ..aio import drive
from .callbacks import call_back
from ..calls import session_timer
from ..calls.call import Call
from ..calls.offer import agent_offer_headers
from ..calls.probe import is_browser
from .legs import Leg
from ..sip.sdp import build_sdp
from ..sip.message import Response
from ..transport.base import Target

__all__ = ["browser_answered", "offer"]


def offer(cc, o: Offer) -> None:
    if cc.pool is not None:
        drive(preparing_offer(cc, o, offer_pooled(cc, o)), cc.done_for(o.call_id))
        return
    if cc.media is not None:
        drive(preparing_offer(cc, o, offer_anchored(cc, o)), cc.done_for(o.call_id))
        return
    offer_now(cc, o, None)


async def preparing_offer(cc, o: Offer, setup) -> None:
    """Run an offer's set-up, counted in live_agent_calls meanwhile (the reconciler must not take a
    ringing agent whose leg is not made yet for a stuck call)."""
    key = (o.call_id, o.agent_id)
    cc.preparing.add(key)
    try:
        await setup
    finally:
        cc.preparing.discard(key)


async def offer_pooled(cc, o: Offer) -> None:
    """Pool mode: the agent's reservation first, so no other node can offer them a call meanwhile."""
    if not await cc.pool.reserve(o.agent_id, o.call_id):
        cc.log.info("agent_reserved_elsewhere", call_id=o.call_id, agent_id=o.agent_id)
        cc.center.run(cc.center.acd.offer_lost, o.call_id, o.agent_id)
        return
    entry = cc.center.acd.entries.get(o.call_id)
    if entry is None or o.agent_id not in entry.ringing:        # withdrawn while we asked
        await cc.pool.release(o.agent_id)
        return
    if cc.media is not None:
        await offer_anchored(cc, o)
    else:
        offer_now(cc, o, None)


async def offer_anchored(cc, o: Offer) -> None:
    call = cc.calls.get(o.call_id)
    if call is None or call.customer.stream is None:
        offer_now(cc, o, None)
        return
    probe = Leg(cc, "uac", call, Target("udp", "", 0))
    try:
        if is_browser(cc.binding_for(o.softphone)):
            # a WebRTC phone: ICE/DTLS-SRTP on its side, a plain engine stream on ours
            sdp = await cc.media.offer_browser(probe, call.video)
        else:
            sdp = await cc.media.offer_agent(probe, call.offer)
    except OSError as exc:
        cc.log.error("media_unavailable", call_id=o.call_id, error=str(exc))
        cc.center.run(cc.center.acd.offer_failed, o.call_id, o.agent_id, "declined")
        return
    acd_entry = cc.center.acd.entries.get(o.call_id)
    if call.ended or acd_entry is None or o.agent_id not in acd_entry.ringing:
        cc.media.close(probe)                         # withdrawn while the stream opened
        return
    offer_now(cc, o, probe, sdp)


def offer_now(cc, o: Offer, prepared: Leg | None, sdp: bytes = b"") -> None:
    call = cc.calls.get(o.call_id)
    b = cc.binding_for(o.softphone)
    if call is None or b is None:
        if prepared is not None:
            cc.media.close(prepared)
        cc.loop.call_soon(cc.center.run, cc.center.acd.offer_failed, o.call_id, o.agent_id, "declined")
        return
    leg = prepared or Leg(cc, "uac", call, cc.binding_target(b))
    leg.peer = cc.binding_target(b)
    leg.agent_id = o.agent_id
    call.offers[o.agent_id] = leg
    caller = call.customer.remote_uri or "<sip:anonymous@anonymous.invalid>"
    extra = agent_offer_headers(domain=cc.domain, auto_answer_after=o.auto_answer_after,
                                session_expires=cc.session_expires, path=b.path, queue=call.queue)
    sdp = sdp or call.offer_sdp or build_sdp(cc.media_address, int(time.time()), 1,
                                             [(cc.media_port(), 101, "sendrecv", 0)])
    leg.invite(b.contact, f"<sip:{o.softphone}@{cc.domain}>", caller, sdp, extra,
               lambda ev, tx, resp: agent_response(cc, leg, ev, resp))


def agent_response(cc, leg: Leg, event: str, resp: Response | None) -> None:
    call = leg.call
    if event in ("timeout", "error"):
        cc.carry(cc.core.agent_unreachable(call, leg, event))
        return
    status = resp.status
    if status < 200:
        leg.provisional(status)
        return
    if status >= 300:
        cc.carry(cc.core.agent_rejected(call, leg, status))
        return
    if not leg.accept_2xx(resp):
        return
    se = resp.get("Session-Expires")
    leg.start_session_timer(session_timer.interval_of(se, cc.session_expires),
                            session_timer.we_refresh_as_uac(se))
    try:
        cc.center.run(cc.center.acd.answered, call.id, leg.agent_id)
    except AcdError:
        leg.bye()
        return
    cc.stats["answered_by_agent"] += 1
    q = cc.queue_settings.get(call.queue)
    cc.carry(cc.core.connected(call, leg, time.time(), body=resp.body,
                                   record=q is not None and q.record and cc.media is not None))


async def browser_answered(cc, call: Call, leg: Leg, body: bytes) -> None:
    await leg.rtc.accept_answer(body)
    if call.ended or call.agent_leg is not leg:
        return
    if call.callback:
        call_back(cc, call, leg)
    else:
        cc.media.bridge(call, leg)
        # WebRTC video (issue "WebRTC agent phone"): a browser customer and a browser agent that both
        # negotiated video see each other; the video is relayed by the two WebRtcLegs (aiortc), not by
        # the engine. Audio stays in the engine room above.
        cust_rtc = call.customer.rtc
        if cust_rtc is not None and cust_rtc.has_video and leg.rtc.has_video:
            leg.rtc.send_video(cust_rtc.remote_video)       # the agent sees the customer
            cust_rtc.send_video(leg.rtc.remote_video)       # the customer sees the agent
            cc.log.info("video_relayed", call_id=call.id, agent_id=leg.agent_id)
    q = cc.queue_settings.get(call.queue)
    if q is not None and q.record and not call.callback:
        cc.media.record(call, leg)
