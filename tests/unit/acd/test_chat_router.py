"""Chat routing (acd/chat_router.py) on a fake clock: capacity, strategies, transfer, time-outs, and hypothesis
invariants over any sequence of inputs (never more chats than the cap; a chat is with one agent at a time)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.chat_router import Assigned, ChatError, ChatRouter, Ended, Requeued


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def router(strategy="longest_idle", max_chats=3, max_on_call=1, agents=("a1", "a2"), max_wait=60.0):
    clock = Clock()
    r = ChatRouter(clock, random.Random(1))
    r.add_queue("chat", strategy, max_wait=max_wait)
    r.add_queue("sales", strategy, max_wait=max_wait)
    for i, a in enumerate(agents):
        r.add_agent(a, {"chat": 0}, max_chats, max_on_call, order=i)
    return r, clock


def ready(r, *ids):
    for a in ids:
        r.set_state(a, "idle")
        r.set_online(a, True)


def test_three_chats_then_the_fourth_waits_and_gets_the_first_free_place():
    r, clock = router(agents=("a1",))
    ready(r, "a1")
    got = [r.open(f"c{i}", "chat") for i in range(4)]
    assert [type(e[0]) for e in got[:3]] == [Assigned] * 3 and got[3] == []
    assert r.position("c3") == 1 and r.queue_view("chat")["waiting"] == 1
    clock.t += 7
    out = r.end("c1", "agent ended")
    assert isinstance(out[0], Ended) and out[0].outcome == "answered"
    assert out[1] == Assigned("c3", "a1", "chat", 7.0, None)
    v = r.queue_view("chat")
    assert v["waiting"] == 0 and v["active"] == 3 and v["max_concurrency"] == 3
    assert v["average_speed_of_answer"] == pytest.approx(7 / 4)


def test_on_a_call_the_cap_drops_but_held_chats_stay():
    r, clock = router(agents=("a1",))
    ready(r, "a1")
    r.open("c1", "chat")
    r.open("c2", "chat")
    assert r.set_state("a1", "talking") == []
    assert r.agent_view("a1")["chats"] == ["c1", "c2"] and r.agent_view("a1")["capacity"] == 1
    assert r.open("c3", "chat") == []                     # 2 held >= 1 while on a call
    r.end("c1", "x")
    assert r.open("c4", "chat") == [] and r.queue_view("chat")["waiting"] == 2
    out = r.end("c2", "x")
    assert [e.chat for e in out if isinstance(e, Assigned)] == ["c3"]
    out = r.set_state("a1", "idle")
    assert [e.chat for e in out if isinstance(e, Assigned)] == ["c4"]


def test_busy_rest_and_closed_panel_get_no_chats():
    r, _ = router(agents=("a1",))
    r.set_online("a1", True)
    for state in ("offline", "busy", "rest"):
        r.set_state("a1", state)
        assert r.open(f"c-{state}", "chat") == []
    r.set_online("a1", False)
    r.set_state("a1", "idle")
    assert r.queue_view("chat")["waiting"] == 3
    out = r.set_online("a1", True)
    assert [e.chat for e in out] == ["c-offline", "c-busy", "c-rest"]


def test_fewer_chats_first_then_the_strategy():
    r, clock = router(agents=("a1", "a2", "a3"))
    ready(r, "a1", "a2", "a3")
    clock.t += 1
    agents = [r.open(f"c{i}", "chat")[0].agent for i in range(6)]
    assert sorted(agents[:3]) == ["a1", "a2", "a3"] and sorted(agents[3:]) == ["a1", "a2", "a3"]
    # longest idle: the agent a chat left longest ago gets the next one among equals
    clock.t += 1
    r.end("c2", "x")
    clock.t += 1
    r.end("c0", "x")
    assert r.open("n1", "chat")[0].agent == agents[2]


def test_penalty_tier_first():
    r, _ = router(agents=())
    r.add_agent("low", {"chat": 0}, 1, 0, order=5)
    r.add_agent("high", {"chat": 2}, 3, 1, order=0)
    ready(r, "low", "high")
    assert r.open("c1", "chat")[0].agent == "low"
    assert r.open("c2", "chat")[0].agent == "high"


def test_transfer_to_agent_and_queue():
    r, clock = router(agents=("a1", "a2"))
    r.add_agent("s1", {"sales": 0}, 2, 0, order=9)
    ready(r, "a1", "a2", "s1")
    first = r.open("c1", "chat")[0].agent
    other = "a2" if first == "a1" else "a1"
    out = r.transfer("c1", agent=other)
    assert out == [Requeued("c1", "chat", first, "transferred"), Assigned("c1", other, "chat", 0.0, first)]
    out = r.transfer("c1", queue="sales")
    assert out[-1].agent == "s1" and out[-1].queue == "sales"
    assert r.queue_view("sales")["answered"] == 0 and r.queue_view("chat")["answered"] == 1   # answered once
    with pytest.raises(ChatError):
        r.transfer("c1", agent="s1")                # already with them
    with pytest.raises(ChatError):
        r.transfer("c1", queue="nowhere")
    # a named agent with no room: the chat waits for them only
    r.set_state("a2", "busy")
    r.set_state("a1", "busy")
    r.transfer("c1", agent="a2")
    assert r.position("c1") == 1
    assert r.set_state("a1", "idle") == []
    assert r.set_state("a2", "idle")[0] == Assigned("c1", "a2", "sales", 0.0, "s1")


def test_agent_leaving_puts_chats_back_first_in_line():
    r, clock = router(agents=("a1", "a2"))
    ready(r, "a1")
    r.open("c1", "chat")
    r.open("c2", "chat")
    r.open("c3", "chat")
    r.open("c4", "chat")               # waits
    out = r.set_online("a1", False)
    assert [type(e) for e in out] == [Requeued] * 3
    assert [r.position(c) for c in ("c1", "c2", "c3", "c4")] == [1, 2, 3, 4]
    out = r.set_online("a2", True) + r.set_state("a2", "idle")
    assert sorted(e.chat for e in out if isinstance(e, Assigned)) == ["c1", "c2", "c3"]


def test_waiting_chat_times_out_and_abandons_count():
    r, clock = router(agents=("a1",), max_wait=30)
    r.open("c1", "chat")
    clock.t += 10
    r.open("c2", "chat")
    assert r.next_deadline() == 1030.0
    clock.t += 20
    out = r.tick()
    assert out == [Ended("c1", "chat", None, "timeout", "no agent in time", 30.0)]
    assert r.next_deadline() == 1040.0
    out = r.end("c2", "visitor left")
    assert out[0].outcome == "abandoned" and r.next_deadline() is None
    v = r.queue_view("chat")
    assert (v["offered"], v["abandoned"], v["timed_out"], v["waiting"]) == (2, 1, 1, 0)


def test_bad_inputs_are_refused():
    r, _ = router()
    with pytest.raises(ChatError):
        r.open("c1", "nope")
    r.open("c1", "chat")
    with pytest.raises(ChatError):
        r.open("c1", "chat")
    with pytest.raises(ChatError):
        r.end("zz", "x")
    with pytest.raises(ChatError):
        r.transfer("c1")
    with pytest.raises(ChatError):
        r.add_agent("bad", {"chat": 0}, 1, 2)


# --- invariants over any sequence of inputs -------------------------------------------------------------
AGENTS = ("a1", "a2", "a3")
op = st.one_of(
    st.tuples(st.just("state"), st.sampled_from(AGENTS),
              st.sampled_from(("idle", "talking", "busy", "rest", "wrap_up", "offline", "ringing"))),
    st.tuples(st.just("online"), st.sampled_from(AGENTS), st.booleans()),
    st.tuples(st.just("open"), st.integers(0, 15), st.sampled_from(("chat", "sales"))),
    st.tuples(st.just("end"), st.integers(0, 15), st.just("")),
    st.tuples(st.just("to_queue"), st.integers(0, 15), st.sampled_from(("chat", "sales"))),
    st.tuples(st.just("to_agent"), st.integers(0, 15), st.sampled_from(AGENTS)),
    st.tuples(st.just("time"), st.floats(0, 40), st.just("")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=60), st.sampled_from(("longest_idle", "round_robin", "random", "fewest_calls",
                                                    "linear")))
def test_invariants(ops, strategy):
    clock = Clock()
    r = ChatRouter(clock, random.Random(0))
    r.add_queue("chat", strategy, max_wait=60)
    r.add_queue("sales", strategy, max_wait=60)
    r.add_agent("a1", {"chat": 0}, 3, 1, 0)
    r.add_agent("a2", {"chat": 1, "sales": 0}, 2, 0, 1)
    r.add_agent("a3", {"sales": 0}, 1, 1, 2)
    held: dict[str, str] = {}                # chat -> agent, as the effects tell it
    for kind, x, y in ops:
        caps_before = {a.id: a.capacity() for a in r.agents.values()}
        held_before = {a.id: len(a.chats) for a in r.agents.values()}
        try:
            if kind == "state":
                out = r.set_state(x, y)
            elif kind == "online":
                out = r.set_online(x, y)
            elif kind == "open":
                out = r.open(f"c{x}", y)
            elif kind == "end":
                out = r.end(f"c{x}", "x")
            elif kind == "to_queue":
                out = r.transfer(f"c{x}", queue=y)
            elif kind == "to_agent":
                out = r.transfer(f"c{x}", agent=y)
            else:
                clock.t += x
                out = r.tick()
        except ChatError:
            out = []
        for e in out:
            if isinstance(e, Assigned):
                assert e.chat not in held, "assigned while with another agent"
                held[e.chat] = e.agent
            elif isinstance(e, Requeued):
                assert held.pop(e.chat) == e.from_agent
            elif isinstance(e, Ended):
                assert held.pop(e.chat, None) == e.agent
        # never more chats than the cap: an agent only gains chats while under their current capacity
        for a in r.agents.values():
            if len(a.chats) > held_before[a.id]:
                assert len(a.chats) <= a.capacity() and len(a.chats) <= a.max_chats
            assert len(a.chats) <= a.max_chats
            del caps_before[a.id]
        # a chat is with one agent at a time, and the router agrees with its effects
        seen = [c for a in r.agents.values() for c in a.chats]
        assert len(seen) == len(set(seen))
        assert {c: a.id for a in r.agents.values() for c in a.chats} == held
        for c in r.chats.values():
            waiting = c.id in r.queues[c.queue].waiting
            assert waiting == (c.agent is None)
            assert sum(c.id in q.waiting for q in r.queues.values()) == (1 if waiting else 0)
        for q in r.queues.values():
            assert q.active == sum(1 for c in r.chats.values() if c.queue == q.name and c.agent is not None)
        # nobody with room is left idle while a chat they could take waits (no wanted agent)
        for q in r.queues.values():
            if any(c.wanted_agent is None for c in q.waiting.values()):
                assert all(a.free() == 0 for a in q.members.values())


def test_withdraw_and_free_room():
    r, clock = router(agents=("a1",))
    r.open("c1", "chat")
    assert r.free("chat") == 0
    r.withdraw("c1")
    assert r.queue_view("chat")["waiting"] == 0 and r.queue_view("chat")["offered"] == 0 and "c1" not in r.chats
    assert r.next_deadline() is None
    ready(r, "a1")
    assert r.free("chat") == 3
    r.open("c2", "chat")
    with pytest.raises(ChatError):
        r.withdraw("c2")             # with an agent
    assert r.free("chat") == 2
