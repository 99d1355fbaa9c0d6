"""Blind transfers on the pure core and ACD, with a fake clock: what a transfer hangs up, where the call goes,
the place it keeps, and what it refuses."""

from __future__ import annotations

import pytest

from acd import Agent
from softswitch.calls import transfer
from softswitch.calls.effects import (AcdCallEnded, AcdTransfer, CloseMedia, DialNumber, Forget, HoldCustomer,
                                      Notify, SendBye, StartIvr)
from softswitch.calls.transfer import Target, TransferError

from .harness import World

QUEUES, AGENTS, FLOWS = {"sales": 1, "support": 1}, {"1001": "70001", "1002": "70002"}, {"menu": []}


def route(name):
    return {"4002": ("queue", "sales"), "4009": ("ivr", "menu")}.get(name)


def resolve(text):
    return transfer.resolve(text, queues=QUEUES, agents=AGENTS, flows=FLOWS, route=route)


def test_targets_are_resolved_by_kind_then_by_bare_name_then_by_route():
    assert resolve("queue:sales") == Target("queue", "sales")
    assert resolve("agent:70002") == Target("agent", "1002")
    assert resolve("sales") == Target("queue", "sales")
    assert resolve("1001") == Target("agent", "1001")
    assert resolve("menu") == Target("ivr", "menu")
    assert resolve("4002") == Target("queue", "sales")
    assert resolve("4009") == Target("ivr", "menu")
    assert resolve("+15550100") == Target("number", "+15550100")
    for bad, status in (("queue:x", 404), ("agent:9", 404), ("ivr:x", 404), ("number:12a", 400), ("", 400),
                        ("x" * 200, 400), ("a\r\nb", 400), ("nobody", 404)):
        with pytest.raises(TransferError) as err:
            resolve(bad)
        assert err.value.status == status, bad
    assert transfer.replaces_of("Replaces=abc%40h%3Bto-tag%3Dt1%3Bfrom-tag%3Df1") == ("abc@h", "t1", "f1")
    assert transfer.replaces_of("x=1") is None and transfer.replaces_of(None) is None
    for bad in ("Replaces=abc", "Replaces=%3Bto-tag%3Dt%3Bfrom-tag%3Df", "Replaces=a%3Bto-tag%3Dt"):
        with pytest.raises(TransferError):
            transfer.replaces_of(bad)


def connected_call(w, agent_id="1001", **kw):
    call = w.customer_calls(**kw)
    leg = next(l for l in w.rung if l.agent_id == agent_id and l.call is call)
    w.answers(leg)
    return call, leg


def test_blind_transfer_to_a_queue_keeps_priority_and_first_arrival():
    w = World(agents=2)
    w.ready("1001")
    call, agent = connected_call(w, priority=1)
    w.clock.t += 30
    w.customer_calls("c2", priority=1)              # arrived later, same priority: waits (1002 is offline)
    w.clock.t += 30
    out = w.carry(transfer.blind(call, Target("queue", "sales"), w.now, by="acme_alice", talking=True,
                                 refer=agent))
    kinds = [type(e) for e in out]
    # the REFER hears 100, then the customer is held and given to the ACD, then 200, and only then the BYE
    assert kinds.index(Notify) < kinds.index(HoldCustomer) < kinds.index(AcdTransfer) < kinds.index(SendBye)
    assert [e.status for e in out if isinstance(e, Notify)] == [100, 200]
    assert Forget(agent) in out and CloseMedia(agent) in out and agent.state == "ended"
    assert call.agent_leg is None and not call.ended
    assert w.acd.agents["1001"].state == "wrap_up"
    e = w.acd.entries["c1"]
    assert (e.queue, e.priority, e.first_enqueued) == ("sales", 1, 1000.0)
    assert w.acd.position("c1") == 1 and w.acd.position("c2") == 2
    assert call.transfers == [{"at": 1060.0, "from_agent": "1001", "kind": "queue", "to": "sales",
                               "by": "acme_alice"}]
    w.tick(6)                                      # wrap-up over: 1001 takes the transferred call first
    leg = w.rung[-1]
    assert (leg.call.id, leg.agent_id) == ("c1", "1001")
    w.answers(leg)
    w.hangs_up(call.customer)
    assert w.cdrs[-1]["extra"]["transfers"][0]["to"] == "sales"


def test_blind_transfer_to_an_idle_agent_rings_only_that_agent():
    w = World(agents=3)
    w.ready("1001", "1002", "1003")
    call, agent = connected_call(w)
    w.carry(transfer.blind(call, Target("agent", "1003"), w.now, by="sup", talking=True))
    assert w.rung[-1].agent_id == "1003" and w.acd.entries["c1"].ringing.keys() == {"1003"}
    assert w.acd.agents["1002"].state == "idle"
    w.answers(w.rung[-1])
    assert call.agent_leg.agent_id == "1003" and w.acd.talking["c1"][0] == "1003"


def test_blind_transfer_to_a_busy_agent_waits_in_that_agents_queue():
    w = World(agents=1, extra_agents=[Agent("2001", "72001", {"support": 0}, order=5)])
    w.ready("1001", "2001")
    call, agent = connected_call(w)
    w.set_state("2001", "busy")
    w.carry(transfer.blind(call, Target("agent", "2001"), w.now, by="sup", talking=True))
    e = w.acd.entries["c1"]
    assert (e.queue, e.ringing) == ("support", {})
    w.set_state("2001", "idle")
    assert w.rung[-1].agent_id == "2001"


def test_blind_transfer_to_ivr_or_number_frees_the_agent_and_refusals_change_nothing():
    w = World(agents=2)
    w.ready("1001", "1002")
    call, agent = connected_call(w)
    with pytest.raises(TransferError) as err:
        transfer.blind(call, Target("agent", "1001"), w.now, by="x", talking=True)
    assert err.value.status == 409 and call.agent_leg is agent and agent.state == "confirmed"
    with pytest.raises(TransferError) as err:
        transfer.check(call, "1002")
    assert err.value.status == 403
    out = w.carry(transfer.blind(call, Target("ivr", "menu"), w.now, by="x", talking=True))
    assert AcdCallEnded("c1") in out and StartIvr(call, "menu") in out
    assert HoldCustomer(call, music=False) in out
    assert w.acd.agents["1001"].state == "wrap_up" and "c1" not in w.acd.entries
    with pytest.raises(TransferError) as err:
        transfer.blind(call, Target("number", "70009"), w.now, by="x", talking=False)
    assert err.value.status == 409                 # no agent on the call any more
    call2, agent2 = connected_call(w, agent_id="1002", call_id="c2")
    out = w.carry(transfer.blind(call2, Target("number", "70009"), w.now, by="x", talking=True))
    assert DialNumber(call2, "70009") in out and w.acd.agents["1002"].state == "wrap_up"
