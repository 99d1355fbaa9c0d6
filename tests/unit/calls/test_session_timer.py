"""RFC 4028 decisions: the interval, 422 below Min-SE, who refreshes, and when a refresh or expiry is due."""

from __future__ import annotations

import pytest

from softswitch.calls import flow, session_timer as st
from softswitch.calls.effects import ArmSessionTimer, LegFailed, SendRefresh
from softswitch.calls.leg import LegState
from softswitch.sip.errors import SipError


def test_the_smaller_interval_wins_and_a_timer_capable_peer_refreshes():
    t = st.negotiate("600", ["timer"], 1800)
    assert (t.interval, t.we_refresh) == (600, False)
    assert t.headers == (("Session-Expires", "600;refresher=uac"), ("Require", "timer"))
    t = st.negotiate("3600", [], 1800)
    assert (t.interval, t.we_refresh, t.headers) == (1800, True, (("Session-Expires", "1800;refresher=uas"),))


def test_refresher_uas_makes_us_refresh():
    t = st.negotiate("900;refresher=uas", ["100rel, timer"], 1800)
    assert (t.interval, t.we_refresh) == (900, True)
    assert t.headers == (("Session-Expires", "900;refresher=uas"),)


def test_below_min_se_is_a_422_and_garbage_counts_as_absent():
    assert st.negotiate("30", ["timer"], 1800) is None
    assert st.min_se_headers() == [("Min-SE", "90")]
    assert st.negotiate("soon", [], 1800).interval == 1800
    with pytest.raises(SipError) as err:
        st.negotiate("600;=bad", [], 1800)
    assert err.value.status == 400


def test_the_answer_to_our_invite_sets_interval_and_refresher():
    assert st.interval_of("300;refresher=uas", 1800) == 300
    assert st.interval_of(None, 1800) == 1800 and st.interval_of("x", 1800) == 1800
    assert st.we_refresh_as_uac("300;refresher=uas") is False
    assert st.we_refresh_as_uac("300;refresher=uac") is True and st.we_refresh_as_uac(None) is True


def test_deadlines_half_the_interval_when_we_refresh_else_before_expiry():
    assert st.due_in(1800, True) == 900
    assert st.due_in(1800, False) == 1800 - 32
    assert st.due_in(90, False) == 60
    assert st.due_in(0, True) is None


def test_due_refreshes_or_expires_by_who_refreshes():
    leg = LegState("uas")
    leg.fire("answer")
    assert flow.start_session(leg, 600, True) == [ArmSessionTimer(leg, 300)]
    out = flow.session_due(leg)
    assert out[0] == SendRefresh(leg, (("Session-Expires", "600;refresher=uac"), ("Supported", "timer")))
    assert out[1] == ArmSessionTimer(leg, 300)
    flow.start_session(leg, 600, False)
    assert flow.session_due(leg)[-1] == LegFailed(leg, "session timer expired")
    leg.fire("hangup")
    assert flow.session_due(leg) == []                # a leg already over has nothing due


def test_update_answer_keeps_the_peer_refreshing():
    assert st.update_answer_headers("600;refresher=uas") == [("Session-Expires", "600;refresher=uac"),
                                                             ("Require", "timer")]
    assert st.update_answer_headers(None) == []


def test_our_2xx_is_resent_t1_doubling_to_t2_until_64_t1_then_the_leg_is_given_up():
    from softswitch.calls import ack
    wait, delay = ack.start(100.0, reliable=False)
    now, sends = 100.0, []
    while True:
        now += delay
        what, delay = ack.due(wait, now)
        if what == "give_up":
            break
        assert what == "resend"
        sends.append(delay)
    assert sends[:4] == [1.0, 2.0, 4.0, 4.0] and set(sends[3:]) == {4.0}
    assert 132.0 <= now < 132.0 + 4.0                      # the first check at or past 64*T1 after the 2xx
    wait, delay = ack.start(100.0, reliable=True)
    assert delay == 32.0 and ack.due(wait, 100.0 + delay) == ("give_up", None)
    assert ack.due(wait, 110.0) == ("wait", 0.5)           # nothing re-sent over TCP/TLS/WS
