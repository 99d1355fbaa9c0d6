"""Call flows on the pure core: a fake clock, the real ACD, no sockets; each runs in milliseconds."""

from __future__ import annotations

from softswitch.calls import callback, flow, sessions, supervision
from softswitch.calls.effects import (AcdCallback, ArmSessionTimer, Bridge, CallBack, CallOver, CloseMedia,
                                      Forget, LegFailed, PlayCallbackConfirm, PointMedia, Reinvite, SendBye,
                                      SendCancel, SetSupervision, StopTimers, WriteCdr)
from softswitch.calls.leg import LegState

from .harness import World


def test_queued_call_answered_bridged_then_ended_by_the_agent_with_its_cdr():
    w = World()
    w.ready("1001")
    w.clock.t += 4
    call = w.customer_calls()
    agent = w.rung[0]
    assert (agent.agent_id, agent.state) == ("1001", "calling")
    w.rings(agent)
    assert agent.state == "early"
    w.clock.t += 3
    out = w.answers(agent)
    assert agent.state == "confirmed" and call.agent_leg is agent
    assert Bridge(call, agent, None) not in out and any(isinstance(e, Reinvite) for e in out)  # no media here
    assert w.acd.agents["1001"].state == "talking"
    w.clock.t += 60
    out = w.hangs_up(agent)
    assert out[2:4] == [CallOver(call), WriteCdr(w.cdrs[0])]   # the record before any hang-up
    assert out.index(SendBye(call.customer)) > 3
    row = w.cdrs[0]
    assert (row["outcome"], row["agent_id"], row["wait_s"], row["talk_s"]) == ("answered", "1001", 3.0, 60.0)
    assert row["end_reason"] == "agent bye"
    assert call.customer.state == "ended" and call.id not in w.core.calls
    assert w.acd.agents["1001"].state == "wrap_up"


def test_an_anchored_agent_answer_is_bridged_and_recorded():
    w = World()
    w.ready("1001")
    call = w.customer_calls()
    agent = w.rung[0]
    agent.stream = object()
    out = w.answers(agent, body=b"v=0 agent", record=True)
    assert [type(e).__name__ for e in out[1:]] == ["Bridge", "Record"]
    assert out[1] == Bridge(call, agent, b"v=0 agent")


def test_caller_hangs_up_while_the_agent_rings():
    w = World()
    w.ready("1001")
    call = w.customer_calls()
    agent = w.rung[0]
    w.rings(agent)
    w.clock.t += 7
    out = w.hangs_up(call.customer)
    assert SendCancel(agent) in out and agent.state == "ended" and agent.cancelled
    assert w.cdrs[0]["outcome"] == "abandoned" and w.cdrs[0]["wait_s"] == 7.0
    assert w.acd.agents["1001"].state == "idle"              # withdrawn: free again
    assert w.rejects(agent, 487) == []                       # the CANCELled INVITE's 487 changes nothing


def test_agent_never_answers_the_ring_timeout_moves_the_call_on():
    w = World(agents=2)
    w.ready("1001", "1002")
    call = w.customer_calls()
    first = w.rung[0]
    w.rings(first)
    w.tick(15.5)
    assert SendCancel(first) in w.effects and first.state == "ended"
    assert first.agent_id not in call.offers
    second = w.rung[1]
    assert second.agent_id != first.agent_id and second.state == "calling"
    assert w.acd.agents[first.agent_id].state != "ringing"
    w.answers(second)
    assert call.agent_leg is second


def test_an_invite_that_times_out_reports_no_answer_once():
    w = World(agents=1)
    w.ready("1001")
    call = w.customer_calls()
    leg = w.rung[0]
    out = w.carry(w.core.agent_unreachable(call, leg, "timeout"))
    assert [type(e).__name__ for e in out] == ["CloseMedia", "AcdOfferFailed"]
    assert out[1].reason == "no_answer" and leg.state == "ended"
    assert w.core.agent_unreachable(call, leg, "timeout") == []


def test_cancel_racing_the_agents_200_ends_by_bye():
    w = World()
    w.ready("1001")
    call = w.customer_calls()
    agent = w.rung[0]
    w.hangs_up(call.customer)                                # no 1xx yet: the CANCEL waits for one
    assert agent.cancel_pending and SendCancel(agent) not in w.effects
    out = w.answers(agent)                                   # ... but the 200 wins the race
    assert out == [StopTimers(agent), SendBye(agent)]
    assert agent.state == "ended" and call.agent_leg is None
    assert w.acd.agents["1001"].state == "idle"


def test_withdrawn_early_then_200_also_ends_by_bye():
    w = World()
    w.ready("1001")
    w.customer_calls()
    agent = w.rung[0]
    w.rings(agent)
    w.carry(w.core.withdraw("c1", "1001"))
    assert SendCancel(agent) in w.effects
    assert flow.answered(agent) == [StopTimers(agent), SendBye(agent)]


def test_reinvite_hold_is_answered_here_when_anchored_and_relayed_when_not():
    w = World()
    w.ready("1001")
    call = w.customer_calls(interval=600, we_refresh=False)
    agent = w.rung[0]
    w.answers(agent)
    ours = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            b"m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n")
    hold = ours.replace(b"sendrecv", b"sendonly")
    other = call.other_side(call.customer)
    assert other is agent
    assert not sessions.relays_reinvite(True, other, anchored=True)
    assert b"a=recvonly" in sessions.hold_answer(ours, hold, webrtc=False)
    assert sessions.relays_reinvite(True, other, anchored=False)
    # any re-INVITE refreshes the session: the expiry deadline starts over
    assert flow.refreshed(call.customer) == [ArmSessionTimer(call.customer, 600 - 32)]


