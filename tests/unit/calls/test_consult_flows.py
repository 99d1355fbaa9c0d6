"""Consults on the pure core and ACD, with a fake clock: hold, swap, conference, complete, cancel, and every
party hanging up at every step."""

from __future__ import annotations

import pytest

from softswitch.calls import consult, sessions, transfer
from softswitch.calls.effects import (AcdCallEnded, CloseMedia, DialConsult, Log, Mix, SendBye, SendCancel)
from softswitch.calls.leg import LegState
from softswitch.calls.transfer import Target, TransferError

from .harness import World


def consulting(w, to="1002", answer=True):
    """A customer connected to 1001, who consults `to` (an agent id or a number)."""
    call = w.customer_calls()
    agent = w.rung[0]
    w.answers(agent)
    target = Target("agent", to) if to in w.acd.agents else Target("number", to)
    out = w.carry(consult.start(call, target, by_agent="1001", acd=w.acd))
    assert out[0] == Mix(call, present=(agent,), held=(call.customer,))
    assert DialConsult(call, w.acd.agents[to].softphone if to in w.acd.agents else to) in out
    second = LegState("uac", call, to if to in w.acd.agents else "")
    call.consult.leg = second              # the shell's DialConsult makes the leg and sends the INVITE
    second.fire("invite")
    if answer:
        second.fire("answered")
        out = w.carry(consult.answered(call, second, b""))
        assert out[0] == Mix(call, present=(agent, second), held=(call.customer,))
    return call, agent, second


def test_consult_an_agent_swap_conference_then_complete():
    w = World(agents=2)
    w.ready("1001", "1002")
    call = w.customer_calls()
    w.answers(w.rung[0])
    agent = call.agent_leg
    assert agent.agent_id == "1001" and w.acd.agents["1002"].state == "idle"
    w.carry(consult.start(call, Target("agent", "1002"), by_agent="1001", acd=w.acd))
    assert w.acd.agents["1002"].state == "talking" and w.acd.consulting == {"1001": "c1#consult"}
    assert w.acd.agent_view("1001")["consult"] is True
    with pytest.raises(TransferError):
        consult.swap(call, "1001")                                     # still ringing
    with pytest.raises(TransferError) as err:
        transfer.blind(call, Target("queue", "sales"), w.now, by="x", talking=True)
    assert err.value.status == 409 and call.agent_leg is agent
    with pytest.raises(TransferError):
        consult.start(call, Target("number", "5"), by_agent="1001", acd=w.acd)   # one at a time
    second = LegState("uac", call, "1002")
    call.consult.leg = second
    second.fire("invite")
    second.fire("answered")
    w.carry(consult.answered(call, second, b""))
    assert w.carry(consult.swap(call, "1001")) == [Mix(call, present=(agent, call.customer), held=(second,))]
    assert w.carry(consult.swap(call, "1001")) == [Mix(call, present=(agent, second), held=(call.customer,))]
    assert w.carry(consult.conference(call, None))[0] == Mix(call, present=(agent, call.customer, second))
    w.clock.t += 10
    out = w.carry(consult.complete(call, w.now, by_agent="1001", by="acme_alice"))
    assert Mix(call, present=(call.customer, second)) in out and SendBye(agent) in out
    assert call.agent_leg is second and call.consult is None
    assert w.acd.agents["1001"].state == "wrap_up" and w.acd.agents["1002"].state == "talking"
    assert w.acd.talking["c1"][0] == "1002" and w.acd.consulting == {}
    w.clock.t += 20
    w.hangs_up(call.customer)
    assert w.acd.agents["1002"].state == "wrap_up"
    row = w.cdrs[-1]
    assert row["agent_id"] == "1002" and row["extra"]["transfers"][0]["kind"] == "attended"


def test_the_second_party_hanging_up_brings_the_agent_back_to_the_customer():
    w = World(agents=2)
    w.ready("1001", "1002")
    call, agent, second = consulting(w)
    out = w.hangs_up(second)
    assert Mix(call, present=(agent, call.customer)) in out and CloseMedia(second) in out
    assert call.consult is None and not call.ended and w.acd.consulting == {}
    assert w.acd.agents["1002"].state == "idle"            # no queue behind a consult: no wrap-up
    assert w.acd.talking["c1"][0] == "1001"


def test_cancel_while_ringing_and_an_unanswered_number():
    w = World(agents=2)
    w.ready("1001", "1002")
    call, agent, second = consulting(w, answer=False)
    second.fire("provisional")
    out = w.carry(consult.cancel(call, "1001"))
    assert SendCancel(second) in out and Mix(call, present=(agent, call.customer)) in out
    assert w.acd.agents["1002"].state == "idle"
    call2 = call
    w.carry(consult.start(call2, Target("number", "70009"), by_agent="1001", acd=w.acd))
    leg = LegState("uac", call2, "")
    call2.consult.leg = leg
    leg.fire("invite")
    out = w.carry(consult.second_failed(call2, leg))
    assert Mix(call2, present=(agent, call2.customer)) in out and call2.consult is None


def test_the_agent_hanging_up_hands_over_and_the_customer_hanging_up_frees_everyone():
    w = World(agents=2)
    w.ready("1001", "1002")
    call, agent, second = consulting(w)
    out = w.hangs_up(agent)                              # the agent's BYE while consulting: transfer on hangup
    assert call.agent_leg is second and not call.ended
    assert any(isinstance(e, Log) and e.event == "call_transferred" for e in out)
    assert w.acd.talking["c1"][0] == "1002"
    w2 = World(agents=2)
    w2.ready("1001", "1002")
    call, agent, second = consulting(w2)
    out = w2.hangs_up(call.customer)
    assert call.ended and SendBye(second) in out and SendBye(agent) in out
    assert AcdCallEnded("c1") in out
    assert w2.acd.agents["1002"].state == "idle" and w2.acd.agents["1001"].state == "wrap_up"


def test_a_consult_refuses_busy_agents_queues_and_other_agents_calls():
    w = World(agents=2)
    w.ready("1001", "1002")
    call = w.customer_calls()
    w.answers(w.rung[0])
    w.set_state("1002", "busy")
    for target, by, status in ((Target("agent", "1002"), "1001", 409), (Target("queue", "sales"), "1001", 501),
                               (Target("agent", "1001"), "1001", 409), (Target("number", "7"), "1002", 403)):
        with pytest.raises(TransferError) as err:
            consult.start(call, target, by_agent=by, acd=w.acd)
        assert err.value.status == status
    assert call.consult is None and w.acd.agents["1002"].state == "busy"


def test_the_agent_phone_holding_the_customer_plays_music_outside_a_consult():
    w = World(agents=2)
    w.ready("1001", "1002")
    call = w.customer_calls()
    w.answers(w.rung[0])
    agent = call.agent_leg
    offer = b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=%s\r\n"
    assert sessions.holds(offer % b"sendonly") is True and sessions.holds(offer % b"inactive") is True
    assert sessions.holds(offer % b"sendrecv") is False and sessions.holds(b"garbage") is None
    assert consult.agent_hold(call, agent, True)[0] == Mix(call, present=(agent,), held=(call.customer,))
    assert consult.agent_hold(call, agent, False) == [Mix(call, present=(agent, call.customer))]
    assert consult.agent_hold(call, call.customer, True) == []             # only the agent's phone holds
    assert consult.agent_hold(call, agent, None) == []
