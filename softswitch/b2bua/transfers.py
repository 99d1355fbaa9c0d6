"""Blind transfers, the asyncio side: a phone's REFER (RFC 3515, `Refer-Sub: false` of RFC 4488 honoured) and
the API's POST /api/calls/{id}/transfer feed calls/transfer.py, and this module carries out what it decides
(the sipfrag NOTIFYs, the customer's music on hold, the ACD's transfer, an IVR flow, a number dialled).

The far side of a number is a registered phone, else the outbound dial plan's trunks (as an agent's own
outbound call); a number neither reaches is refused (404) before anything changes.
"""

from __future__ import annotations

import time

from acd import AcdError

from ..aio import drive
from ..calls import effects as fx
from ..calls import consult, transfer
from ..calls.transfer import TransferError
from .legs import Leg
from ..log import get as get_logger
from ..sip.errors import SipError
from ..sip.headers import parse_name_addr
from ..sip.message import Request, Response, make_response
from ..sip.uri import SipURI
from .trunk_calls import place_via_dial_plan, routes_via_trunks

__all__ = ["TransferError", "install", "transfer_call"]

log = get_logger("transfer")


def install(cc) -> None:
    """REFER handling and the transfer effects' carriers on a CallControl."""
    cc.endpoint.handlers["REFER"] = lambda tx, req: on_refer(cc, tx, req)
    cc.stats.update({"transfers": 0, "attended_transfers": 0, "refer_notifies": 0})
    cc._carriers.update({
        fx.Notify: lambda e: notify(e.leg, e.status, e.reason, e.final),
        fx.HoldCustomer: lambda e: _hold(cc, e),
        fx.AcdTransfer: lambda e: _acd_transfer(cc, e),
        fx.StartIvr: lambda e: cc.start_ivr(e.call, e.flow),
        fx.DialNumber: lambda e: _dial(cc, e.call, e.number)})


def resolve(cc, text: str) -> transfer.Target:
    acd = cc.center.acd if cc.center is not None else None
    agents = {a.id: a.softphone for a in acd.agents.values()} if acd is not None else {}

    def route(name: str):
        r, _ = cc.router.lookup(name)
        return (r.kind, r.target) if r is not None else None
    flows = cc.ivr_runner.flows if cc.ivr_runner is not None else {}
    target = transfer.resolve(text, queues=acd.queues if acd is not None else {}, agents=agents, flows=flows,
                              route=route)
    if target.kind == "number" and cc.binding_for(target.name) is None and not routes_via_trunks(cc, target.name):
        raise TransferError(404, f"no route to {target.name} (no registered phone, no outbound trunk for it)")
    return target


def transfer_call(cc, call_id: str, to: str, *, by_agent: str | None, by: str, refer: Leg | None = None) -> dict:
    """Blind-transfer a connected call (the API's and a REFER's way in). by_agent: the agent asking (an agent
    transfers only their own call), None for a supervisor."""
    call = cc.calls.get(call_id)
    transfer.check(call, by_agent)
    target = resolve(cc, to)
    acd = cc.acd_state()
    talking = acd is not None and call.id in acd.talking
    cc.carry(transfer.blind(call, target, time.time(), by=by, talking=talking, refer=refer))
    cc.stats["transfers"] += 1
    return {"call_id": call.id, "kind": target.kind, "to": target.name, "queue": call.queue}


# --- REFER -------------------------------------------------------------------------------------------------
def on_refer(cc, tx, req: Request) -> None:
    leg = cc._leg_for(req)
    if leg is None:
        cc.endpoint.respond(tx, make_response(req, 481))
        return
    values = req.get_all("Refer-To")
    if len(values) != 1:
        raise SipError(400, "a REFER needs exactly one Refer-To")
    uri = parse_name_addr(values[0]).uri
    if not isinstance(uri, SipURI):
        raise SipError(416, "Refer-To must be a SIP URI")
    call = leg.call
    sub = (req.get("Refer-Sub") or "true").strip().lower() != "false"
    headers = [("Contact", leg.contact())] + ([] if sub else [("Refer-Sub", "false")])
    try:
        replaces = transfer.replaces_of(uri.headers)
        if replaces is not None:
            pair = _replaced_pair(cc, leg, replaces)
            cc.endpoint.respond(tx, make_response(req, 202, headers=headers))
            _join(cc, *pair, refer=leg if sub else None)
            return
        if call is None or call.agent_leg is not leg:
            raise TransferError(403, "only the agent connected to a call may transfer it")
        target = resolve(cc, transfer.refer_target(uri.user_unescaped))
    except TransferError as err:
        cc.endpoint.respond(tx, make_response(req, transfer.sip_status(err.status), str(err)[:100]))
        return
    cc.endpoint.respond(tx, make_response(req, 202, headers=headers))
    try:
        transfer_call(cc, call.id, f"{target.kind}:{target.name}", by_agent=leg.agent_id, by="refer",
                      refer=leg if sub else None)
    except TransferError as err:            # the call changed between the 202 and now
        if sub:
            notify(leg, 503, str(err)[:60] or "Service Unavailable", True)


