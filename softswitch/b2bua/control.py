"""Call control: the back-to-back user agent between customers and agents, as an asyncio shell.

A customer's INVITE is routed (routing.Router). A call for a skill queue is answered at once (so the switch
can play media) and queued in the ACD; the ACD's offers become INVITEs to the agent's registered softphone
with auto-answer hints; when the agent answers, the customer is re-INVITEd with the agent's session so the
two talk. Either side hanging up ends both; dead calls end by session timer.

The decisions are the pure call core's (softswitch/calls): this module feeds it events and `now` and carries
out the effects it returns (`carry`).
"""

from __future__ import annotations

import time

from acd import AcdError, Leave, Offer, Withdraw

from .agent_offers import browser_answered, offer
from ..aio import drive
from .callbacks import call_back, confirm_callback
from ..calls import admission, callback, cdr, consult, outbound, sessions, session_timer
from ..calls import effects as fx
from ..calls.bindings import choose_binding, ring_target
from ..calls.call import Call, priority_of
from ..calls.flow import CallCore
from ..calls.outbound import OutboundLimit
from .customer_media import announce_and_queue, answer_anchored
from .invite_auth import authenticate_agent
from .leg_timers import LegTimers
from .legs import Leg, new_tag
from ..log import get as get_logger
from .outbound import place_outbound, respond
from .routing import Router
from ..sip.sdp import ANSWER_DIRECTION, answer_events, build_sdp, negotiate_audio, parse_sdp
from ..sip.errors import SipError
from ..sip.message import Request, Response, make_response
from ..sip.transaction import Transaction
from ..sip.uri import SipURI
from .consults import consult_agent_calls, install as install_consults
from .transfers import install as install_transfers
from . import video_switch
from ..transport.base import Target
from ..widget.sip import admit_widget_call

MIN_SE = session_timer.MIN_SE
__all__ = ["Call", "CallControl", "MIN_SE"]


