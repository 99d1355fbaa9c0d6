"""The customer's side with media anchored on the switch: the answer with our own stream, the entry
announcement, then music on hold with position and estimated wait announced while the caller waits."""

from __future__ import annotations

from ..aio import drive
from .call_media import number_prompts
from ..calls.call import Call
from .legs import Leg, new_tag
from ..sip.errors import SipError
from ..sip.message import Request, make_response

__all__ = ["announce_and_queue", "answer_anchored"]


async def answer_anchored(cc, tx, req: Request, offer, number: str, decision) -> None:
    """Answer with our own media stream (the switch plays prompts and bridges audio itself)."""
    timer = cc.session_timer_or_422(tx, req)
    if timer is None:
        return
    headers, interval, we_refresh = timer
    leg = Leg(cc, "uas", None, tx.context)
    leg.invite_tx = tx
    try:
        sdp = await cc.media.answer_customer(leg, offer)
    except SipError as err:
        cc.media.close(leg)
        cc.endpoint.respond(tx, make_response(req, err.status, err.detail, to_tag=new_tag()))
        return
    except OSError as exc:
        cc.log.error("media_unavailable", call_id=req.call_id, error=str(exc))
        cc.endpoint.respond(tx, make_response(req, 503, "Media unavailable", to_tag=new_tag(),
                                                headers=[("Retry-After", "5")]))
        return
    if tx.state not in ("trying", "proceeding"):        # cancelled while the stream opened
        cc.media.close(leg)
        return
    call = cc.customer_call(leg, req, number, offer)
    leg.stream.on_dtmf = lambda d, call=call: cc.customer_digit(call, d)
    leg.answer(req, sdp, headers)
    leg.start_session_timer(interval, we_refresh)
    cc.log.debug("call_answered", call_id=call.id, number=number, video=call.video, rtp=leg.stream.port)
    cc.route_answered(call, decision)


async def announce_and_queue(cc, call: Call, queue: str) -> None:
    """Entry announcement first; the call joins the queue (and may be offered) when it has been heard."""
    q = cc.queue_settings.get(queue)
    if q is not None and q.announce_entry:
        await cc.media.play(call.customer.stream, q.announce_entry)
    if call.ended:
        return
    cc.media.hold_music(call.customer.stream, q.music_on_hold if q else None)
    cc.enqueue(call, queue)
    if q is not None and (q.announce_position or q.announce_wait):
        periodic_announcements(cc, call, q)


def periodic_announcements(cc, call: Call, q) -> None:
    """While the caller waits: position and estimated wait every announce_every seconds, music between.
    A timer handle waits between announcements, not a task: a waiting task's frames would cost every call
    kilobytes for as long as it lasts."""
    cc.loop.call_later(q.announce_every, _announcement_due, cc, call, q)


def _announcement_due(cc, call: Call, q) -> None:
    try:
        _announce(cc, call, q)
    except Exception as exc:  # noqa: BLE001 - logged as a failed call task, as the coroutine's errors are
        cc._task_done(None, exc, call.id)


def _announce(cc, call: Call, q) -> None:
    acd = cc.center.acd
    entry = acd.entries.get(call.id)
    if call.ended or entry is None:
        return
    if entry.ringing or call.agent_leg is not None:
        periodic_announcements(cc, call, q)
        return
    names: list[str] = []
    if q.announce_position:
        names += ["caller_number", *number_prompts(min(acd.position(call.id) or 1, 99))]
    wait = acd.estimated_wait(call.id) if q.announce_wait else None
    if wait is not None:
        minutes = int(round(wait / 60))
        names += ["estimated_wait"] + (["less_than_a_minute"] if minutes < 1 else
                                       [*number_prompts(min(minutes, 99)), "minutes"])
    frames = cc.media.sentence(names)
    if frames is None:
        periodic_announcements(cc, call, q)
        return
    cc.stats["announcements"] += 1
    cc.log.info("queue_announcement", call_id=call.id, position=acd.position(call.id),
                estimated_wait=round(wait, 1) if wait is not None else None)
    drive(_play_announcement(cc, call, q, frames), cc.done_for(call.id))


async def _play_announcement(cc, call: Call, q, frames) -> None:
    finished = await cc.media.play(call.customer.stream, frames)
    if finished and not call.ended and call.agent_leg is None and call.id in cc.center.acd.entries:
        cc.media.hold_music(call.customer.stream, q.music_on_hold)
    periodic_announcements(cc, call, q)     # the next wait starts once this announcement is over
