"""The ACD engine, driven without sockets or a wall clock: strategies, overflow, wrap-up, stats, invariants."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from acd import Acd, Agent, AgentStateError, Leave, Offer, QueueSpec, Withdraw


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(queues=None, agents=3, strategy="longest_idle", **qopts):
    clock = Clock()
    queues = queues or [QueueSpec("q1", strategy=strategy, **qopts)]
    ags = [Agent(str(1001 + i), str(70001 + i), {q.name: 0 for q in queues}, order=i) for i in range(agents)]
    events = []
    acd = Acd(queues, ags, clock, random.Random(1), events.append)
    return acd, clock, events


def ready(acd, *ids):
    for i in ids:
        acd.registration(i, True)
        acd.sign_in(i)


def offers(actions):
    return [(a.call_id, a.agent_id) for a in actions if isinstance(a, Offer)]


def test_sign_in_needs_a_registered_phone_and_unregistering_signs_out():
    acd, clock, events = make()
    with pytest.raises(AgentStateError, match="registered softphone"):
        acd.sign_in("1001")
    acd.registration("1001", True)
    acd.sign_in("1001")
    assert acd.agents["1001"].state == "idle"
    acd.registration("1001", False)
    assert acd.agents["1001"].state == "offline" and acd.agents["1001"].reason == "softphone unregistered"
    assert [(e.old, e.new) for e in events if e.kind == "state"] == [("offline", "idle"), ("idle", "offline")]


def test_longest_idle_gets_the_call_and_answer_leads_to_wrap_up_then_idle():
    acd, clock, _ = make(wrap_up=5)
    ready(acd, "1001")
    clock.t += 10
    ready(acd, "1002")
    acts = acd.enqueue("c1", "q1")
    assert offers(acts) == [("c1", "1001")]
    o = acts[0]
    assert (o.softphone, o.auto_answer_after, o.ring_timeout) == ("70001", 2.0, 15.0)
    clock.t += 2
    acd.answered("c1", "1001")
    assert acd.agents["1001"].state == "talking"
    clock.t += 30
    acd.call_ended("c1")
    assert acd.agents["1001"].state == "wrap_up"
    assert acd.next_deadline() == clock.t + 5
    clock.t += 5
    acd.tick()
    assert acd.agents["1001"].state == "idle"
    v = acd.queue_view("q1")
    assert (v["answered"], v["average_speed_of_answer"], v["average_handle_time"]) == (1, 2.0, 30.0)
    assert acd.outcomes == {"c1": "answered"}


def test_ring_timeout_moves_to_next_agent_and_first_becomes_busy_no_answer():
    acd, clock, events = make(ring_timeout=15)
    ready(acd, "1001", "1002")
    assert offers(acd.enqueue("c1", "q1")) == [("c1", "1001")]
    clock.t += 15
    acts = acd.tick()
    assert Withdraw("c1", "1001", "no_answer") in acts
    assert offers(acts) == [("c1", "1002")]
    a = acd.agents["1001"]
    assert (a.state, a.reason) == ("busy", "no_answer")


def test_caller_hangs_up_while_ringing_frees_the_agent_at_once():
    acd, clock, _ = make()
    ready(acd, "1001")
    acd.enqueue("c1", "q1")
    acts = acd.caller_gone("c1")
    assert acts == [Withdraw("c1", "1001", "caller hung up")]
    assert acd.agents["1001"].state == "idle"
    assert acd.outcomes["c1"] == "abandoned"
    assert offers(acd.enqueue("c2", "q1")) == [("c2", "1001")]


def test_priority_beats_arrival_order():
    acd, clock, _ = make()
    ready(acd, "1001")
    acd.set_state("1001", "busy", "lunch")
    acd.enqueue("low", "q1", priority=0)
    clock.t += 1
    acd.enqueue("high", "q1", priority=5)
    assert offers(acd.set_state("1001", "idle")) == [("high", "1001")]


@pytest.mark.parametrize("strategy,expect", [
    ("linear", ["1001", "1001", "1001"]),
    ("round_robin", ["1001", "1002", "1003"]),
    ("fewest_calls", ["1001", "1002", "1003"]),
])
def test_strategies(strategy, expect):
    acd, clock, _ = make(strategy=strategy, wrap_up=0)
    ready(acd, "1001", "1002", "1003")
    got = []
    for i in range(3):
        clock.t += 1
        (o,) = [a for a in acd.enqueue(f"c{i}", "q1") if isinstance(a, Offer)]
        got.append(o.agent_id)
        acd.answered(o.call_id, o.agent_id)
        acd.call_ended(o.call_id)
    assert got == expect


def test_ring_all_offers_everyone_and_first_answer_withdraws_the_rest():
    acd, clock, _ = make(strategy="ring_all")
    ready(acd, "1001", "1002", "1003")
    assert sorted(offers(acd.enqueue("c1", "q1"))) == [("c1", "1001"), ("c1", "1002"), ("c1", "1003")]
    acts = acd.answered("c1", "1002")
    assert sorted(a.agent_id for a in acts if isinstance(a, Withdraw)) == ["1001", "1003"]
    assert [acd.agents[i].state for i in ("1001", "1002", "1003")] == ["idle", "talking", "idle"]


def test_penalty_prefers_lower_tier():
    queues = [QueueSpec("q1")]
    ags = [Agent("a", "1", {"q1": 5}, order=0), Agent("b", "2", {"q1": 0}, order=1)]
    clock = Clock()
    acd = Acd(queues, ags, clock, random.Random(1))
    for i in ("a", "b"):
        acd.registration(i, True)
        acd.sign_in(i)
    assert offers(acd.enqueue("c1", "q1")) == [("c1", "b")]


def test_overflow_on_max_wait_max_calls_and_no_agents():
    q = [QueueSpec("q1", max_wait=60, max_calls=1, overflow=("ivr", "closed")), QueueSpec("q2")]
    acd, clock, _ = make(queues=q)
    assert acd.enqueue("c0", "q1") == [Leave("c0", "ivr", "closed", "no_agents")]
    ready(acd, "1001")
    acd.set_state("1001", "busy", "meeting")
    assert acd.enqueue("c1", "q1") == []
    assert acd.enqueue("c2", "q1") == [Leave("c2", "ivr", "closed", "max_calls")]
    clock.t += 60
    assert acd.tick() == [Leave("c1", "ivr", "closed", "max_wait")]
    assert acd.outcomes == {"c0": "overflowed", "c1": "overflowed", "c2": "overflowed"}
    assert acd.queue_view("q1")["overflowed"] == 3


def test_overflow_to_another_queue_and_loops_end():
    q = [QueueSpec("a", max_wait=10, overflow=("queue", "b")), QueueSpec("b", max_wait=10, overflow=("queue", "a"))]
    acd, clock, _ = make(queues=q)
    ready(acd, "1001")
    acd.set_state("1001", "busy")
    acd.enqueue("c1", "a")
    leaves = []
    for _ in range(6):
        clock.t += 10
        leaves += [x for x in acd.tick() if isinstance(x, Leave)]
    assert leaves == [Leave("c1", "hangup", "", "overflow_loop")]
    assert acd.outcomes["c1"] == "overflowed" and not acd.entries


def test_video_queue_takes_only_video_calls():
    acd, clock, _ = make(queues=[QueueSpec("v", type="video")])
    ready(acd, "1001")
    assert acd.enqueue("c1", "v", video=False) == [Leave("c1", "hangup", "", "video_required")]
    assert offers(acd.enqueue("c2", "v", video=True)) == [("c2", "1001")]


def test_sign_out_while_talking_takes_effect_after_the_call():
    acd, clock, _ = make(wrap_up=0)
    ready(acd, "1001")
    acd.enqueue("c1", "q1")
    acd.answered("c1", "1001")
    acd.sign_out("1001")
    assert acd.agents["1001"].state == "talking"
    acd.call_ended("c1")
    assert acd.agents["1001"].state == "offline"


def test_stats_service_level_and_short_abandons():
    acd, clock, _ = make(service_level=20, short_abandon=5, wrap_up=0)
    ready(acd, "1001")
    acd.set_state("1001", "busy")
    acd.enqueue("short", "q1")
    clock.t += 2
    acd.caller_gone("short")                 # short abandon: not counted against the service level
    acd.enqueue("long", "q1")
    clock.t += 30
    acd.caller_gone("long")
    acd.enqueue("fast", "q1")
    acd.set_state("1001", "idle")
    clock.t += 3
    acd.answered("fast", "1001")
    v = acd.queue_view("q1")
    assert (v["answered"], v["abandoned"], v["service_level"], v["abandon_rate"]) == (1, 2, 0.5, 0.5)


# --- invariants under random sequences ---------------------------------------------------------------------
def naive_next_deadline(acd):
    """The earliest deadline by scanning every agent and call (what the engine's heap must agree with)."""
    times = [a.wrap_up_until for a in acd.agents.values() if a.state == "wrap_up"]
    for e in acd.entries.values():
        times.extend(e.ringing.values())
        if not e.callback:
            times.append(e.enqueued_at + acd.queues[e.queue].max_wait)
    return min(times) if times else None


def assert_roster_matches_scan(acd):
    for q in acd.queues:
        members = {a.id for a in acd.agents.values() if q in a.queues}
        ready = {a.id for a in members_of(acd, q) if a.state == "idle" and a.registered and not a.elsewhere}
        assert set(acd.roster.members.get(q, {})) == members
        assert set(acd.roster.ready.get(q, {})) == ready
        for state, n in acd.roster.counts.get(q, {}).items():
            assert n == sum(1 for a in members_of(acd, q) if a.state == state)
        assert acd.roster.staffed(q) == sum(1 for a in members_of(acd, q) if a.state != "offline")
        assert sorted(acd._waiting[q]) == sorted(c for c, e in acd.entries.items() if e.queue == q)
    assert set(acd.roster.elsewhere) == {a.id for a in acd.agents.values() if a.elsewhere}


def members_of(acd, q):
    return [a for a in acd.agents.values() if q in a.queues]


class AcdMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        qs = [QueueSpec("a", strategy="longest_idle", max_wait=100, max_calls=4, ring_timeout=15, wrap_up=3,
                        overflow=("queue", "b")),
              QueueSpec("b", strategy="ring_all", max_wait=50, ring_timeout=10, wrap_up=0,
                        overflow=("hangup", ""))]
        ags = [Agent("x", "1", {"a": 0}, order=0), Agent("y", "2", {"a": 1, "b": 0}, order=1),
               Agent("z", "3", {"b": 0}, order=2)]
        self.acd = Acd(qs, ags, self.clock, random.Random(0))
        self.n = 0
        self.calls: set[str] = set()

    @rule(agent=st.sampled_from("xyz"), up=st.booleans())
    def registration(self, agent, up):
        self.acd.registration(agent, up)

    @rule(agent=st.sampled_from("xyz"))
    def sign_in(self, agent):
        try:
            self.acd.sign_in(agent)
        except AgentStateError:
            assert not self.acd.agents[agent].registered

    @rule(agent=st.sampled_from("xyz"))
    def sign_out(self, agent):
        self.acd.sign_out(agent)

    @rule(agent=st.sampled_from("xyz"), state=st.sampled_from(["idle", "busy", "rest"]))
    def set_state(self, agent, state):
        try:
            self.acd.set_state(agent, state)
        except AgentStateError:
            assert self.acd.agents[agent].state in ("offline", "ringing", "talking")

    @rule(queue=st.sampled_from("ab"), priority=st.integers(0, 2))
    def call_arrives(self, queue, priority):
        self.n += 1
        cid = f"c{self.n}"
        self.calls.add(cid)
        self.acd.enqueue(cid, queue, priority)

    @precondition(lambda self: any(e.ringing for e in self.acd.entries.values()))
    @rule(data=st.data())
    def agent_answers(self, data):
        pairs = sorted((e.call_id, a) for e in self.acd.entries.values() for a in e.ringing)
        cid, agent = data.draw(st.sampled_from(pairs))
        self.acd.answered(cid, agent)

    @precondition(lambda self: any(e.ringing for e in self.acd.entries.values()))
    @rule(data=st.data())
    def agent_declines(self, data):
        pairs = sorted((e.call_id, a) for e in self.acd.entries.values() for a in e.ringing)
        cid, agent = data.draw(st.sampled_from(pairs))
        self.acd.offer_failed(cid, agent, "declined")

    @precondition(lambda self: bool(self.calls))
    @rule(data=st.data())
    def caller_hangs_up(self, data):
        self.acd.caller_gone(data.draw(st.sampled_from(sorted(self.calls))))

    @precondition(lambda self: bool(self.acd.talking))
    @rule(data=st.data())
    def agent_hangs_up(self, data):
        self.acd.call_ended(data.draw(st.sampled_from(sorted(self.acd.talking))))

    @rule(dt=st.sampled_from([0.5, 3, 10, 16, 60]))
    def time_passes(self, dt):
        self.clock.t += dt
        self.acd.tick()

    @precondition(lambda self: self.acd.next_deadline() is not None)
    @rule()
    def next_deadline_comes(self):
        self.clock.t = self.acd.next_deadline()
        self.acd.tick()
        assert self.acd.next_deadline() is None or self.acd.next_deadline() > self.clock.t

    @precondition(lambda self: any(not e.ringing for e in self.acd.entries.values()))
    @rule(data=st.data())
    def caller_asks_for_callback(self, data):
        self.acd.callback(data.draw(st.sampled_from(sorted(self.acd.entries))))

    @rule(agent=st.sampled_from("xyz"), engaged=st.booleans())
    def engaged_at_another_node(self, agent, engaged):
        self.acd.set_elsewhere(agent, engaged)

    @invariant()
    def deadlines_are_those_a_scan_would_find(self):
        assert self.acd.next_deadline() == naive_next_deadline(self.acd)

    @invariant()
    def per_queue_views_match_a_scan(self):
        assert_roster_matches_scan(self.acd)

    @invariant()
    def one_call_per_agent_and_one_agent_per_call(self):
        ringing_of: dict[str, int] = {}
        for e in self.acd.entries.values():
            if self.acd.queues[e.queue].strategy != "ring_all":
                assert len(e.ringing) <= 1
            for a in e.ringing:
                ringing_of[a] = ringing_of.get(a, 0) + 1
                assert self.acd.agents[a].state == "ringing" and self.acd.agents[a].call_id == e.call_id
        assert all(n == 1 for n in ringing_of.values())
        talking_agents = [agent for agent, _, _ in self.acd.talking.values()]
        assert len(talking_agents) == len(set(talking_agents))
        assert not set(talking_agents) & set(ringing_of)
        for a in self.acd.agents.values():
            assert (a.state == "ringing") == (a.id in ringing_of)

    @invariant()
    def no_idle_agent_while_a_call_it_can_take_waits(self):
        for a in self.acd.agents.values():
            if a.state == "idle" and a.registered and not a.elsewhere:
                assert not [e for e in self.acd.entries.values() if e.queue in a.queues and not e.ringing]

    @invariant()
    def every_call_has_at_most_one_outcome_and_finished_calls_have_one(self):
        for cid in self.calls:
            live = cid in self.acd.entries or cid in self.acd.talking
            outcome = self.acd.outcomes.get(cid)
            if cid in self.acd.entries:
                assert outcome is None or outcome == "answered"
            elif not live:
                assert outcome in ("answered", "abandoned", "overflowed", "rejected")


TestAcdMachine = AcdMachine.TestCase
TestAcdMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_position_and_estimated_wait_from_live_stats():
    acd, clock, _ = make(wrap_up=0)
    ready(acd, "1001", "1002")
    for cid in ("a", "b"):
        acd.enqueue(cid, "q1")
        acd.answered(cid, acd.agents["1001"].id if cid == "a" else "1002")
    clock.t += 120
    acd.call_ended("a")
    acd.call_ended("b")
    acd.set_state("1001", "busy")
    acd.set_state("1002", "busy")
    acd.enqueue("c1", "q1")
    acd.enqueue("c2", "q1", priority=1)
    assert (acd.position("c2"), acd.position("c1")) == (1, 2)
    assert acd.estimated_wait("c1") == 2 * 120 / 2          # two ahead-or-at, AHT 120 s, two agents
    assert acd.position("nope") is None


def test_erlang_c_matches_published_figures():
    from acd.erlang import agents_needed, erlang_c, service_level
    # 10 erlangs on 12 agents: P(wait) = 0.4494 (standard Erlang C tables)
    assert abs(erlang_c(12, 10.0) - 0.4494) < 0.001
    # against the textbook factorial formula, for a range of loads
    import math

    def reference(n, a):
        top = a ** n / math.factorial(n) * n / (n - a)
        return top / (sum(a ** k / math.factorial(k) for k in range(n)) + top)
    for n, a in ((3, 2.5), (12, 10.0), (30, 24.0), (60, 50.0)):
        assert abs(erlang_c(n, a) - reference(n, a)) < 1e-9
    # 360 calls/h at 240 s = 24 erlangs: 80% within 20 s first reached with 29 agents
    assert agents_needed(360, 240, 20, 0.8) == 29
    assert service_level(28, 24.0, 240, 20) < 0.8 <= service_level(29, 24.0, 240, 20)
    assert agents_needed(0, 240, 20) == 0 and erlang_c(5, 6.0) == 1.0


def test_queue_view_has_erlang_estimate_after_calls():
    acd, clock, _ = make(wrap_up=0)
    ready(acd, "1001")
    assert acd.queue_view("q1")["agents_needed"] is None
    for i in range(6):
        acd.enqueue(f"c{i}", "q1")
        acd.answered(f"c{i}", "1001")
        clock.t += 100
        acd.call_ended(f"c{i}")
    assert acd.queue_view("q1")["agents_needed"] >= 1


@settings(max_examples=200, deadline=None)
@given(strategy=st.sampled_from(["longest_idle", "fewest_calls", "least_talk_time", "linear", "round_robin",
                                 "ring_all"]),
       agents=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5), st.integers(0, 3), st.booleans()),
                       min_size=1, max_size=12),
       changes=st.lists(st.tuples(st.integers(0, 11), st.sampled_from(["busy", "idle", "rest"])), max_size=10))