def _replaced_pair(cc, leg: Leg, replaces: tuple[str, str, str]):
    """(customer's call, consult call) of an attended transfer: the REFER came in one of the agent's two
    dialogs and its Replaces names the other (RFC 3891 tags, as in a request the switch receives)."""
    call_id, to_tag, from_tag = replaces
    other = cc.dialogs.get((call_id, to_tag))
    if other is None or other.dialog is None or other.dialog.remote_tag != from_tag:
        raise TransferError(404, "Replaces names no dialog of this switch")
    if cc.media is None:
        raise TransferError(501, "attended transfer needs media anchored on the switch")
    mine, theirs = leg.call, other.call
    if mine is None or theirs is None or mine is theirs:
        raise TransferError(409, "Replaces names no other call of this agent")
    if mine.agent_leg is leg and theirs.customer is other:
        return mine, theirs
    if theirs.agent_leg is other and mine.customer is leg:
        return theirs, mine
    raise TransferError(409, "an attended transfer joins the agent's customer to the agent's consult call")


def _join(cc, call, other, *, refer: Leg | None) -> None:
    far = other.outbound_to or other.agent_leg
    acd = cc.acd_state()
    far_agent = far.agent_id if far is other.agent_leg else ""
    if not far_agent and acd is not None and acd.by_softphone.get(other.number) is not None:
        far_agent = acd.by_softphone[other.number].id
    try:
        effects = consult.joined_by_replaces(call, other, far_agent, time.time(), refer=refer)
    except TransferError as err:
        if refer is not None:
            notify(refer, transfer.sip_status(err.status), "Not Acceptable", True)
        return
    cc.carry(effects)
    cc.stats["attended_transfers"] += 1
    cc.end_call(other, "attended transfer")


def notify(leg: Leg, status: int, reason: str, final: bool) -> None:
    state = "terminated;reason=noresource" if final else "active;expires=60"
    leg.cc.stats["refer_notifies"] += 1
    leg.request("NOTIFY", f"SIP/2.0 {status} {reason}\r\n".encode(), "message/sipfrag;version=2.0",
                [("Event", "refer"), ("Subscription-State", state)])


# --- the effects ---------------------------------------------------------------------------------------------
def _hold(cc, e: fx.HoldCustomer) -> None:
    stream = e.call.customer.stream
    if cc.media is None or stream is None or stream.closed:
        return
    cc.media.engine.leave(stream)
    if e.music:
        q = cc.queue_settings.get(e.call.queue)
        cc.media.hold_music(stream, q.music_on_hold if q else None)


def _acd_transfer(cc, e: fx.AcdTransfer) -> None:
    call = cc.calls.get(e.call_id)
    try:
        acd = cc.center.acd
        cc.center.run(acd.transfer, e.call_id, e.queue, e.agent_id)
    except AcdError as exc:
        log.warning("transfer_failed", call_id=e.call_id, error=str(exc))
        if call is not None:
            cc.end_call(call, "transfer failed")
        return
    entry = acd.entries.get(e.call_id)
    if call is not None and entry is not None:
        call.queue = entry.queue


def _dial(cc, call, number: str) -> None:
    """The outbound path for a transferred customer: the number's registered phone, else the dial plan's
    trunks (the queue's caller ID); its answer joins the customer to it, a failure ends the call."""
    b = cc.binding_for(number)
    via_trunks = b is None and routes_via_trunks(cc, number)
    if (b is None and not via_trunks) or call.ended:
        cc.end_call(call, "transfer target unreachable")
        return
    leg = Leg(cc, "uac", call, cc.binding_target(b) if b is not None else None)
    leg.agent_id = ""
    call.offers[""] = leg
    caller = call.customer.remote_uri or "<sip:anonymous@anonymous.invalid>"

    async def go() -> None:
        sdp = call.offer_sdp
        if cc.media is not None and call.customer.stream is not None:
            sdp = await cc.media.offer_agent(leg, None)
        if call.ended:
            cc.carry([fx.CloseMedia(leg)])
            return
        if via_trunks:
            place_via_dial_plan(cc, call, leg, number, sdp, queue=call.queue or None, caller_fallback=call.number,
                                on_progress=lambda lg, status, resp: _far_response(cc, call, lg, "response", resp),
                                on_answered=lambda lg, resp: _far_response(cc, call, lg, "response", resp),
                                on_failed=lambda lg, status, reason: _far_response(cc, call, lg, "failed", None))
            return
        leg.invite(b.contact, f"<sip:{number}@{cc.domain}>", caller, sdp, [("Route", p) for p in b.path],
                   lambda ev, tx, resp: _far_response(cc, call, leg, ev, resp))
    drive(go(), cc.done_for(call.id))


def _far_response(cc, call, leg: Leg, event: str, resp: Response | None) -> None:
    if call.offers.get("") is not None and call.offers[""] is not leg:     # a trunk's failover: a new leg
        call.offers[""] = leg
    if event == "response" and resp.status < 200:
        leg.provisional(resp.status)
        return
    if event == "response" and resp.status < 300:
        if leg.accept_2xx(resp):
            cc.carry(transfer.number_answered(call, leg, resp.body, cc.media is not None))
        return
    if leg.state == "init":
        leg.fire("hangup")          # no trunk could be tried: the leg never left
    elif leg.state != "ended":
        leg.fire("failed")
    call.offers.pop("", None)
    cc.carry([fx.Forget(leg), fx.CloseMedia(leg)])
    if not call.ended:
        cc.end_call(call, "transfer target did not answer")