def test_session_timer_expiry_ends_the_call():
    w = World()
    w.ready("1001")
    call = w.customer_calls(interval=120, we_refresh=False)
    assert ArmSessionTimer(call.customer, 88) in w.effects
    w.answers(w.rung[0])
    w.clock.t += 88
    out = w.carry(flow.session_due(call.customer))
    assert out[-1] == LegFailed(call.customer, "session timer expired")
    assert SendBye(call.customer) in w.effects and SendBye(w.rung[0]) in w.effects
    assert w.cdrs[0]["end_reason"] == "customer session timer expired"
    assert w.cdrs[0]["outcome"] == "answered"
    assert w.acd.agents["1001"].state == "wrap_up"


def test_callback_keeps_the_place_and_calls_the_customer_back():
    w = World(agents=1)
    w.ready("1001")
    w.set_state("1001", "busy")
    call = w.customer_calls()                                 # the only agent is busy: the call waits
    entry = w.acd.entries[call.id]
    assert callback.accepts(call, "1", callback_digit="1", waiting_unoffered=not entry.ringing, anchored=True)
    out = w.carry(w.core.book_callback(call))
    assert out == [AcdCallback(call.id), PlayCallbackConfirm(call)]
    out = w.carry(w.core.callback_confirmed(call))            # after the confirmation prompt
    old = call.customer
    assert SendBye(old) in out and Forget(old) in out and CloseMedia(old) in out and old.state == "ended"
    assert call.id in w.acd.entries and not call.ended        # the place is kept
    w.clock.t += 30
    w.set_state("1001", "idle")
    agent = w.rung[0]
    agent.stream = object()
    out = w.answers(agent)
    assert out[1:] == [PointMedia(agent, b"v=0 agent"), CallBack(call, agent)]
    back = LegState("uac", call)                              # the shell calls the customer's contact
    back.fire("invite")
    assert flow.answered(back) == []
    out = w.carry(w.core.callback_connected(call, back, b"v=0 customer"))
    assert call.customer is back and out[:2] == [PointMedia(back, b"v=0 customer"), Bridge(call, agent)]
    w.clock.t += 20
    w.hangs_up(back)
    assert w.cdrs[0]["outcome"] == "answered" and w.cdrs[0]["wait_s"] == 30.0


def test_a_callback_nobody_answers_ends_the_call():
    w = World(agents=1)
    w.ready("1001")
    w.set_state("1001", "busy")
    call = w.customer_calls()
    w.carry(w.core.book_callback(call))
    w.carry(w.core.callback_confirmed(call))
    w.set_state("1001", "idle")
    agent = w.rung[0]
    agent.stream = object()
    w.answers(agent)
    back = LegState("uac", call)
    back.fire("invite")
    w.carry(w.core.callback_failed(call, back, w.now, w.acd))
    assert back.state == "ended" and call.ended and w.cdrs[0]["end_reason"] == "callback not answered"
    assert SendBye(agent) in w.effects


def test_supervisor_barges_in_then_listens_then_intercepts():
    w = World()
    w.ready("1001")
    call = w.customer_calls()
    agent = w.rung[0]
    agent.stream = call.customer.stream = object()
    w.answers(agent)
    d = supervision.decide("barge", anchored=True, call=call, has_binding=True)
    assert (d.action, d.result) == ("call", "calling")
    sup = LegState("uac", call)
    sup.stream = object()
    call.supervisor = sup
    sup.fire("invite")
    assert supervision.decide("whisper", anchored=True, call=call, has_binding=True).result == "calling"
    assert call.supervisor_mode == "whisper"                  # applied once the phone answers
    call.supervisor_mode = "barge"
    assert flow.answered(sup) == []
    out = w.carry(w.core.supervisor_connected(call, sup, b"v=0 sup", w.acd))
    assert out[0] == PointMedia(sup, b"v=0 sup")
    assert SetSupervision(call.id, sup, agent, call.customer, "barge") in out
    assert supervision.HEARS["barge"]["customer"] == {"agent", "supervisor"}
    d = supervision.decide("listen", anchored=True, call=call, has_binding=True)
    assert d.action == "apply"
    out = w.carry(w.core.supervise_now(call, "listen", w.acd))
    assert out[0] == SetSupervision(call.id, sup, agent, call.customer, "listen")
    out = w.carry(w.core.supervise_now(call, "intercept", w.acd))
    assert SendBye(agent) in out and call.agent_leg is sup and call.supervisor is None
    assert w.acd.agents["1001"].state == "wrap_up"            # the agent is free; the call goes on
    assert not call.ended


def test_a_supervisor_leaving_does_not_end_the_call():
    w = World()
    w.ready("1001")
    call = w.customer_calls()
    w.answers(w.rung[0])
    sup = LegState("uac", call)
    sup.fire("invite")
    sup.fire("answered")
    call.supervisor = sup
    out = w.hangs_up(sup)
    assert CloseMedia(sup) in out and call.supervisor is None and not call.ended
