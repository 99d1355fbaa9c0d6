"""Call control: the back-to-back user agent between customers and agents.

A customer's INVITE is routed (routing.Router). A call for a skill queue is answered at once (so the switch
can play media) and queued in the ACD; the ACD's offers become INVITEs to the agent's registered softphone
with auto-answer hints; when the agent answers, the customer is re-INVITEd with the agent's session so the
two talk. Either side hanging up ends both; dead calls end by session timer.
"""

from __future__ import annotations

import time

from acd import AcdError, AgentStateError, Leave, Offer, Withdraw

from .aio import drive
from .legs import Leg, new_tag
from .log import get as get_logger
from .routing import Router
from .sdp import ANSWER_DIRECTION, answer_events, build_sdp, negotiate_audio, parse_sdp
from .sip.errors import SipError
from .sip.headers import parse_delta_params
from .sip.message import Request, Response, make_response
from .sip.transaction import Transaction
from .sip.uri import SipURI
from .transport.base import Target

MIN_SE = 90


class Call:
    def __init__(self, call_id: str, customer: Leg, number: str) -> None:
        self.id = call_id
        self.customer = customer
        self.number = number
        self.queue = ""
        self.offers: dict[str, Leg] = {}        # agent id -> agent leg ringing or answered
        self.agent_leg: Leg | None = None       # the connected agent
        self.offer_sdp = b""                    # the customer's session description
        self.video = False
        self.started = time.time()
        self.answered_at = 0.0
        self.ended = False
        self.outbound_to: Leg | None = None     # outbound calls: the called leg
        self.supervisor: Leg | None = None      # a supervisor listening, whispering or barging in
        self.callback = False                   # the caller hung up to be called back in turn
        self.customer_contact = ""
        self.supervisor_mode = ""
        self.ivr = None
        self.priority = 0                       # from the customer's Priority header (RFC 3261 s. 20.26)
        self.offer = None                       # the customer's parsed SDP offer
        self.recording = None