class CallControl:
    ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REGISTER, REFER"

    def __init__(self, endpoint, router: Router, *, domain: str = "localhost", media_address: str = "127.0.0.1",
                 rtp_ports: tuple[int, int] = (20000, 29999), session_expires: int = 1800, authn=None,
                 center=None, media=None, pool=None, records=None, node_id: str = "",
                 queue_settings: dict | None = None, max_calls: int = 0) -> None:
        self.endpoint = endpoint
        self.loop = endpoint.loop
        self.router = router
        self.domain = domain
        self.media_address = media_address
        self.session_expires = int(session_expires)
        self.authn = authn                      # authn.Authenticator: agents' calls out of the called routes
        self.log = get_logger("calls")
        self.core = CallCore(node_id=node_id)
        self.center = center                    # ContactCenter when queues are configured
        self.media = media                      # CallMedia when the node runs a media engine
        self.pool = pool                        # Pool in pool mode: agent reservations across nodes
        self.records = records                  # RecordStore: a CDR for every call
        self.queue_settings: dict = queue_settings or {}   # queue name -> settings.SkillQueue
        self.widgets = None                     # widget.gate.WidgetGate: click-to-dial tokens
        self.ivr_runner = None
        self.listen: dict[str, tuple[str, int]] = {}
        self.calls: dict[str, Call] = self.core.calls
        self.dialogs: dict[tuple[str, str], Leg] = {}
        self.leg_timers = LegTimers(self.loop)  # every leg's session timer
        self.pending: dict[str, Leg] = {}       # our INVITEs by Call-ID until they have a dialog
        self.preparing: set[tuple[str, str]] = set()   # (call, agent) offers still being set up (media, pool)
        self.outbound_by_tx: dict[int, Leg] = {}   # agents' unanswered outbound INVITEs -> the far leg
        self._port_lo, self._port_hi = rtp_ports
        self._next_port = rtp_ports[0]
        self.stats = {"calls": 0, "rejected": 0, "answered_by_agent": 0, "ended": 0, "overloaded": 0,
                      "announcements": 0}
        self.max_calls = max_calls              # 0: no limit; else 503 past it
        self.draining = False                   # stopping: new calls get 503, calls in progress finish
        self.outbound_per_minute = 0            # per agent (toll-fraud guard); 0: no cap
        self.outbound_limit = OutboundLimit()
        self.loop_lag = 0.0                     # smoothed event-loop lateness, seconds (set by the node)
        self.max_loop_lag = 0.1
        self.busy = 0.0                         # share of time spent on SIP (set by the node)
        self.max_busy = 0.95
        self.resend_ratio = 0.0                 # re-sent messages per new transaction (set by the node)
        self.max_resend_ratio = 0.1
        self.backlog = 0.0                      # smoothed age of queued datagrams, seconds (set by the node)
        self.max_backlog = 0.1
        self.refusals = admission.Refusals()    # calls refused for overload, per cause
        self.trunks = None           # TrunkService (node.trunks): outbound calls over the dial plan
        self.trunk_invite = None     # (tx, req) -> True when a trunk's INVITE was answered there (node.trunks)
        self._carriers = {
            fx.SendBye: lambda e: e.leg.carry([e]), fx.SendCancel: lambda e: e.leg.carry([e]),
            fx.SendRefresh: lambda e: e.leg.carry([e]), fx.StopTimers: lambda e: e.leg.carry([e]),
            fx.ArmSessionTimer: lambda e: e.leg.carry([e]), fx.Reinvite: lambda e: e.leg.reinvite(e.body),
            fx.Forget: lambda e: self.dialogs.pop(e.leg.key, None),
            fx.LegFailed: lambda e: self.leg_failed(e.leg, e.why),
            fx.CloseMedia: lambda e: self.media is not None and self.media.close(e.leg),
            fx.PointMedia: lambda e: self.media.point(e.leg, e.body), fx.Bridge: self._bridge,
            fx.AcceptBrowserAnswer: lambda e: drive(browser_answered(self, e.call, e.leg, e.body),
                                                    self.done_for(e.call.id)),
            fx.Record: self._record, fx.CallBack: lambda e: call_back(self, e.call, e.leg),
            fx.PlayCallbackConfirm: lambda e: drive(confirm_callback(self, e.call), self.done_for(e.call.id)),
            fx.StopIvr: lambda e: e.call.ivr.cancel(), fx.CloseRecording: lambda e: e.call.recording.close(),
            fx.SetSupervision: self._set_supervision,
            fx.AcdOfferFailed: lambda e: self._acd("offer_failed", e.call_id, e.agent_id, e.reason),
            fx.AcdCallEnded: lambda e: self._acd("call_ended", e.call_id),
            fx.AcdCallerGone: lambda e: self._acd("caller_gone", e.call_id),
            fx.AcdCallback: lambda e: self._acd("callback", e.call_id),
            fx.Respond: lambda e: respond(self, e),
            fx.AnswerCall: lambda e: e.leg.answer(e.leg.invite_tx.request, e.body),
            fx.CallOver: self._call_over, fx.WriteCdr: self._write_cdr,
            fx.Log: lambda e: getattr(self.log, e.level)(e.event, **e.fields)}
        for m, h in (("INVITE", self.on_invite), ("BYE", self.on_bye), ("CANCEL", self.on_cancel),
                     ("UPDATE", self.on_update), ("INFO", self.on_info)):
            endpoint.handlers[m] = h
        install_transfers(self)
        install_consults(self)
        endpoint.ack_handler = self.on_ack
        endpoint.stray_response_handlers.append(self.on_stray_response)

    @property
    def node_id(self) -> str:
        return self.core.node_id

    @node_id.setter
    def node_id(self, value: str) -> None:
        self.core.node_id = value

    # --- the core's effects --------------------------------------------------------------------------------
    def carry(self, effects: list, then=None) -> None:
        """Carry out the call core's effects, in order. When they end a call (a CDR among them), the call's
        records go first: its hang-ups (and `then`, e.g. the 200 to the BYE that ended it) leave only once
        the CDR, and the queue-log lines written before it, are committed."""
        if self.records is None or not any(type(e) is fx.WriteCdr for e in effects):
            for eff in effects:
                self._carriers[type(eff)](eff)
            if then is not None:
                then()
            return
        later = [e for e in effects if type(e) in AFTER_RECORDS]
        cdrs = [e for e in effects if type(e) is fx.WriteCdr]
        for eff in effects:
            if type(eff) not in AFTER_RECORDS and type(eff) is not fx.WriteCdr:
                self._carriers[type(eff)](eff)
        for eff in cdrs:        # after the ACD's effects: their queue-log lines are in the same commit or before
            self._write_cdr(eff)

        def hang_up() -> None:
            for eff in later:
                self._carriers[type(eff)](eff)
            if then is not None:
                then()
        self.after_records(cdrs[-1].call, hang_up)

    def after_records(self, call, fn) -> None:
        """fn() now, or once the ended call's records are committed (bounded by the store's commit_wait)."""
        committed = getattr(call, "committed", None)
        if committed is None or self.records is None:
            fn()
        else:
            self.records.after_commit(committed, self.loop, fn, call_id=call.id)

    def acd_state(self):
        return self.center.acd if self.center is not None else None

    def _acd(self, method: str, *args) -> None:
        acd = self.center.acd
        self.center.run(getattr(acd, method), *args)

    def _bridge(self, e: fx.Bridge) -> None:
        if e.body is None:
            self.media.bridge(e.call, e.leg)
            return
        try:
            self.media.agent_answered(e.call, e.leg, e.body)
        except (SipError, TypeError, ValueError) as exc:
            self.log.warning("agent_sdp_unusable", call_id=e.call.id, error=str(exc))

    def _record(self, e: fx.Record) -> None:
        path = self.media.record(e.call, e.leg)
        self.log.info("recording", call_id=e.call.id, path=path)

    def _set_supervision(self, e: fx.SetSupervision) -> None:
        engine = self.media.engine
        sup, agent, cust = e.supervisor.stream, e.agent.stream, e.customer.stream
        if e.mode == "intercept":
            engine.mode(sup, agent, cust, None)
            engine.leave(agent)
            engine.join(sup, e.call_id)
        else:
            engine.mode(sup, agent, cust, e.mode)

    # --- addressing ----------------------------------------------------------------------------------------
    def _hostport(self, proto: str) -> tuple[str, int]:
        return self.listen.get(proto) or next(iter(self.listen.values()), ("127.0.0.1", 5060))

    def contact_for(self, proto: str) -> str:
        host, port = self._hostport(proto)
        t = "" if proto == "udp" else f";transport={proto}"
        return f"<sip:softswitch@{host}:{port}{t}>"

    def via_for(self, proto: str) -> str:
        host, port = self._hostport(proto)
        # alias (RFC 5923): a TLS peer (a trunk) may send its requests for our Contact back on this connection
        return f"SIP/2.0/{proto.upper()} {host}:{port};rport" + (";alias" if proto == "tls" else "")

    def media_port(self) -> int:
        """Even ports round the configured range (RTP on even, RTCP on odd)."""
        port = self._next_port
        self._next_port += 2
        if self._next_port > self._port_hi - 1:
            self._next_port = self._port_lo
        return port

    def binding_target(self, b) -> Target:
        """Where requests for a registered phone go (calls.bindings.ring_target)."""
        return ring_target(b, self.endpoint.find_connection)

    def binding_for(self, softphone: str):
        """The binding to ring for a softphone now (calls.bindings.choose_binding), None when it has none."""
        return choose_binding(self.center.bindings.get(softphone, ()) if self.center else (), time.time())

    def load(self) -> admission.Load:
        return admission.Load(len(self.calls), self.max_calls, self.loop_lag, self.max_loop_lag, self.busy,
                              self.max_busy, self.resend_ratio, self.max_resend_ratio, self.backlog,
                              self.max_backlog)

    def refusal(self) -> admission.Refusal | None:
        """None: a new call is taken; else why not (admission.admit), an overload counted per cause and
        logged at most every few seconds with the figures."""
        load = self.load()
        refusal = admission.admit(self.draining, load)
        if refusal is not None and refusal.overloaded:
            self.stats["overloaded"] += 1
            warn = self.refusals.count(refusal, load, self.loop.time())
            if warn is not None:
                self.log.warning("calls_refused_overloaded", **warn)
        return refusal

    def register_leg(self, leg: Leg) -> None:
        self.dialogs[leg.key] = leg
        if leg.invite_req is not None:
            self.pending.pop(leg.invite_req.call_id, None)

    def register_pending(self, call_id: str, leg: Leg) -> None:
        self.pending[call_id] = leg

    def _leg_for(self, req: Request) -> Leg | None:
        return self.dialogs.get((req.call_id, req.to.tag or ""))

    def live_agent_calls(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        acd = self.acd_state()
        for call in self.calls.values():
            for agent_id, leg in call.offers.items():
                if leg.state != "ended":
                    out.setdefault(agent_id, set()).add(call.id)
            if call.outbound_to is not None and call.customer.agent_id:
                out.setdefault(call.customer.agent_id, set()).add(call.id)
            consult_agent_calls(call, acd, out)
        for call_id, agent_id in self.preparing:    # a WebRTC offer can take a while before it has a leg
            out.setdefault(agent_id, set()).add(call_id)
        return out

    # --- incoming INVITE -----------------------------------------------------------------------------------
    def on_invite(self, tx: Transaction, req: Request) -> None:
        if req.to.tag:
            self._reinvite(tx, req)
            return
        if self.trunk_invite is not None and self.trunk_invite(tx, req):
            return                 # a trunk's INVITE refused or challenged by the trunk's own rules
        # Headers the call task reads later, once it holds a media stream: a malformed one is refused here with
        # its 400 (the parse is cached), not by a task that fails silently and leaves the stream open.
        if req.has("Contact"):
            req.contacts
        self._session_timer_headers(req)
        ep = self.endpoint
        uri = req.uri
        number = uri.user_unescaped if isinstance(uri, SipURI) else None
        ext = uri.param("ext") if isinstance(uri, SipURI) else None
        if self.widgets is not None and not admit_widget_call(self, tx, req, number):
            return
        caller_agent = None
        if self.authn is not None and not self.router.has_route(number, ext):
            # Only an agent calls numbers outside the called routes: challenged before any state is kept,
            # whatever the number or the From, so no answer tells an agent's number from any other.
            caller_agent = authenticate_agent(self, tx, req)
            if caller_agent is None:
                return
        ep.respond(tx, make_response(req, 100))
        refusal = self.refusal()
        if refusal is not None:
            ep.respond(tx, make_response(req, refusal.status, refusal.reason, to_tag=new_tag(),
                                         headers=[("Retry-After", str(refusal.retry_after))]))
            return
        offer = None
        if req.body:
            ctype = (req.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/sdp":
                raise SipError(415, "only application/sdp bodies", headers=(("Accept", "application/sdp"),))
            offer = parse_sdp(req.body)
        media = "video" if offer is not None and offer.has_video else "voice"
        signed_in = False
        if caller_agent and self.center is not None:
            a = self.center.acd.agents.get(caller_agent)
            signed_in = bool(a and a.registered and a.state != "offline")
        decision = self.router.decide(number, ext, media, caller_agent, signed_in)
        refused = admission.route_refusal(decision.kind, decision.status, decision.reason, self.center is not None)
        if refused is not None:
            status, reason = refused
            self.stats["rejected"] += 1
            self.log.info("call_rejected", call_id=req.call_id, number=number, status=status, reason=reason)
            ep.respond(tx, make_response(req, status, reason, to_tag=new_tag()))
            return
        if decision.kind == "outbound":
            if not self.outbound_limit.allow(caller_agent, time.time(), self.outbound_per_minute):
                self.log.warning("outbound_rate_capped", agent_id=caller_agent, call_id=req.call_id)
                ep.respond(tx, make_response(req, 403, "Outbound call rate limit reached", to_tag=new_tag()))
                return
            place_outbound(self, tx, req, number or "", caller_agent)
            return
        if self.media is not None and offer is not None:
            drive(answer_anchored(self, tx, req, offer, number or "", decision), self.done_for(req.call_id))
            return
        call = self._answer_customer(tx, req, offer, number or "")
        if call is None:
            return
        self.route_answered(call, decision)

    def route_answered(self, call: Call, decision) -> None:
        if decision.kind == "queue":
            if self.media is not None and call.customer.stream is not None:
                drive(announce_and_queue(self, call, decision.target), self.done_for(call.id))
            else:
                self.enqueue(call, decision.target)
        else:
            self.start_ivr(call, decision.target)

    def _task_done(self, result, err, call_id: str = "") -> None:
        if err is not None:
            self.log.error("call_task_failed", call_id=call_id, error=repr(err))

    def done_for(self, call_id: str):
        return lambda result, err: self._task_done(result, err, call_id)

    def _session_timer_headers(self, req: Request) -> tuple[list[tuple[str, str]], int, bool] | None:
        """RFC 4028 as UAS: (headers for the 2xx, interval, whether we refresh); None when 422 is due."""
        t = session_timer.negotiate(req.get("Session-Expires"), req.get_all("Supported"), self.session_expires)
        return None if t is None else (list(t.headers), t.interval, t.we_refresh)

    def session_timer_or_422(self, tx, req: Request):
        """The session timer of the 2xx, or None after answering 422 (Session-Expires below Min-SE)."""
        timer = self._session_timer_headers(req)
        if timer is None:
            self.endpoint.respond(tx, make_response(req, 422, to_tag=new_tag(),
                                                    headers=session_timer.min_se_headers()))
        return timer

    def customer_call(self, leg: Leg, req: Request, number: str, offer) -> Call:
        """A customer's call from its INVITE, registered as in progress."""
        call = Call(req.call_id, leg, number, time.time())
        leg.call = call
        # the parsed offer is what anchored media builds the agents' offers from; without media they get the
        # customer's own body (offer_sdp), and nothing reads it again for as long as the call lasts
        call.offer_sdp, call.offer = req.body, offer if leg.stream is not None else None
        call.channel = self.widgets.cdr_fields(req) if self.widgets is not None else {}
        call.video = bool(offer is not None and offer.has_video)
        call.priority = priority_of(req.get("Priority"))
        call.customer_contact = callback.customer_contact(req.contacts if req.has("Contact") else [],
                                                          str(req.from_.uri))
        self.core.add(call)
        self.stats["calls"] += 1
        return call

    def _answer_customer(self, tx, req: Request, offer, number: str) -> Call | None:
        timer = self.session_timer_or_422(tx, req)
        if timer is None:
            return None
        headers, interval, we_refresh = timer
        sdp = b""
        if offer is not None:
            audio = offer.first("audio")
            picked = negotiate_audio(audio) if audio else None
            if picked is None:
                self.endpoint.respond(tx, make_response(req, 488, "No common audio codec", to_tag=new_tag()))
                return None
            pt, event = picked
            events = answer_events(audio.fmtp.get(str(event))) if event is not None else None
            video = [m for m in offer.media if m.kind == "video" and m.port]
            sdp = build_sdp(self.media_address, int(time.time()), 1,
                            [(self.media_port(), event if events else None, ANSWER_DIRECTION[audio.direction], pt)],
                            video, [self.media_port() for _ in video], events=events or "")
        leg = Leg(self, "uas", None, tx.context)
        leg.invite_tx = tx
        call = self.customer_call(leg, req, number, offer)
        leg.answer(req, sdp, headers)
        leg.start_session_timer(interval, we_refresh)
        self.log.debug("call_answered", call_id=call.id, number=number, video=call.video)
        return call

    # --- queue and ACD actions -----------------------------------------------------------------------------
    def enqueue(self, call: Call, queue: str) -> None:
        call.queue = queue
        try:
            self.center.run(self.center.acd.enqueue, call.id, queue, call.priority, call.video)
        except AcdError as exc:
            self.log.error("enqueue_failed", call_id=call.id, error=str(exc))
            self.end_call(call, "no queue")

    def start_ivr(self, call: Call, flow: str) -> None:
        if self.ivr_runner is None:
            self.end_call(call, "no IVR")
            return
        self.ivr_runner.start(call, flow)

    def apply(self, actions: list) -> None:
        for act in actions:
            try:
                if isinstance(act, Offer):
                    offer(self, act)
                elif isinstance(act, Withdraw):
                    self._withdraw(act)
                elif isinstance(act, Leave):
                    self._leave(act)
            except Exception:
                self.log.exception("action_failed", call_id=getattr(act, "call_id", ""),
                                   agent_id=getattr(act, "agent_id", ""), action=repr(act))

    def _withdraw(self, w: Withdraw) -> None:
        self.carry(self.core.withdraw(w.call_id, w.agent_id))

    def _leave(self, act: Leave) -> None:
        call = self.calls.get(act.call_id)
        if call is None:
            return
        self.log.info("call_left_queue", call_id=call.id, kind=act.kind, target=act.target, reason=act.reason)
        if act.kind == "ivr":
            self.start_ivr(call, act.target)
        else:
            self.end_call(call, act.reason)

    # --- in-dialog requests --------------------------------------------------------------------------------
    def on_ack(self, req: Request, src) -> None:
        leg = self._leg_for(req)
        if leg is not None:
            leg.got_ack(req)

    def on_bye(self, tx, req: Request) -> None:
        leg = self._leg_for(req)
        if leg is None:
            self.endpoint.respond(tx, make_response(req, 481))
            return
        effects = self.core.peer_bye(leg, time.time(), self.acd_state())
        if any(type(e) is fx.WriteCdr for e in effects):
            # the 200 that ends a call leaves once its records are committed
            self.carry(effects, then=lambda: self.endpoint.respond(tx, make_response(req, 200)))
        else:
            self.after_records(leg.call, lambda: self.endpoint.respond(tx, make_response(req, 200)))
            self.carry(effects)

    def on_cancel(self, tx, req: Request) -> None:
        inv = self.endpoint.layer.find_invite_server(req)
        if inv is None:
            self.endpoint.respond(tx, make_response(req, 481))
            return
        self.endpoint.respond(tx, make_response(req, 200))
        if inv.state in ("trying", "proceeding"):
            self.endpoint.respond(inv, make_response(inv.request, 487, to_tag=new_tag()))
            pending = self.outbound_by_tx.pop(id(inv), None)
            if pending is not None and pending.call is not None:    # an agent's outbound call not yet answered
                self.carry(outbound.caller_cancelled(self.core, pending.call, time.time(), self.acd_state()))
            elif pending is not None:
                pending.cancel()

    def on_update(self, tx, req: Request) -> None:
        leg = self._leg_for(req)
        if leg is None:
            self.endpoint.respond(tx, make_response(req, 481))
            return
        leg.refreshed()
        headers = session_timer.update_answer_headers(req.get("Session-Expires"))
        self.endpoint.respond(tx, make_response(req, 200, headers=[("Contact", leg.contact()), *headers]))

    def on_info(self, tx, req: Request) -> None:
        leg = self._leg_for(req)
        if leg is None:
            self.endpoint.respond(tx, make_response(req, 481))
            return
        self.endpoint.respond(tx, make_response(req, 200))
        digit = sessions.dtmf_relay_digit(req.get("Content-Type") or "", req.body)
        if digit and leg.call is not None and leg is leg.call.customer:
            self.customer_digit(leg.call, digit)

    def _reinvite(self, tx, req: Request) -> None:
        leg = self._leg_for(req)
        if leg is None:
            self.endpoint.respond(tx, make_response(req, 481))
            return
        try:
            leg.dialog.check_remote_cseq(req)
        except SipError as err:
            self.endpoint.respond(tx, make_response(req, err.status))
            return
        leg.refreshed()
        call = leg.call
        other = call.other_side(leg) if call is not None else None
        headers = [("Contact", leg.contact()), ("Allow", self.ALLOW)]
        headers += [("Session-Expires", se)] if (se := req.get("Session-Expires")) else []
        if sessions.relays_reinvite(bool(req.body), other, self.media is not None):
            # Relay the new session (hold/unhold, codec change) and answer with what the other side answers.
            def relayed(event, ctx, resp, tx=tx, req=req):
                other._reinvite_done(event, ctx, resp)
                if event == "response" and resp is not None and resp.status >= 200:
                    if resp.status < 300:
                        leg.local_sdp = resp.body or leg.local_sdp
                        self.endpoint.respond(tx, make_response(req, 200, headers=headers + [
                            ("Content-Type", "application/sdp")], body=leg.local_sdp))
                    else:
                        self.endpoint.respond(tx, make_response(req, resp.status if resp.status < 600 else 488))
                elif event in ("timeout", "error"):
                    self.endpoint.respond(tx, make_response(req, 500, headers=[("Retry-After", "2")]))
            other.reinvite(req.body, relayed)
            return
        if self.media is not None and video_switch.switches_video(leg, other, req.body):   # browsers: voice <-> video
            return drive(video_switch.carry(self, tx, req, leg, other, headers), self.done_for(call.id))
        # Media anchored here: a re-INVITE (hold, resume, refresh) is answered by this leg alone, with the
        # session it already has and the direction mirrored; the other party sees nothing.
        body = sessions.hold_answer(leg.local_sdp, req.body, leg.rtc is not None)
        self.endpoint.respond(tx, make_response(req, 200, headers=headers + (
            [("Content-Type", "application/sdp")] if body else []), body=body))
        if call is not None and leg is call.agent_leg and req.body:
            self.carry(consult.agent_hold(call, leg, sessions.holds(req.body)))

    # --- callback ------------------------------------------------------------------------------------------
    def customer_digit(self, call: Call, digit: str) -> None:
        if call.ivr is not None:
            call.ivr.digit(digit)
            return
        q = self.queue_settings.get(call.queue)
        entry = self.center.acd.entries.get(call.id) if self.center is not None else None
        if callback.accepts(call, digit, callback_digit=q.callback_digit if q is not None else None,
                            waiting_unoffered=entry is not None and not entry.ringing,
                            anchored=self.media is not None):
            self.carry(self.core.book_callback(call))

    def on_stray_response(self, resp: Response, src) -> bool:
        """A 2xx retransmission after the INVITE transaction ended: ACK it again (s. 13.2.2.4)."""
        if resp.cseq[1] != "INVITE" or not 200 <= resp.status < 300:
            return False
        leg = self.dialogs.get((resp.call_id, resp.from_.tag or ""))
        if leg is not None and leg.dialog is not None:
            leg.ack_2xx(resp)
            return True
        return False

    # --- ends ----------------------------------------------------------------------------------------------
    def leg_failed(self, leg: Leg, why: str) -> None:
        self.carry(self.core.leg_failed(leg, why, time.time(), self.acd_state()))

    def leg_gone(self, leg: Leg, why: str) -> None:
        self.carry(self.core.leg_gone(leg, why, time.time(), self.acd_state()))

    def end_call(self, call: Call, reason: str) -> None:
        """End a call (calls.flow.CallCore.end_call decides; every end goes through it, its CDR before its BYEs)."""
        self.carry(self.core.end_call(call, reason, time.time(), self.acd_state()))

    def _call_over(self, e: fx.CallOver) -> None:
        self.stats["ended"] += 1
        if e.call.outbound_to is not None and e.call.customer.invite_tx is not None:
            self.outbound_by_tx.pop(id(e.call.customer.invite_tx), None)

    def _write_cdr(self, e: fx.WriteCdr) -> None:
        if self.records is None:
            return
        row = e.row
        if self.center is not None:     # carried after the ACD's effects: the call's queue-log figures are in
            row = cdr.with_queue_timing(row, *self.center.call_timing(row["call_id"]))
        row = {**row, **(getattr(e.call, "channel", None) or {"channel": "phone"})}   # click-to-dial or not
        fut = e.call.committed = self.records.add_cdr(row)
        fut.add_done_callback(lambda f, cid=e.row["call_id"]: f.exception() and self.log.error(
            "cdr_write_failed", call_id=cid, error=repr(f.exception())))

    def stop(self) -> None:
        for call in list(self.calls.values()):
            self.end_call(call, "node stopping")


# what leaves only once an ending call's records are committed: the messages that tell the phones it is over
AFTER_RECORDS = (fx.SendBye, fx.SendCancel, fx.Forget)


def _se_interval(resp: Response, default: int) -> int:
    return session_timer.interval_of(resp.get("Session-Expires"), default)
