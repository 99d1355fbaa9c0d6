"""The SDP answer's telephone-event events: those the phone offered that the node supports (RFC 4733 s. 2.4.1)."""

from __future__ import annotations

import pytest

from softswitch.sip.sdp import answer_events, build_sdp


@pytest.mark.parametrize("offered, answered", [
    ("0-15", "0-15"), ("0-16", "0-16"), (None, "0-15"),            # no fmtp in the offer means 0-15
    ("0-11,16", "0-11,16"), ("0-255", "0-16"), ("1,2,3,5", "1-3,5"), (" 0-15 ", "0-15"), ("16", "16"),
    ("32-40", None), ("x", None), ("", None), ("0-99999", None), ("5-2", None),
])
def test_the_answer_keeps_the_offered_events_we_support(offered, answered):
    assert answer_events(offered) == answered


def test_build_sdp_writes_the_answered_events():
    sdp = build_sdp("127.0.0.1", 1, 1, [(40000, 101, "sendrecv", 0)], events="0-15").decode()
    assert "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n" in sdp
    assert "0-16" not in sdp


def test_a_long_hostile_fmtp_is_cheap():
    assert answer_events(",".join(["0-999"] * 100_000)) == "0-16"      # only the first items are read
