"""Overload control on stream connections (TCP, TLS, WebSocket), pure: ages and a fake clock."""

from __future__ import annotations

from softswitch.security.overload import ADMIT, DROP, REJECT, OverloadOptions, OverloadPolicy
from softswitch.sip.parser import parse_message

from .storm import register


def policy(**kw) -> OverloadPolicy:
    return OverloadPolicy(OverloadOptions(**{"queue_delay": 0.2, "sustain": 0.5, **kw}), tag="T", server="ss")


def test_a_message_is_late_by_the_loops_lag_plus_what_it_waited_behind_the_others():
    p = policy()
    assert p.stream_late(0.0) is None and p.stream_late(0.19) is None
    p.note_loop_lag(0.15)
    assert p.stream_late(0.0) is None and p.stream_late(0.1) == 0.25


def test_streams_shed_new_work_with_503_once_late_for_sustain_serve_started_work_drop_given_up():
    p = policy()
    assert p.shed_stream("new", 0.3, 100.0) == ADMIT          # a short stall is served
    assert p.shed_stream("new", 0.3, 100.5) == REJECT         # late for 0.5 s: shedding
    assert p.shed_stream("continuing", 1.0, 100.6) == ADMIT   # started work, however late (no copy will come)
    assert p.shed_stream("continuing", 5.0, 100.6) == ADMIT
    assert p.shed_stream("new", 40.0, 100.7) == DROP          # its client has given up
    assert p.shed_stream("new", 0.3, 101.5) == ADMIT          # nothing late for > sustain: over
    assert p.stats == {"admitted_late": 4, "rejected": 1, "dropped": 0, "dropped_given_up": 1,
                       "dropped_retransmission": 0}


def test_a_websocket_frame_is_sorted_before_parsing_and_its_503_is_built_from_its_bytes():
    p = policy(sustain=0.0)
    verdict, reply = p.shed_stream_bytes(register(1, 1), 0.3, 5.0)
    r = parse_message(reply)
    assert verdict == REJECT and r.status == 503 and r.to.tag == "T" and r.call_id == "c1"
    assert 5 <= int(r.get("Retry-After")) <= 10 and r.get("Server") == "ss"
    assert p.shed_stream_bytes(register(1, 2), 0.3, 5.0) == (ADMIT, None)      # with credentials
    assert p.shed_stream_bytes(b"SIP/2.0 200 OK\r\n\r\n", 0.3, 5.0) == (ADMIT, None)
    assert p.shed_stream_bytes(b"\x00junk", 0.3, 5.0) == (ADMIT, None)          # the parser answers it
    ack = register(1, 1).replace(b"REGISTER sip", b"ACK sip").replace(b"1 REGISTER", b"1 ACK")
    assert p.shed_stream_bytes(ack, 0.3, 5.0) == (ADMIT, None)
    no_from = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/WS h;branch=z9hG4bK-1\r\nCall-ID: 1\r\n\r\n"
    assert p.shed_stream_bytes(no_from, 0.3, 5.0) == (ADMIT, None)     # no 503 possible: the parser's 400
    assert p.stats["rejected"] == 1
