"""Agents' outbound calls on the pure core: relayed ringing, the answer, mapped failures, the agent's CANCEL."""

from __future__ import annotations

from softswitch.calls import flow, outbound
from softswitch.calls.call import Call
from softswitch.calls.effects import AnswerCall, Bridge, Respond, SendBye, SendCancel
from softswitch.calls.leg import LegState

from .harness import World


def agent_calls_out(w: World) -> Call:
    """Agent 1001's INVITE to another phone, as outbound.place_outbound sets it up."""
    w.ready("1001")
    a = LegState("uas", agent_id="1001")
    call = Call("out-1", a, "70002", w.now)
    a.call = call
    w.act(w.acd.outbound("1001", call.id))
    w.core.add(call)
    call.outbound_to = LegState("uac", call)
    call.outbound_to.fire("invite")
    return call


def test_ringing_is_relayed_the_answer_answers_the_agent_and_the_cdr_says_outbound():
    w = World()
    call = agent_calls_out(w)
    a, b = call.customer, call.outbound_to
    assert w.acd.agents["1001"].state == "talking"             # occupied for the length of the call
    out = w.carry(outbound.far_side_provisional(call, 180, b"v=0 early"))
    assert out == [Respond(a, 180, b"v=0 early", provisional=True)] and b.state == "early"
    w.clock.t += 5
    assert flow.answered(b) == []
    assert w.carry(outbound.far_side_answered(call, w.now, b"v=0 far")) == [AnswerCall(a, b"v=0 far")]
    a.fire("answer")                                           # the shell's Leg.answer
    w.clock.t += 30
    w.hangs_up(b)
    assert SendBye(a) in w.effects and call.ended
    row = w.cdrs[0]
    assert (row["outcome"], row["agent_id"], row["talk_s"], row["end_reason"]) == ("outbound", "1001", 30.0,
                                                                                    "agent bye")
    assert w.acd.agents["1001"].state != "talking"


def test_anchored_media_joins_the_far_side_to_the_agents_room_and_keeps_early_media_ours():
    w = World()
    call = agent_calls_out(w)
    a, b = call.customer, call.outbound_to
    a.stream, b.stream, call.answer_sdp = object(), object(), b"v=0 ours"
    assert w.carry(outbound.far_side_provisional(call, 183, b"v=0 theirs"))[-1] == Respond(a, 183, b"", True)
    out = w.carry(outbound.far_side_answered(call, w.now, b"v=0 far"))
    assert out == [Bridge(call, b, b"v=0 far"), AnswerCall(a, b"v=0 ours")]


def test_far_side_failures_reach_the_agent_mapped_and_end_the_call():
    for status, shown in ((486, 486), (302, 480), (407, 403), (603, 603)):
        w = World()
        call = agent_calls_out(w)
        out = w.carry(outbound.far_side_failed(w.core, call, status, w.now, w.acd))
        assert out[0] == Respond(call.customer, shown)
        assert call.ended and call.outbound_to.state == "ended"
        assert w.cdrs[0]["end_reason"] == f"far side {status}" and w.cdrs[0]["outcome"] == "outbound"


def test_a_far_side_that_never_answers_is_a_480_for_the_agent():
    w = World()
    call = agent_calls_out(w)
    out = w.carry(outbound.far_side_unreachable(w.core, call, "timeout", w.now, w.acd))
    assert out[0] == Respond(call.customer, 480) and call.ended


def test_the_agent_cancels_before_the_far_side_answers():
    w = World()
    call = agent_calls_out(w)
    w.carry(outbound.far_side_provisional(call, 180, b""))
    out = w.carry(outbound.caller_cancelled(w.core, call, w.now, w.acd))
    assert out[0] == SendCancel(call.outbound_to) and call.ended
    assert w.cdrs[0]["end_reason"] == "caller cancelled"
    assert w.acd.agents["1001"].state != "talking"
