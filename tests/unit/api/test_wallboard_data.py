"""What the wallboard says about agents and callers, as pure functions: reasons in words, caller numbers from
whatever a peer put in its From header."""

from __future__ import annotations

from acd import Acd, Agent, QueueSpec
from softswitch.api.wallboard_data import caller_of, reason_words


def test_internal_reasons_read_as_words():
    assert reason_words("idle", "set_idle") == "ready"
    assert reason_words("busy", "set_busy") == "not ready"
    assert reason_words("rest", "") == "on a break"
    assert reason_words("ringing", "call eAcxWf7mHe1-x@10.0.0.1") == "offered a call"
    assert reason_words("idle", "wrap-up over") == "ready after call work"
    assert reason_words("wrap_up", "wrap-up") == "after-call work"
    assert reason_words("talking", "answered") == "on a call"
    assert reason_words("busy", "no_answer") == "missed a call (no answer)"
    assert reason_words("offline", "softphone unregistered") == "phone not registered"
    assert reason_words("offline", "") == "not signed in"
    # an agent's own words stay, even ones that look like markers outside the state that uses them
    assert reason_words("busy", "lunch") == "lunch"
    assert reason_words("busy", "call back Mrs Smith") == "call back Mrs Smith"


def test_caller_number_and_name_from_a_from_header():
    assert caller_of('"Ann Lee" <sip:5550101@x.test>') == {"number": "5550101", "name": "Ann Lee"}
    assert caller_of("Bob <sip:+4930123@x.test;user=phone>") == {"number": "+4930123", "name": "Bob"}
    assert caller_of("<sips:anonymous@anonymous.invalid>") == {"number": "anonymous", "name": ""}
    assert caller_of("sip:5550100@x.test") == {"number": "5550100", "name": ""}
    assert caller_of("<tel:+15550100>") == {"number": "+15550100", "name": ""}
    assert caller_of('"A \\"quoted\\" name" <sip:1@x>') == {"number": "1", "name": 'A "quoted" name'}
    assert caller_of("") == {"number": "", "name": ""}
    assert caller_of("garbage without a uri") == {"number": "", "name": ""}


def test_hostile_from_values_are_cut_short_before_parsing():
    huge = '"' + "a" * 100_000 + '" <sip:' + "1" * 100_000 + "@x>"
    for value in (huge, " " * 100_000 + "<", "<" * 100_000, '"' * 100_000, "a " * 50_000 + "<sip:1@x>"):
        out = caller_of(value)
        assert len(out["number"]) <= 64 and len(out["name"]) <= 64


def test_queue_view_carries_the_goal_and_short_abandons_and_a_new_goal_applies_in_place():
    now = [1000.0]
    acd = Acd([QueueSpec("q", service_level=20, short_abandon=5, service_level_goal=0.9)],
              [Agent("a1", "70001", {"q": 0})], lambda: now[0])
    acd.registration("a1", True)
    acd.sign_in("a1")
    acd.set_state("a1", "rest", "")
    acd.enqueue("c1", "q")
    now[0] += 1
    acd.caller_gone("c1")
    v = acd.queue_view("q")
    assert (v["service_level_goal"], v["service_level_time"], v["short_abandon_time"]) == (0.9, 20, 5)
    assert (v["abandoned"], v["short_abandoned"], v["abandon_rate"]) == (1, 1, None)
    acd.set_queue(QueueSpec("q", service_level=30, short_abandon=0.5, service_level_goal=0.7))     # a reload
    acd.enqueue("c2", "q")
    now[0] += 1
    acd.caller_gone("c2")                       # 1 s is no longer short
    v = acd.queue_view("q")
    assert (v["service_level_goal"], v["service_level_time"]) == (0.7, 30)
    assert (v["abandoned"], v["short_abandoned"], v["abandon_rate"]) == (2, 1, 1.0)
