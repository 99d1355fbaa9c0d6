"""Answers kept for retransmissions of requests served without a transaction object (REGISTER)."""

from __future__ import annotations

from softswitch.sip.answers import Answers

KEY = ("z9hG4bK-1", "127.0.0.1", 5060, "REGISTER")


def test_pending_absorbs_then_the_answer_is_kept_for_timer_j():
    a = Answers(hold=32.0)
    assert a.get(KEY) is None
    a.pending(KEY, "target")
    assert a.get(KEY)[1] is None and a.is_pending(KEY)     # a retransmission now is absorbed
    assert a.done(KEY, b"SIP/2.0 200 OK", 10.0, reliable=False)
    assert a.get(KEY)[1:] == [b"SIP/2.0 200 OK", "target"] and not a.is_pending(KEY)
    assert not a.done(KEY, b"SIP/2.0 500 Server Error", 11.0, reliable=False)     # one final answer only
    a.expire(41.9)
    assert a.get(KEY)[1] == b"SIP/2.0 200 OK"
    a.expire(42.0)
    assert a.get(KEY) is None and len(a) == 0


def test_reliable_answer_is_not_kept_and_pending_never_expires():
    a = Answers(hold=32.0)
    a.pending(KEY, "conn")
    a.pending(KEY[:3] + ("OPTIONS",), "other")
    a.expire(1e9)                       # a request still being handled stays (a transaction in Trying has no timer)
    assert a.is_pending(KEY)
    assert a.done(KEY, b"answer", 5.0, reliable=True)
    assert a.get(KEY) is None and len(a) == 1


def test_expiry_follows_the_order_answers_were_given():
    a = Answers(hold=2.0)
    keys = [("b", "h", i, "REGISTER") for i in range(5)]
    for i, k in enumerate(keys):
        a.pending(k, None)
    for i, k in enumerate(reversed(keys)):     # answered in another order than they came
        a.done(k, b"x", float(i), reliable=False)
    a.expire(3.5)                              # deadlines 2, 3, 4, 5, 6: two are due
    assert [k for k in keys if a.get(k) is not None] == keys[:3]