def test_roster_pick_is_the_strategy_ranking_of_the_ready_agents(strategy, agents, changes):
    """The per-queue heap gives the same agent(s) as ranking every ready agent of the queue."""
    from acd.strategies import rank
    clock = Clock()
    ags = [Agent(str(i), str(100 + i), {"q": pen}, order=i) for i, (pen, _, _, _) in enumerate(agents)]
    acd = Acd([QueueSpec("q", strategy=strategy)], ags, clock, random.Random(0))
    for i, (_, answered, idle_at, up) in enumerate(agents):
        ags[i].answered, ags[i].talk_time = answered, float(answered * 7 % 5)
        if up:
            clock.t = 1000.0 + idle_at
            ready(acd, str(i))
    for i, state in changes:
        if i < len(ags) and ags[i].state != "offline":
            clock.t += 1
            acd.set_state(str(i), state)
    assert_roster_matches_scan(acd)
    idle = [a for a in ags if a.state == "idle" and a.registered]
    state = {"last_order": 2}
    got = acd.roster.pick("q", random.Random(0), dict(state))
    if not idle:
        assert got == []
        return
    ranked = rank(strategy, "q", idle, dict(state), random.Random(0))
    if strategy == "ring_all":
        best = min(a.queues["q"] for a in ranked)
        assert [a.id for a in got] == [a.id for a in ranked if a.queues["q"] == best]
    else:
        assert [a.id for a in got] == [ranked[0].id]
