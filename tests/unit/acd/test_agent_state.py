"""The agent state machine (acd/agent_state.py): every (state, event) pair does what its kind says, and the
ACD moves agents by those rules only."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd import Acd, Agent, QueueSpec
from acd.agent_state import (DEFERRED, DEFERRED_REASON, EVENTS, NO_OP, STATES, TABLE, WITHDRAW_FIRST,
                             AgentStateError, apply, follow_up, kind)

PAIRS = list(itertools.product(STATES, EVENTS))


def _agent(state: str, registered: bool = True) -> Agent:
    a = Agent("1001", "2001", {"sales": 0}, state=state, registered=registered, reason="before", since=1.0,
              idle_since=1.0)
    a.call_id = "call-1" if state in ("ringing", "talking") else None
    return a


def _snapshot(a: Agent) -> tuple:
    return a.state, a.reason, a.since, a.idle_since, a.call_id, a.pending


def test_the_table_is_closed_and_each_pair_has_one_kind():
    assert {s for s, _ in TABLE} | set(TABLE.values()) <= set(STATES)
    assert not (DEFERRED & TABLE.keys()) and not (NO_OP & TABLE.keys()) and not (DEFERRED & NO_OP)
    assert WITHDRAW_FIRST <= TABLE.keys()
    assert {e for _, e in DEFERRED} == set(DEFERRED_REASON)
    kinds = {k: sum(1 for p in PAIRS if kind(*p) == k) for k in ("move", "deferred", "no-op", "refused")}
    assert kinds["move"] == len(TABLE) and kinds["deferred"] == len(DEFERRED) and sum(kinds.values()) == len(PAIRS)


@pytest.mark.parametrize("state, event", PAIRS, ids=[f"{s}-{e}" for s, e in PAIRS])
def test_every_state_event_pair(state, event):
    a = _agent(state)
    before = _snapshot(a)
    k = kind(state, event)
    if k == "refused":
        with pytest.raises(AgentStateError) as err:
            apply(a, event, 5.0, "why")
        assert (err.value.state, err.value.event) == (state, event) and str(err.value)
        assert _snapshot(a) == before
        return
    moved = apply(a, event, 5.0, "why")
    if k == "no-op":
        assert moved is None and _snapshot(a) == before
    elif k == "deferred":
        assert moved is None and a.pending == event and _snapshot(a)[:5] == before[:5]
        assert state == "talking"
    else:
        new = TABLE[(state, event)]
        assert moved == (state, new) and (a.state, a.reason, a.since) == (new, "why", 5.0)
        assert a.idle_since == (5.0 if new == "idle" else 1.0)
        assert a.call_id == (before[4] if new in ("ringing", "talking") else None)


@pytest.mark.parametrize("state", STATES)
def test_sign_in_needs_a_registered_softphone_in_every_state(state):
    a = _agent(state, registered=False)
    before = _snapshot(a)
    with pytest.raises(AgentStateError, match="registered softphone"):
        apply(a, "sign_in", 5.0)
    assert _snapshot(a) == before


@settings(max_examples=300)
@given(st.lists(st.sampled_from(EVENTS), max_size=40))
def test_a_walk_through_the_table(events):
    """Any sequence: refused events change nothing, a deferred event waits only while talking, and leaving
    talking hands it over exactly once, with its reason."""
    a = _agent("offline")
    for event in events:
        state = a.state
        try:
            moved = apply(a, event, 1.0, "r")
        except AgentStateError:
            assert kind(state, event) == "refused" and a.state == state
            continue
        assert a.state in STATES
        if moved:
            then = follow_up(a, moved[0])
            if then is not None:
                assert moved[0] == "talking" and then[1] == DEFERRED_REASON[then[0]]
                assert apply(a, *then) is not None and a.state == "offline"
        assert a.pending is None or a.state == "talking"
        assert a.call_id is None or a.state in ("ringing", "talking")


# --- the ACD moves agents by these rules only ----------------------------------------------------------------

ACTIONS = ["register", "unregister", "sign_in", "sign_out", "idle", "busy", "rest", "outbound", "end_call",
           "enqueue", "answer", "tick"]


@settings(max_examples=200)
@given(st.lists(st.sampled_from(ACTIONS), max_size=30))
def test_the_acd_follows_the_table(actions):
    now = [0.0]
    acd = Acd([QueueSpec("sales", wrap_up=5.0)], [Agent("1001", "2001", {"sales": 0})], lambda: now[0])
    a = acd.agents["1001"]
    calls = itertools.count()
    for action in actions:
        state, pending = a.state, a.pending
        now[0] += 3.0
        try:
            if action in ("register", "unregister"):
                acd.registration("1001", action == "register")
                event = None if action == "register" else "unregistered"
            elif action in ("idle", "busy", "rest"):
                acd.set_state("1001", action)
                event = f"set_{action}"
            elif action == "outbound":
                acd.outbound("1001", f"out-{next(calls)}")
                event = "outbound"
            elif action == "end_call":
                if a.call_id and a.state == "talking":
                    acd.call_ended(a.call_id)
                event = None
            elif action == "enqueue":
                acd.enqueue(f"in-{next(calls)}", "sales")
                event = None
            elif action == "answer":
                if a.state == "ringing":
                    acd.answered(a.call_id, "1001")
                event = None
            elif action == "tick":
                acd.tick()
                event = None
            else:
                getattr(acd, action)("1001")
                event = action
        except AgentStateError as exc:
            assert kind(state, exc.event) == "refused" or (exc.event == "sign_in" and not a.registered)
            assert (a.state, a.pending) == (state, pending)
            continue
        assert a.state in STATES
        assert a.pending is None or a.state == "talking"
        if event is not None and state != "ringing":      # from ringing the offer is withdrawn first
            k = kind(state, event)
            if k == "deferred":
                assert a.state == "talking" and a.pending == event
            elif k == "move" and state != "talking":
                assert a.state in (TABLE[(state, event)], "ringing")   # an idle agent may be offered a call
        if a.state == "offline":
            assert a.pending is None


def _acd_in(state: str) -> tuple[Acd, Agent]:
    """An ACD whose agent 1001 (registered) is in `state`, reached by the public inputs."""
    acd = Acd([QueueSpec("sales", wrap_up=5.0)], [Agent("1001", "2001", {"sales": 0})], lambda: 0.0)
    acd.registration("1001", True)
    if state != "offline":
        acd.sign_in("1001")
    if state in ("busy", "rest"):
        acd.set_state("1001", state)
    if state in ("ringing", "talking", "wrap_up"):
        acd.enqueue("call-1", "sales")
    if state in ("talking", "wrap_up"):
        acd.answered("call-1", "1001")
    if state == "wrap_up":
        acd.call_ended("call-1")
    assert acd.agents["1001"].state == state
    return acd, acd.agents["1001"]


INPUTS = {"sign_in": lambda acd: acd.sign_in("1001"), "sign_out": lambda acd: acd.sign_out("1001"),
          "unregistered": lambda acd: acd.registration("1001", False),
          "set_idle": lambda acd: acd.set_state("1001", "idle"), "set_busy": lambda acd: acd.set_state("1001", "busy"),
          "set_rest": lambda acd: acd.set_state("1001", "rest"), "outbound": lambda acd: acd.outbound("1001", "out-1")}


@pytest.mark.parametrize("state, event", list(itertools.product(STATES, INPUTS)),
                         ids=[f"{s}-{e}" for s, e in itertools.product(STATES, INPUTS)])
def test_the_acd_moves_every_state_by_the_table(state, event):
    """Each agent input of the ACD, in each state: the table's answer, the offer withdrawn first where
    WITHDRAW_FIRST says, and a deferred event taking effect when the call ends."""
    acd, a = _acd_in(state)
    k = kind(state, event)
    if k == "refused":
        with pytest.raises(AgentStateError):
            INPUTS[event](acd)
        assert a.state == state
        return
    out = INPUTS[event](acd)
    if (state, event) in WITHDRAW_FIRST:
        assert [type(x).__name__ for x in out][:1] == ["Withdraw"] and a.state == "offline"
    elif k == "no-op":
        assert a.state == state
    elif k == "deferred":
        assert a.state == "talking" and a.pending == event
        acd.call_ended(a.call_id)
        assert a.state == "offline" and a.pending is None and a.reason == DEFERRED_REASON[event]
    else:
        assert a.state == TABLE[(state, event)]
