"""A call switched between voice and video mid-call, when both sides are browsers on anchored media.

One browser re-INVITEs with its video m-line added (or set inactive); the node re-offers the other browser the
same change from that leg's own WebRtcLeg, waits for its answer, answers the first browser with what the other
one accepted, and points each leg's video sender at the other leg's received video (aiortc relays it, as for a
video call from the start). Audio stays in the engine room throughout. Anything else in a re-INVITE (hold,
resume, refresh) is answered by the leg alone (calls/sessions.py hold_answer).
"""

from __future__ import annotations

import asyncio

from .webrtc_sdp import video_offered
from ..sip.message import make_response

_SWITCHING: set[str] = set()        # calls whose switch is under way (a second re-INVITE meanwhile gets 491)


def switches_video(leg, other, offer: bytes) -> bool:
    """A browser's re-offer that turns video on or off, with a browser on the other side of the call."""
    rtc, far = getattr(leg, "rtc", None), getattr(other, "rtc", None) if other is not None else None
    if rtc is None or far is None or other.state != "confirmed" or not offer:
        return False
    try:
        return video_offered(offer.decode("latin-1")) != rtc.has_video
    except ValueError:
        return False


async def carry(cc, tx, req, leg, other, headers: list) -> None:
    """Carry the switch to the other browser, then answer this one's re-INVITE: 2xx with what the other browser
    accepted (video inactive if it refused), 491 while a switch of the call is under way (RFC 3261 s. 14.2),
    488 when the offer is unusable (then the other browser is not asked)."""
    call_id = getattr(leg.call, "id", "")
    if call_id in _SWITCHING:
        cc.endpoint.respond(tx, make_response(req, 491))
        return
    _SWITCHING.add(call_id)
    try:
        await _carry(cc, tx, req, leg, other, headers, call_id)
    finally:
        _SWITCHING.discard(call_id)


async def _carry(cc, tx, req, leg, other, headers: list, call_id: str) -> None:
    want = video_offered(req.body.decode("latin-1"))
    try:
        leg.rtc.check_offer(req.body)
    except Exception as exc:        # aiortc's parser raises ValueError, IndexError, KeyError ... on garbage
        cc.log.warning("video_switch_refused", call_id=call_id, error=repr(exc))
        cc.endpoint.respond(tx, make_response(req, 488, headers=[("Warning", '399 - "offer not usable"')]))
        return
    accepted = False
    try:
        accepted = await _reoffer(other, want)
    except Exception as exc:        # refused, no answer, or an answer aiortc cannot use: this side gets no video
        cc.log.warning("video_switch_not_carried", call_id=call_id, error=repr(exc))
    try:
        body = await leg.rtc.reanswer(req.body, video=want and accepted)
    except Exception as exc:        # aiortc: ValueError, InvalidStateError, OperationError on an unusable offer
        cc.log.warning("video_switch_refused", call_id=call_id, error=repr(exc))
        cc.endpoint.respond(tx, make_response(req, 488, headers=[("Warning", '399 - "offer not usable"')]))
        return
    leg.local_sdp = body
    if leg.rtc.has_video and other.rtc.has_video:
        leg.rtc.send_video(other.rtc.remote_video)
        other.rtc.send_video(leg.rtc.remote_video)
    cc.log.info("video_switched", call_id=call_id, video=leg.rtc.has_video)
    cc.endpoint.respond(tx, make_response(req, 200, headers=headers + [("Content-Type", "application/sdp")],
                                          body=body))


async def _reoffer(other, video: bool) -> bool:
    """Re-INVITE the other browser with video on or off; whether it now has video."""
    offer = await other.rtc.reoffer(video=video)
    got: asyncio.Future = asyncio.get_running_loop().create_future()

    def listener(event, ctx, resp):
        other._reinvite_done(event, ctx, resp)
        if event == "response" and resp is not None and resp.status < 200:
            return
        if not got.done():
            got.set_result(resp if event == "response" else None)

    other.reinvite(offer, listener)
    resp = await got
    if resp is None or not 200 <= resp.status < 300 or not resp.body:
        raise RuntimeError(f"the other side answered {resp.status if resp is not None else 'nothing'}")
    await other.rtc.accept_answer(resp.body)
    return other.rtc.has_video
