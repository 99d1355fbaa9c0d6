"""The leg state table: every (state, event) pair either moves by the table or raises our own error."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, strategies as st

from softswitch.calls import flow
from softswitch.calls.effects import SendBye, SendCancel, StopTimers
from softswitch.calls.errors import LocalCallError
from softswitch.calls.leg import EVENTS, LEG_TABLE, STATES, LegState, LegStateError, step


@given(st.sampled_from(STATES), st.sampled_from(EVENTS))
def test_every_pair_follows_the_table_or_raises_a_local_error(state, event):
    if (state, event) in LEG_TABLE:
        assert step(state, event) == LEG_TABLE[(state, event)]
    else:
        with pytest.raises(LegStateError) as err:
            step(state, event)
        assert isinstance(err.value, LocalCallError)


def test_the_walk_covers_every_pair():
    moved = refused = 0
    for state, event in itertools.product(STATES, EVENTS):
        try:
            assert step(state, event) == LEG_TABLE[(state, event)]
            moved += 1
        except LegStateError:
            assert (state, event) not in LEG_TABLE
            refused += 1
    assert moved == len(LEG_TABLE) and moved + refused == len(STATES) * len(EVENTS)


@given(st.lists(st.sampled_from(EVENTS), max_size=12))
def test_any_event_sequence_stays_in_known_states_and_ended_is_final(events):
    leg = LegState("uac")
    seen_ended = False
    for ev in events:
        before = leg.state
        try:
            leg.fire(ev)
        except LegStateError:
            assert (before, ev) not in LEG_TABLE
            assert leg.state == before                    # a refused event changes nothing
            continue
        assert leg.state in STATES
        seen_ended = seen_ended or leg.state == "ended"
        if seen_ended:
            assert leg.state == "ended"


def test_the_table_names_only_known_states_and_events_and_every_state_can_end():
    for (state, event), new in LEG_TABLE.items():
        assert state in STATES and event in EVENTS and new in STATES
    for state in STATES:
        assert LEG_TABLE.get((state, "hangup")) == "ended"


def test_no_leg_goes_back_to_ringing_once_confirmed():
    assert ("confirmed", "provisional") not in LEG_TABLE
    assert ("confirmed", "invite") not in LEG_TABLE
    with pytest.raises(LegStateError):
        step("confirmed", "answer")


def test_hangup_sends_bye_when_confirmed_cancel_when_early_and_waits_while_calling():
    confirmed = LegState("uas")
    confirmed.fire("answer")
    assert flow.hangup(confirmed) == [StopTimers(confirmed), SendBye(confirmed)]
    early = LegState("uac")
    early.fire("invite")
    early.fire("provisional")
    assert flow.hangup(early) == [StopTimers(early), SendCancel(early)]
    calling = LegState("uac")
    calling.fire("invite")
    assert flow.hangup(calling) == [StopTimers(calling)]
    assert calling.cancel_pending and calling.cancelled and calling.state == "ended"
    # the first provisional response, 100 included, lets the waiting CANCEL go (RFC 3261 s. 9.1)
    assert flow.provisional(calling, 100) == [SendCancel(calling)]
    assert flow.provisional(calling, 180) == []
    assert flow.hangup(calling) == []                      # ended: nothing more to send