class CallControl:
    ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REGISTER"

    def __init__(self, endpoint, router: Router, *, domain: str = "localhost", media_address: str = "127.0.0.1",
                 rtp_ports: tuple[int, int] = (20000, 29999), session_expires: int = 1800, authn=None) -> None:
        self.endpoint = endpoint
        self.loop = endpoint.loop
        self.router = router
        self.domain = domain
        self.media_address = media_address
        self.session_expires = int(session_expires)
        self.authn = authn                      # authn.Authenticator: agents' calls out of the called routes
        self.log = get_logger("calls")
        self.center = None                      # ContactCenter when queues are configured
        self.media = None                       # CallMedia when the node runs a media engine
        self.pool = None                        # Pool in pool mode: agent reservations across nodes
        self.records = None                     # RecordStore: a CDR for every call
        self.node_id = ""
        self.queue_settings: dict = {}          # queue name -> settings.SkillQueue (announcements, recording)
        self.ivr_runner = None
        self.listen: dict[str, tuple[str, int]] = {}
        self.calls: dict[str, Call] = {}
        self.dialogs: dict[tuple[str, str], Leg] = {}
        self.pending: dict[str, Leg] = {}       # our INVITEs by Call-ID until they have a dialog
        self.preparing: set[tuple[str, str]] = set()   # (call, agent) offers still being set up (media, pool)
        self.outbound_by_tx: dict[int, Leg] = {}   # agents' unanswered outbound INVITEs -> the far leg
        self._port_lo, self._port_hi = rtp_ports
        self._next_port = rtp_ports[0]
        self.stats = {"calls": 0, "rejected": 0, "answered_by_agent": 0, "ended": 0, "overloaded": 0,
                      "announcements": 0}
        self.max_calls = 0                      # 0: no limit; else 503 past it
        self.draining = False                   # stopping: new calls get 503, calls in progress finish
        self.outbound_per_minute = 0            # per agent (toll-fraud guard); 0: no cap
        self._outbound_times: dict[str, list[float]] = {}
        self.loop_lag = 0.0                     # smoothed event-loop lateness, seconds (set by the node)
        self.max_loop_lag = 0.1
        self.busy = 0.0                         # share of time spent on SIP (set by the node)
        self.max_busy = 0.95
        self.resend_ratio = 0.0                 # re-sent messages per new transaction (set by the node)
        self.max_resend_ratio = 0.1
        self.backlog = 0.0                      # smoothed age of queued datagrams, seconds (set by the node)
        self.max_backlog = 0.1
        self.trunk_invite = None     # (tx, req) -> True when a trunk's INVITE was answered there (node.trunks)
        for m, h in (("INVITE", self.on_invite), ("BYE", self.on_bye), ("CANCEL", self.on_cancel),
                     ("UPDATE", self.on_update), ("INFO", self.on_info)):
            endpoint.handlers[m] = h
        endpoint.ack_handler = self.on_ack
        endpoint.stray_response_handler = self.on_stray_response

    # --- addressing ----------------------------------------------------------------------------------------
    def _hostport(self, proto: str) -> tuple[str, int]:
        return self.listen.get(proto) or next(iter(self.listen.values()), ("127.0.0.1", 5060))

    def contact_for(self, proto: str) -> str:
        host, port = self._hostport(proto)
        t = "" if proto == "udp" else f";transport={proto}"
        return f"<sip:softswitch@{host}:{port}{t}>"

    def via_for(self, proto: str) -> str:
        host, port = self._hostport(proto)
        return f"SIP/2.0/{proto.upper()} {host}:{port};rport"

    def media_port(self) -> int:
        """Even ports round the configured range (RTP on even, RTCP on odd)."""
        port = self._next_port
        self._next_port += 2
        if self._next_port > self._port_hi - 1:
            self._next_port = self._port_lo
        return port

    def binding_target(self, b) -> Target:
        """Where requests for a registered phone go: over its own connection for stream transports; over UDP
        to the Contact when it names the address the REGISTER came from (no NAT between), else to that source
        address (received/rport), which is what gets through a NAT."""
        proto, host, port = b.source
        if proto != "udp":
            return Target(proto, host, port, self.endpoint.find_connection(proto, host, port))
        try:
            from .sip.uri import parse_uri
            uri = parse_uri(b.contact)
        except SipError:
            uri = None
        if isinstance(uri, SipURI) and uri.host == host and uri.port and not b.path:
            return Target("udp", host, uri.port)
        return Target("udp", host, port)

    def overloaded(self) -> bool:
        return (bool(self.max_calls and len(self.calls) >= self.max_calls) or self.loop_lag > self.max_loop_lag
                or self.busy > self.max_busy or self.resend_ratio > self.max_resend_ratio
                or self.backlog > self.max_backlog)

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
        for call in self.calls.values():
            for agent_id, leg in call.offers.items():
                if leg.state != "ended":
                    out.setdefault(agent_id, set()).add(call.id)
            if call.outbound_to is not None and call.customer.agent_id:
                out.setdefault(call.customer.agent_id, set()).add(call.id)
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
        caller_agent = None
        if self.authn is not None and not self.router.has_route(number, ext):
            # Only an agent calls numbers outside the called routes: challenged before any state is kept,
            # whatever the number or the From, so no answer tells an agent's number from any other.
            caller_agent = self._authenticate_agent(tx, req)
            if caller_agent is None:
                return
        ep.respond(tx, make_response(req, 100))
        if self.draining:
            ep.respond(tx, make_response(req, 503, "Shutting down", to_tag=new_tag(), headers=[("Retry-After", "30")]))
            return
        if self.overloaded():
            self.stats["overloaded"] += 1
            ep.respond(tx, make_response(req, 503, "Overloaded", to_tag=new_tag(), headers=[("Retry-After", "5")]))
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
        if decision.kind in ("reject", "auth") or (decision.kind in ("queue", "ivr") and self.center is None):
            status, reason = decision.status or 480, decision.reason or "No agents"
            if decision.kind == "auth":          # no authenticator to challenge with: refused outright
                status, reason = 403, "Forbidden"
            self.stats["rejected"] += 1
            self.log.info("call_rejected", call_id=req.call_id, number=number, status=status, reason=reason)
            ep.respond(tx, make_response(req, status, reason, to_tag=new_tag()))
            return
        if decision.kind == "outbound":
            if not self._outbound_allowed(caller_agent):
                self.log.warning("outbound_rate_capped", agent_id=caller_agent, call_id=req.call_id)
                ep.respond(tx, make_response(req, 403, "Outbound call rate limit reached", to_tag=new_tag()))
                return
            from .outbound import place_outbound
            place_outbound(self, tx, req, number or "", caller_agent)
            return
        if self.media is not None and offer is not None:
            drive(self._answer_anchored(tx, req, offer, number or "", decision), self._done_for(req.call_id))
            return
        call = self._answer_customer(tx, req, offer, number or "")
        if call is None:
            return
        self._route_answered(call, decision)

    def _route_answered(self, call: Call, decision) -> None:
        if decision.kind == "queue":
            if self.media is not None and call.customer.stream is not None:
                drive(self._announce_and_queue(call, decision.target), self._done_for(call.id))
            else:
                self.enqueue(call, decision.target)
        else:
            self.start_ivr(call, decision.target)

    def _task_done(self, result, err, call_id: str = "") -> None:
        if err is not None:
            self.log.error("call_task_failed", call_id=call_id, error=repr(err))

    def _done_for(self, call_id: str):
        return lambda result, err: self._task_done(result, err, call_id)

    async def _answer_anchored(self, tx, req: Request, offer, number: str, decision) -> None:
        """Answer with our own media stream (the switch plays prompts and bridges audio itself)."""
        timer = self._session_timer_or_422(tx, req)
        if timer is None:
            return
        headers, interval, we_refresh = timer
        leg = Leg(self, "uas", None, tx.context)
        leg.invite_tx = tx
        try:
            sdp = await self.media.answer_customer(leg, offer)
        except SipError as err:
            self.media.close(leg)
            self.endpoint.respond(tx, make_response(req, err.status, err.detail, to_tag=new_tag()))
            return
        except OSError as exc:
            self.log.error("media_unavailable", call_id=req.call_id, error=str(exc))
            self.endpoint.respond(tx, make_response(req, 503, "Media unavailable", to_tag=new_tag(),
                                                    headers=[("Retry-After", "5")]))
            return
        if tx.state not in ("trying", "proceeding"):        # cancelled while the stream opened
            self.media.close(leg)
            return
        call = self._customer_call(leg, req, number, offer)
        leg.stream.on_dtmf = lambda d, call=call: self.customer_digit(call, d)
        leg.answer(req, sdp, headers)
        leg.start_session_timer(interval, we_refresh)
        self.log.info("call_answered", call_id=call.id, number=number, video=call.video, rtp=leg.stream.port)
        self._route_answered(call, decision)

    async def _announce_and_queue(self, call: Call, queue: str) -> None:
        """Entry announcement first; the call joins the queue (and may be offered) when it has been heard."""
        q = self.queue_settings.get(queue)
        if q is not None and q.announce_entry:
            await self.media.play(call.customer.stream, q.announce_entry)
        if call.ended:
            return
        self.media.hold_music(call.customer.stream, q.music_on_hold if q else None)
        self.enqueue(call, queue)
        if q is not None and (q.announce_position or q.announce_wait):
            await self._periodic_announcements(call, q)

    async def _periodic_announcements(self, call: Call, q) -> None:
        """While the caller waits: position and estimated wait every announce_every seconds, music between."""
        import asyncio
        from .call_media import number_prompts
        acd = self.center.acd
        while True:
            await asyncio.sleep(q.announce_every)
            entry = acd.entries.get(call.id)
            if call.ended or entry is None or entry.ringing or call.agent_leg is not None:
                if call.ended or entry is None:
                    return
                continue
            names: list[str] = []
            if q.announce_position:
                names += ["caller_number", *number_prompts(min(acd.position(call.id) or 1, 99))]
            wait = acd.estimated_wait(call.id) if q.announce_wait else None
            if wait is not None:
                minutes = int(round(wait / 60))
                names += ["estimated_wait"] + (["less_than_a_minute"] if minutes < 1 else
                                               [*number_prompts(min(minutes, 99)), "minutes"])
            frames = self.media.sentence(names)
            if frames is None:
                continue
            self.stats["announcements"] += 1
            self.log.info("queue_announcement", call_id=call.id, position=acd.position(call.id),
                          estimated_wait=round(wait, 1) if wait is not None else None)
            finished = await self.media.play(call.customer.stream, frames)
            if finished and not call.ended and call.agent_leg is None and call.id in acd.entries:
                self.media.hold_music(call.customer.stream, q.music_on_hold)

    def _outbound_allowed(self, agent_id: str) -> bool:
        """At most `outbound_per_minute` calls per agent in any minute: a stolen softphone password cannot
        be used to pump calls out."""
        if not self.outbound_per_minute:
            return True
        now = time.time()
        times = [t for t in self._outbound_times.get(agent_id, ()) if t > now - 60.0]
        if len(times) >= self.outbound_per_minute:
            self._outbound_times[agent_id] = times
            return False
        times.append(now)
        self._outbound_times[agent_id] = times
        return True

    def _authenticate_agent(self, tx, req: Request) -> str | None:
        """The agent whose softphone sent this INVITE, proven by digest (407 challenge); None once answered.
        A failure of any kind (unknown user, wrong password, locked account, credentials of another number
        than the From's) gets the same 403."""
        from_user = req.from_.uri.user_unescaped if isinstance(req.from_.uri, SipURI) else None
        values = req.get_all("Proxy-Authorization")
        now = time.time()

        def challenge(stale: bool = False) -> Response:
            return make_response(req, 407, to_tag=new_tag(), headers=[
                ("Proxy-Authenticate", v) for v in self.authn.challenge(from_user, now, stale=stale)])
        if not values:
            # stateless: an INVITE flood gets challenges, not transactions
            self.endpoint.respond_stateless(tx, challenge())
            return None
        verdict = self.authn.check(req.method, values[0], now, tx.context.host)
        if verdict.kind in ("stale", "replay", "challenge"):
            self.endpoint.respond(tx, challenge(stale=verdict.kind == "stale"))
            return None
        agent = self.router.softphones.get(verdict.username or "") if verdict.kind == "ok" else None
        if agent is None or verdict.username != from_user:
            self.endpoint.respond(tx, make_response(req, 403, to_tag=new_tag()))
            return None
        return agent

    def _session_timer_headers(self, req: Request) -> tuple[list[tuple[str, str]], int, bool] | None:
        """RFC 4028 as UAS: (headers for the 2xx, interval, whether we refresh); None when 422 is due."""
        se_value = req.get("Session-Expires")
        supported = {t.strip().lower() for v in req.get_all("Supported") for t in v.split(",")}
        interval = self.session_expires
        asked = None
        if se_value:
            head = se_value.partition(";")[0].strip(" \t")
            if head.isascii() and head.isdigit():     # a value that is no number counts as absent
                asked, plist = parse_delta_params(se_value, "Session-Expires")   # bad parameters: 400
                params = {k.lower(): (v or "").lower() for k, v in plist}
                if asked < MIN_SE:
                    return None
                interval = min(asked, self.session_expires)
                if params.get("refresher") == "uas":
                    return [("Session-Expires", f"{interval};refresher=uas")], interval, True
        if "timer" in supported:
            return [("Session-Expires", f"{interval};refresher=uac"), ("Require", "timer")], interval, False
        return [("Session-Expires", f"{interval};refresher=uas")], interval, True

    def _session_timer_or_422(self, tx, req: Request):
        """The session timer of the 2xx, or None after answering 422 (Session-Expires below Min-SE)."""
        timer = self._session_timer_headers(req)
        if timer is None:
            self.endpoint.respond(tx, make_response(req, 422, to_tag=new_tag(), headers=[("Min-SE", str(MIN_SE))]))
        return timer

    def _customer_call(self, leg: Leg, req: Request, number: str, offer) -> Call:
        """A customer's call from its INVITE, registered as in progress."""
        call = Call(req.call_id, leg, number)
        leg.call = call
        call.offer_sdp, call.offer = req.body, offer
        call.video = bool(offer is not None and offer.has_video)
        call.priority = {"emergency": 2, "urgent": 1}.get((req.get("Priority") or "").strip().lower(), 0)
        contacts = req.contacts if req.has("Contact") else []
        call.customer_contact = str(contacts[0].uri) if contacts and contacts != "*" else str(req.from_.uri)
        self.calls[call.id] = call
        self.stats["calls"] += 1
        return call

    def _answer_customer(self, tx, req: Request, offer, number: str) -> Call | None:
        timer = self._session_timer_or_422(tx, req)
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
        call = self._customer_call(leg, req, number, offer)
        leg.answer(req, sdp, headers)
        leg.start_session_timer(interval, we_refresh)
        self.log.info("call_answered", call_id=call.id, number=number, video=call.video)
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
                    self._offer(act)
                elif isinstance(act, Withdraw):
                    self._withdraw(act)
                elif isinstance(act, Leave):
                    self._leave(act)
            except Exception:
                self.log.exception("action_failed", call_id=getattr(act, "call_id", ""),
                                   agent_id=getattr(act, "agent_id", ""), action=repr(act))

    def _offer(self, o: Offer) -> None:
        if self.pool is not None:
            drive(self._preparing_offer(o, self._offer_pooled(o)), self._done_for(o.call_id))
            return
        if self.media is not None:
            drive(self._preparing_offer(o, self._offer_anchored(o)), self._done_for(o.call_id))
            return
        self._offer_now(o, None)

    async def _preparing_offer(self, o: Offer, setup) -> None:
        """Run an offer's set-up, counted in live_agent_calls meanwhile (the reconciler must not take a
        ringing agent whose leg is not made yet for a stuck call)."""
        key = (o.call_id, o.agent_id)
        self.preparing.add(key)
        try:
            await setup
        finally:
            self.preparing.discard(key)

    async def _offer_pooled(self, o: Offer) -> None:
        """Pool mode: the agent's reservation first, so no other node can offer them a call meanwhile."""
        if not await self.pool.reserve(o.agent_id, o.call_id):
            self.log.info("agent_reserved_elsewhere", call_id=o.call_id, agent_id=o.agent_id)
            self.center.run(self.center.acd.offer_lost, o.call_id, o.agent_id)
            return
        entry = self.center.acd.entries.get(o.call_id)
        if entry is None or o.agent_id not in entry.ringing:        # withdrawn while we asked
            await self.pool.release(o.agent_id)
            return
        if self.media is not None:
            await self._offer_anchored(o)
        else:
            self._offer_now(o, None)

    async def _offer_anchored(self, o: Offer) -> None:
        call = self.calls.get(o.call_id)
        if call is None or call.customer.stream is None:
            self._offer_now(o, None)
            return
        probe = Leg(self, "uac", call, Target("udp", "", 0))
        live = [b for b in self.center.bindings.get(o.softphone, ()) if b.expires_at > time.time()]
        browser = bool(live) and max(live, key=lambda b: b.registered_at).source[0] in ("ws", "wss")
        try:
            if browser:
                # a WebRTC phone: ICE/DTLS-SRTP on its side, a plain engine stream on ours
                from .webrtc import WebRtcLeg
                probe.rtc = await WebRtcLeg.create(self.media.engine, self.media.engine.address)
                probe.stream = probe.rtc.stream
                probe.video = None
                sdp = await probe.rtc.offer(video=call.video)
            else:
                sdp = await self.media.offer_agent(probe, call.offer)
        except OSError as exc:
            self.log.error("media_unavailable", call_id=o.call_id, error=str(exc))
            self.center.run(self.center.acd.offer_failed, o.call_id, o.agent_id, "declined")
            return
        acd_entry = self.center.acd.entries.get(o.call_id)
        if call.ended or acd_entry is None or o.agent_id not in acd_entry.ringing:
            self.media.close(probe)                         # withdrawn while the stream opened
            return
        self._offer_now(o, probe, sdp)

    def _offer_now(self, o: Offer, prepared: Leg | None, sdp: bytes = b"") -> None:
        call = self.calls.get(o.call_id)
        bindings = sorted(self.center.bindings.get(o.softphone, ()), key=lambda b: (b.q or 0.0, b.registered_at))
        live = [b for b in bindings if b.expires_at > time.time()]
        if call is None or not live:
            if prepared is not None:
                self.media.close(prepared)
            self.loop.call_soon(self.center.run, self.center.acd.offer_failed, o.call_id, o.agent_id, "declined")
            return
        b = live[-1]
        leg = prepared or Leg(self, "uac", call, self.binding_target(b))
        leg.peer = self.binding_target(b)
        leg.agent_id = o.agent_id
        call.offers[o.agent_id] = leg
        cust = call.customer.dialog
        caller = cust.remote_uri if cust else "<sip:anonymous@anonymous.invalid>"
        extra = [("Call-Info", f"<sip:{self.domain}>;answer-after={o.auto_answer_after:g}"),
                 ("Alert-Info", f"<http://localhost>;info=alert-autoanswer;delay={o.auto_answer_after:g}"),
                 ("Session-Expires", f"{self.session_expires};refresher=uac")]
        extra += [("Route", p) for p in b.path]
        if call.queue:
            extra.append(("X-CC-Queue", call.queue))
        sdp = sdp or call.offer_sdp or build_sdp(self.media_address, int(time.time()), 1,
                                                 [(self.media_port(), 101, "sendrecv", 0)])
        leg.invite(b.contact, f"<sip:{o.softphone}@{self.domain}>", caller, sdp, extra,
                   lambda ev, tx, resp: self._agent_response(leg, ev, resp))

    def _agent_response(self, leg: Leg, event: str, resp: Response | None) -> None:
        call = leg.call
        if event in ("timeout", "error"):
            if leg.state != "ended" and not leg.cancelled:
                leg.state = "ended"
                self._offer_failed(call, leg, "no_answer" if event == "timeout" else "declined")
            return
        status = resp.status
        if status < 200:
            if status > 100 and leg.state == "calling":
                leg.state = "early"
            if leg.cancel_pending:           # any provisional response, 100 included, allows the CANCEL
                leg._send_cancel()
            return
        if status < 300:
            if not leg.accept_2xx(resp):
                return
            leg.start_session_timer(_se_interval(resp, self.session_expires), _we_refresh_uac(resp))
            try:
                self.center.run(self.center.acd.answered, call.id, leg.agent_id)
            except AcdError:
                leg.bye()
                return
            call.agent_leg = leg
            call.answered_at = time.time()
            self.stats["answered_by_agent"] += 1
            self.log.info("call_connected", call_id=call.id, agent_id=leg.agent_id, queue=call.queue)
            if getattr(leg, "rtc", None) is not None and resp.body:
                drive(self._browser_answered(call, leg, resp.body), self._done_for(call.id))
            elif call.callback and leg.stream is not None and resp.body:
                self.media.point(leg, resp.body)
                self._call_back(call, leg)
            elif leg.stream is not None and resp.body:
                try:
                    self.media.agent_answered(call, leg, resp.body)
                except (SipError, TypeError, ValueError) as exc:
                    self.log.warning("agent_sdp_unusable", call_id=call.id, error=str(exc))
                q = self.queue_settings.get(call.queue)
                if q is not None and q.record:
                    path = self.media.record(call, leg)
                    self.log.info("recording", call_id=call.id, path=path)
            elif resp.body and call.customer.state == "confirmed":
                call.customer.reinvite(resp.body)          # no media engine: media straight between phones
            return
        if leg.state != "ended":
            leg.state = "ended"
            self.dialogs.pop(leg.key, None)
            if not leg.cancelled:
                self._offer_failed(call, leg, "no_answer" if status in (408, 480) else "declined")

    async def _browser_answered(self, call: Call, leg: Leg, body: bytes) -> None:
        await leg.rtc.accept_answer(body)
        if call.ended or call.agent_leg is not leg:
            return
        if call.callback:
            self._call_back(call, leg)
        else:
            self.media.bridge(call, leg)
            # WebRTC video (issue "WebRTC agent phone"): a browser customer and a browser agent that both
            # negotiated video see each other; the video is relayed by the two WebRtcLegs (aiortc), not by
            # the engine. Audio stays in the engine room above.
            cust_rtc = call.customer.rtc
            if cust_rtc is not None and cust_rtc.has_video and leg.rtc.has_video:
                leg.rtc.send_video(cust_rtc.remote_video)       # the agent sees the customer
                cust_rtc.send_video(leg.rtc.remote_video)       # the customer sees the agent
                self.log.info("video_relayed", call_id=call.id, agent_id=leg.agent_id)
        q = self.queue_settings.get(call.queue)
        if q is not None and q.record and not call.callback:
            self.media.record(call, leg)

    def _offer_failed(self, call: Call, leg: Leg, reason: str) -> None:
        call.offers.pop(leg.agent_id, None)
        if self.media is not None:
            self.media.close(leg)
        self.center.run(self.center.acd.offer_failed, call.id, leg.agent_id, reason)

    def _withdraw(self, w: Withdraw) -> None:
        call = self.calls.get(w.call_id)
        leg = call.offers.pop(w.agent_id, None) if call else None
        if leg is not None:
            leg.bye()
            if self.media is not None:
                self.media.close(leg)

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
        self.endpoint.respond(tx, make_response(req, 200))
        leg.stop_timers()
        leg.state = "ended"
        self.dialogs.pop(leg.key, None)
        self.leg_gone(leg, "bye")

    def on_cancel(self, tx, req: Request) -> None:
        inv = self.endpoint.layer.find_invite_server(req)
        if inv is None:
            self.endpoint.respond(tx, make_response(req, 481))
            return
        self.endpoint.respond(tx, make_response(req, 200))
        if inv.state in ("trying", "proceeding"):
            self.endpoint.respond(inv, make_response(inv.request, 487, to_tag=new_tag()))
            pending = self.outbound_by_tx.pop(id(inv), None)
            if pending is not None:       # an agent's outbound call not yet answered: cancel the far side
                pending.cancel()
                if pending.call is not None:
                    self.end_call(pending.call, "caller cancelled")

    def on_update(self, tx, req: Request) -> None:
        leg = self._leg_for(req)
        if leg is None:
            self.endpoint.respond(tx, make_response(req, 481))
            return
        leg.refreshed()
        se = req.get("Session-Expires")
        headers = [("Session-Expires", se.split(";")[0] + ";refresher=uac"), ("Require", "timer")] if se else []
        self.endpoint.respond(tx, make_response(req, 200, headers=[("Contact", leg.contact()), *headers]))

    def on_info(self, tx, req: Request) -> None:
        leg = self._leg_for(req)
        if leg is None:
            self.endpoint.respond(tx, make_response(req, 481))
            return
        self.endpoint.respond(tx, make_response(req, 200))
        digit = _dtmf_relay_digit(req)
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
        other = None
        if call is not None:
            other = call.agent_leg if leg is call.customer else (call.customer if leg is call.agent_leg else None)
        headers = [("Contact", leg.contact()), ("Allow", self.ALLOW)]
        se = req.get("Session-Expires")
        if se:
            headers.append(("Session-Expires", se))
        if req.body and other is not None and other.state == "confirmed" and self.media is None:
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
        # Media anchored here: a re-INVITE (hold, resume, refresh) is answered by this leg alone, with the
        # session it already has and the direction mirrored; the other party sees nothing.
        body = leg.local_sdp
        if req.body and body:
            try:
                direction = ANSWER_DIRECTION[parse_sdp(req.body).first("audio").direction]
                body = _with_direction(body, direction)
            except (SipError, AttributeError):
                pass
            if leg.rtc is not None:
                body = _as_dtls_answer(body, req.body)
        self.endpoint.respond(tx, make_response(req, 200, headers=headers + (
            [("Content-Type", "application/sdp")] if body else []), body=body))

    # --- callback ------------------------------------------------------------------------------------------
    def customer_digit(self, call: Call, digit: str) -> None:
        if call.ivr is not None:
            call.ivr.digit(digit)
            return
        q = self.queue_settings.get(call.queue)
        entry = self.center.acd.entries.get(call.id) if self.center is not None else None
        if (q is not None and q.callback_digit == digit and entry is not None and not entry.ringing
                and not call.callback and self.media is not None):
            call.callback = True
            drive(self._confirm_callback(call), self._done_for(call.id))

    async def _confirm_callback(self, call: Call) -> None:
        """The caller keeps their place: confirm, hang up their line; the agent is rung first when it is
        their turn, then the caller is called back."""
        self.center.run(self.center.acd.callback, call.id)
        await self.media.play(call.customer.stream, self.media.system("callback_confirm"))
        leg = call.customer
        if call.ended or call.agent_leg is not None:
            return
        leg.bye()
        self.dialogs.pop(leg.key, None)
        self.media.close(leg)
        self.log.info("callback_requested", call_id=call.id, contact=call.customer_contact)

    def _call_back(self, call: Call, agent_leg: Leg) -> None:
        """The agent answered a callback: play a note to the agent and call the customer."""
        old = call.customer
        hello = self.media.system("callback_hello")
        if hello is not None:
            self.media.engine.play(agent_leg.stream, hello)
        leg = Leg(self, "uac", call, old.peer)

        async def place() -> None:
            sdp = await self.media.offer_agent(leg, None)
            to = old.dialog.remote_uri if old.dialog else f"<{call.customer_contact}>"
            leg.invite(call.customer_contact, to, f"<sip:{call.number}@{self.domain}>", sdp, [],
                       lambda ev, tx, resp: self._callback_answer(call, leg, ev, resp))
        drive(place(), self._done_for(call.id))

    def _callback_answer(self, call: Call, leg: Leg, event: str, resp) -> None:
        if event in ("timeout", "error") or (resp is not None and resp.status >= 300):
            leg.state = "ended"
            self.media.close(leg)
            self.end_call(call, "callback not answered")
            return
        if resp.status < 200 or not leg.accept_2xx(resp):
            return
        call.customer = leg
        self.media.point(leg, resp.body)
        self.media.bridge(call, call.agent_leg)
        self.log.info("callback_connected", call_id=call.id, agent_id=call.agent_leg.agent_id)

    def on_stray_response(self, resp: Response, src) -> None:
        """A 2xx retransmission after the INVITE transaction ended: ACK it again (s. 13.2.2.4)."""
        if resp.cseq[1] != "INVITE" or not 200 <= resp.status < 300:
            return
        leg = self.dialogs.get((resp.call_id, resp.from_.tag or ""))
        if leg is not None and leg.dialog is not None:
            leg.ack_2xx(resp)

    # --- ends ----------------------------------------------------------------------------------------------
    def leg_failed(self, leg: Leg, why: str) -> None:
        self.log.info("leg_failed", call_id=leg.call.id if leg.call else "", why=why)
        leg.bye()
        self.dialogs.pop(leg.key, None)
        self.leg_gone(leg, why)

    def leg_gone(self, leg: Leg, why: str) -> None:
        call = leg.call
        if call is None or call.ended:
            return
        if leg is call.customer:
            self.end_call(call, "customer " + why)
        elif leg is call.agent_leg or leg is call.outbound_to:
            self.end_call(call, "agent " + why)
        elif leg is call.supervisor:
            call.supervisor = None
            if self.media is not None:
                self.media.close(leg)
        else:
            call.offers.pop(leg.agent_id, None)

    def end_call(self, call: Call, reason: str) -> None:
        if call.ended:
            return
        call.ended = True
        self.calls.pop(call.id, None)
        self.stats["ended"] += 1
        if call.outbound_to is not None and call.customer.invite_tx is not None:
            self.outbound_by_tx.pop(id(call.customer.invite_tx), None)
        for leg in [call.customer, call.agent_leg, call.outbound_to, call.supervisor, *call.offers.values()]:
            if leg is not None:
                leg.bye()
                self.dialogs.pop(leg.key, None)
        if call.ivr is not None:
            call.ivr.cancel()
        if call.recording is not None:
            call.recording.close()
        if self.media is not None:
            for leg in [call.customer, call.agent_leg, call.outbound_to, call.supervisor, *call.offers.values()]:
                if leg is not None:
                    self.media.close(leg)
        if self.center is not None:
            acd = self.center.acd
            if call.id in acd.talking:
                self.center.run(acd.call_ended, call.id)
            elif call.id in acd.entries:
                self.center.run(acd.caller_gone, call.id)
        self.log.info("call_ended", call_id=call.id, reason=reason,
                      duration=round(time.time() - call.started, 3))
        if self.records is not None:
            self._write_cdr(call, reason)

    def _write_cdr(self, call: Call, reason: str) -> None:
        now = time.time()
        outcome = "outbound" if call.outbound_to is not None else (
            self.center.acd.outcomes.get(call.id) if self.center is not None else None) or (
            "abandoned" if call.queue else "failed")
        cust = call.customer.dialog
        connected = call.answered_at or None
        agent = call.agent_leg.agent_id if call.agent_leg is not None else call.customer.agent_id
        # wait and talk as the queue log has them (README "Records"); talk of a call no queue handed over
        # (an agent's outbound call) runs from its answer
        wait, talk = self.center.call_timing(call.id) if self.center is not None else (None, None)
        if talk is None:
            talk = now - connected if connected else 0.0
        row = {"call_id": call.id, "node": self.node_id, "caller": cust.remote_uri if cust else "",
               "called": call.number, "queue": call.queue, "agent_id": agent, "started_at": call.started,
               "answered_at": call.started, "connected_at": connected, "ended_at": now,
               "wait_s": None if wait is None else round(wait, 3), "talk_s": round(talk, 3), "outcome": outcome,
               "end_reason": reason, "recording": getattr(call.recording, "path", None)}
        fut = self.records.add_cdr(row)
        fut.add_done_callback(lambda f, cid=call.id: f.exception() and self.log.error(
            "cdr_write_failed", call_id=cid, error=repr(f.exception())))

    def stop(self) -> None:
        for call in list(self.calls.values()):
            self.end_call(call, "node stopping")


