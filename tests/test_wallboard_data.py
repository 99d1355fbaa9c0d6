"""What the wallboard says about agents and callers, as pure functions: reasons in words, caller numbers from
whatever a peer put in its From header."""

from __future__ import annotations

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
