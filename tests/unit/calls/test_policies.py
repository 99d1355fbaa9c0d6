"""Small pure policies of the call core: outbound failures and the toll-fraud limit, admission, CDR rows,
callback digits, supervision, the offer's headers and answers to re-INVITEs."""

from __future__ import annotations

import pytest

from softswitch.calls import admission, callback, cdr, sessions, supervision
from softswitch.calls.call import Call, priority_of
from softswitch.calls.leg import LegState
from softswitch.calls.offer import agent_offer_headers
from softswitch.calls.outbound import OutboundLimit, failure_for_event, map_failure


def test_far_side_failures_are_mapped_for_the_agent():
    assert [map_failure(s) for s in (302, 401, 407, 408, 486, 603, 700)] == [480, 403, 403, 480, 486, 603, 480]
    assert (failure_for_event("timeout"), failure_for_event("error")) == (480, 503)


def test_outbound_limit_counts_a_sliding_minute_per_agent():
    limit = OutboundLimit()
    assert [limit.allow("a", t, 2) for t in (0.0, 1.0, 2.0)] == [True, True, False]
    assert limit.allow("b", 2.0, 2) is True                 # per agent
    assert limit.allow("a", 60.5, 2) is True                # the call at 0.0 left the window
    assert limit.allow("a", 60.6, 2) is False
    assert all(limit.allow("c", float(t), 0) for t in range(100))   # 0: no cap


def test_admission_draining_first_then_any_overload_measure():
    assert admission.admit(False, admission.Load()) is None
    r = admission.admit(True, admission.Load(loop_lag=5.0))
    assert (r.status, r.reason, r.retry_after, r.overloaded) == (503, "Shutting down", 30, False)
    for load in (admission.Load(calls=3, max_calls=3), admission.Load(busy=0.99), admission.Load(backlog=0.5),
                 admission.Load(resend_ratio=0.2), admission.Load(loop_lag=0.2)):
        r = admission.admit(False, load)
        assert (r.status, r.reason, r.retry_after, r.overloaded) == (503, "Overloaded", 5, True)
    assert admission.admit(False, admission.Load(calls=3, max_calls=0)) is None


def test_route_refusals():
    assert admission.route_refusal("auth", None, None, True) == (403, "Forbidden")
    assert admission.route_refusal("reject", 404, "No route", True) == (404, "No route")
    assert admission.route_refusal("reject", None, None, True) == (480, "No agents")
    assert admission.route_refusal("queue", None, None, False) == (480, "No agents")
    assert admission.route_refusal("queue", None, None, True) is None
    assert admission.route_refusal("outbound", None, None, False) is None


def _call(now=100.0, queue="sales"):
    leg = LegState("uas")
    call = Call("c1", leg, "100", now)
    call.queue = queue
    return call


def test_cdr_outcome_and_times_from_now():
    call = _call()
    assert cdr.outcome(call, "waiting", None) == "abandoned"
    assert cdr.outcome(call, "talking", "answered") == "answered"
    assert cdr.outcome(call, None, "overflowed") == "overflowed"
    assert cdr.outcome(call, None, None) == "abandoned"
    assert cdr.outcome(_call(queue=""), None, None) == "failed"
    agent = LegState("uac", call, "1001")
    call.agent_leg, call.answered_at = agent, 130.0
    row = cdr.cdr_row(call, node="n1", reason="agent bye", outcome="answered", now=190.0, caller="<sip:c@x>")
    assert row["agent_id"] == "1001" and row["wait_s"] == 30.0 and row["talk_s"] == 60.0
    assert row["started_at"] == 100.0 and row["ended_at"] == 190.0 and row["connected_at"] == 130.0
    call.outbound_to = LegState("uac", call)
    assert cdr.outcome(call, None, None) == "outbound"


def test_callback_digit_only_while_waiting_unoffered_once_with_media():
    call = _call()
    yes = dict(callback_digit="1", waiting_unoffered=True, anchored=True)
    assert callback.accepts(call, "1", **yes)
    assert not callback.accepts(call, "2", **yes)
    assert not callback.accepts(call, "1", **{**yes, "waiting_unoffered": False})
    assert not callback.accepts(call, "1", **{**yes, "anchored": False})
    assert not callback.accepts(call, "1", **{**yes, "callback_digit": None})
    call.callback = True
    assert not callback.accepts(call, "1", **yes)
    assert callback.customer_contact([], "sip:c@x") == "sip:c@x"


def test_priority_header():
    assert [priority_of(v) for v in ("Emergency", " urgent ", "normal", None)] == [2, 1, 0, 0]


def test_supervision_decisions_and_who_hears_whom():
    call = _call()
    with pytest.raises(supervision.SuperviseError) as err:
        supervision.decide("shout", anchored=True, call=call, has_binding=True)
    assert err.value.status == 400
    with pytest.raises(supervision.SuperviseError) as err:
        supervision.decide("listen", anchored=False, call=call, has_binding=True)
    assert err.value.status == 409
    with pytest.raises(supervision.SuperviseError) as err:
        supervision.decide("listen", anchored=True, call=call, has_binding=True)
    assert err.value.status == 404                       # no agent connected yet
    call.agent_leg = LegState("uac", call, "1001")
    call.agent_leg.stream = object()
    with pytest.raises(supervision.SuperviseError) as err:
        supervision.decide("listen", anchored=True, call=call, has_binding=False)
    assert err.value.status == 409
    assert supervision.decide("whisper", anchored=True, call=call, has_binding=True).action == "call"
    for mode, hears in supervision.HEARS.items():
        assert mode in supervision.MODES
        assert "supervisor" not in hears["customer"] or mode == "barge" or mode == "intercept"
    assert supervision.HEARS["whisper"]["agent"] == {"customer", "supervisor"}