def _se_interval(resp: Response, default: int) -> int:
    try:
        return parse_delta_params(resp.get("Session-Expires") or "", "Session-Expires")[0]
    except SipError:
        return default


def _we_refresh_uac(resp: Response) -> bool:
    se = (resp.get("Session-Expires") or "").lower()
    return "refresher=uas" not in se


def _with_direction(sdp: bytes, direction: str) -> bytes:
    lines = sdp.decode().split("\r\n")
    out = [f"a={direction}" if ln in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive") else ln for ln in lines]
    return "\r\n".join(out).encode()


def _as_dtls_answer(ours: bytes, offer: bytes) -> bytes:
    """Our first WebRTC description re-used as an answer: the DTLS role must be the opposite of the one the
    browser takes in its offer (RFC 5763 s. 5); ICE credentials and fingerprint stay, so nothing restarts."""
    theirs = "active"
    for line in offer.decode("latin-1").split("\r\n"):
        if line.startswith("a=setup:"):
            theirs = line[8:].strip()
    role = {"active": "passive", "passive": "active"}.get(theirs, "passive")
    return b"\r\n".join(b"a=setup:" + role.encode() if ln.startswith(b"a=setup:") else ln
                         for ln in ours.split(b"\r\n"))


def _dtmf_relay_digit(req: Request) -> str | None:
    ctype = (req.get("Content-Type") or "").lower()
    text = req.body.decode("latin-1", "replace")
    if "dtmf-relay" in ctype:
        for line in text.splitlines():
            k, _, v = line.partition("=")
            if k.strip().lower() == "signal" and v.strip():
                return v.strip()[0]
    if ctype.startswith("application/dtmf") and text.strip():
        return text.strip()[0]
    return None
