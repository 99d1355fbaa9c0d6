"""Stream framing gives the same messages however the bytes are split."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from softswitch.sip.errors import SipError
from softswitch.sip.framing import Keepalive, StreamFramer
from tests.support.sipclient import options_request

MSGS = [options_request(5060, call_id=f"c{i}", branch=f"z9hG4bK{i}") for i in range(3)]
INVITE = (b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKi\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\n"
          b"Call-ID: inv\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 10\r\n\r\n\x00\r\n\r\nabcde")
STREAM = MSGS[0] + b"\r\n\r\n" + INVITE + MSGS[1] + MSGS[2]


def feed(chunks):
    f = StreamFramer()
    out = []
    for c in chunks:
        out.extend(f.feed(c))
    return out, f


def summary(items):
    return [("ka",) if isinstance(i, Keepalive) else (i.call_id, i.body) for i in items]


EXPECTED = [("c0", b""), ("ka",), ("inv", b"\x00\r\n\r\nabcde"), ("c1", b""), ("c2", b"")]


def test_whole_one_and_seven_byte_writes():
    for size in (1, 7, len(STREAM)):
        out, f = feed([STREAM[i:i + size] for i in range(0, len(STREAM), size)])
        assert summary(out) == EXPECTED, size
        assert f.pending == 0


@settings(max_examples=200)
@given(st.lists(st.integers(1, 200), min_size=1, max_size=40))
def test_any_split(cuts):
    chunks, i = [], 0
    for c in cuts:
        chunks.append(STREAM[i:i + c])
        i += c
    chunks.append(STREAM[i:])
    out, _ = feed(chunks)
    assert summary(out) == EXPECTED


def test_bad_content_length_closes_the_stream():
    out, f = feed([MSGS[0].replace(b"Content-Length: 0", b"Content-Length: five") + MSGS[1]])
    assert len(out) == 1 and isinstance(out[0], SipError) and out[0].fatal_stream and f.closed
    assert f.feed(MSGS[2]) == []


def test_oversize_is_refused():
    f = StreamFramer(max_message=1000)
    out = f.feed(MSGS[0].replace(b"Content-Length: 0", b"Content-Length: 5000"))
    assert isinstance(out[0], SipError) and out[0].status == 513 and f.closed
    g = StreamFramer(max_message=1000)
    out = g.feed(b"OPTIONS sip:a@b SIP/2.0\r\nX-Long: " + b"a" * 2000)
    assert isinstance(out[0], SipError) and out[0].status == 513


def test_partial_message_waits():
    out, f = feed([MSGS[0][:-10]])
    assert out == [] and f.pending > 0
    assert summary(f.feed(MSGS[0][-10:])) == [("c0", b"")]


def test_bad_message_with_good_framing_keeps_stream_open():
    bad = MSGS[0].replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    out, f = feed([bad + MSGS[1]])
    assert isinstance(out[0], SipError) and out[0].status == 400 and not f.closed
    assert out[1].call_id == "c1"