def test_the_agent_offer_headers_in_one_place():
    h = agent_offer_headers(domain="cc.example", auto_answer_after=0.5, session_expires=1800,
                            path=["<sip:edge;lr>"], queue="sales")
    assert h == [("Call-Info", "<sip:cc.example>;answer-after=0.5"),
                 ("Alert-Info", "<http://localhost>;info=alert-autoanswer;delay=0.5"), ("Answer-Mode", "Auto"),
                 ("Session-Expires", "1800;refresher=uac"), ("Route", "<sip:edge;lr>"), ("X-CC-Queue", "sales")]


SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=%s\r\n")


def test_a_hold_reinvite_is_answered_with_the_direction_mirrored():
    ours = SDP % b"sendrecv"
    assert b"a=recvonly" in sessions.hold_answer(ours, SDP % b"sendonly", webrtc=False)
    assert b"a=inactive" in sessions.hold_answer(ours, SDP % b"inactive", webrtc=False)
    assert sessions.hold_answer(ours, b"", webrtc=False) == ours            # a refresh without SDP
    assert sessions.hold_answer(ours, b"garbage", webrtc=False) == ours     # unreadable: our session as is
    dtls = ours + b"a=setup:actpass\r\n"
    assert b"a=setup:passive" in sessions.hold_answer(dtls, SDP % b"sendrecv" + b"a=setup:active\r\n", True)


def test_dtmf_relay_digits():
    assert sessions.dtmf_relay_digit("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n") == "5"
    assert sessions.dtmf_relay_digit("application/dtmf", b"#") == "#"
    assert sessions.dtmf_relay_digit("text/plain", b"5") is None
    assert sessions.dtmf_relay_digit("application/dtmf-relay", b"Signal=11\r\n") == "#"
    assert sessions.dtmf_relay_digit("application/dtmf-relay", b"Signal=a\r\n") == "A"
    for hostile in (b"Signal=<\r\n", b"Signal=55\r\n", b"Signal=\r\n", b"Signal=5" + b"5" * 100000, b"\xff\xfe"):
        assert sessions.dtmf_relay_digit("application/dtmf-relay", hostile) is None
    assert sessions.dtmf_relay_digit("application/dtmf", b"x") is None


def test_admission_refusals_counted_per_cause_and_warned_at_most_every_few_seconds():
    refusals = admission.Refusals(every=5.0)
    load = admission.Load(loop_lag=0.3, backlog=0.4, calls=7)
    r = admission.admit(False, load)
    assert r.causes == ("loop_lag", "backlog")
    warn = refusals.count(r, load, 100.0)
    assert warn["refused"] == 1 and warn["causes"] == ["loop_lag", "backlog"] and warn["backlog_ms"] == 400.0
    assert refusals.count(r, load, 101.0) is None and refusals.count(r, load, 104.9) is None
    assert refusals.count(r, load, 105.0)["refused"] == 3          # the refusals since the last warning
    assert refusals.by_reason == {"max_calls": 0, "loop_lag": 4, "sip_busy": 0, "resend_ratio": 0, "backlog": 4}
    assert admission.admit(False, admission.Load(calls=3, max_calls=3, busy=0.99)).causes == ("max_calls", "sip_busy")
    assert admission.admit(True, load).causes == ()                 # draining: no overload to count


def _refused(watch: admission.Watch) -> tuple[str, ...]:
    return admission.causes(admission.Load(loop_lag=watch.loop_lag, busy=watch.busy,
                                           resend_ratio=watch.resend_ratio, backlog=watch.backlog))


def test_admission_watch_one_stall_does_not_refuse_a_second_of_overload_does():
    calm = dict(every=0.05, dt=0.05, busy=0.02, resent=0, created=10, worst_age=0.0)
    w = admission.Watch()
    for _ in range(40):
        w.tick(**calm)
    # one tick held the loop for 0.8 s (a GC pass, the process descheduled), and the datagrams that
    # queued meanwhile are shed for a few ticks while the node catches up: no call is refused
    w.tick(every=0.05, dt=0.85, busy=0.85, resent=2, created=10, worst_age=0.8)
    for age in (0.6, 0.4, 0.25):
        w.tick(**{**calm, "worst_age": age})
    assert _refused(w) == ()
    for _ in range(20):
        w.tick(**calm)
    assert _refused(w) == ()
    # twenty ticks in a row with the loop 0.2 s late and datagrams shed at 0.3 s old: past capacity
    for _ in range(20):
        w.tick(every=0.05, dt=0.25, busy=0.25, resent=0, created=10, worst_age=0.3)
    assert _refused(w) == ("loop_lag", "backlog")
    # and a few ticks after the node keeps up again, calls are taken again
    for _ in range(4):
        w.tick(**calm)
    assert _refused(w) == ()


def test_admission_watch_counts_peers_resends_per_new_transaction():
    w = admission.Watch()
    for _ in range(30):
        w.tick(every=0.05, dt=0.05, busy=0.0, resent=5, created=10, worst_age=0.0)
    assert _refused(w) == ("resend_ratio",)
    w2 = admission.Watch()
    w2.tick(every=0.05, dt=0.0, busy=0.0, resent=0, created=0, worst_age=0.0)     # no time passed: no share
    assert (w2.busy, w2.resend_ratio) == (0.0, 0.0)
