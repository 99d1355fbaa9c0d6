"""RFC 4733 telephone-event payloads, sender and receiver."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.dtmf import (DtmfError, DtmfReceiver, ToneEvent, build_event, event_code, event_digit, parse_event,
                        tone_packets)


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_event_round_trip(ev, end, vol, dur):
    e = ToneEvent(ev, end, vol, dur)
    data = build_event(e)
    assert len(data) == 4
    assert parse_event(data) == e


def test_wire_format():
    # Digit 5, end bit, volume 10, duration 800: 05 8a 03 20.
    assert build_event(ToneEvent(5, True, 10, 800)) == bytes.fromhex("058a0320")
    e = parse_event(bytes.fromhex("0b4a0140"))        # R bit set: ignored
    assert (e.digit, e.end, e.volume, e.duration) == ("#", False, 10, 320)
    with pytest.raises(DtmfError):
        parse_event(b"\x01\x02\x03")
    with pytest.raises(ValueError):
        build_event(ToneEvent(1, False, 64, 0))


def test_digit_codes():
    assert [event_code(d) for d in "0123456789*#ABCD"] == list(range(16))
    assert event_code("a") == 12 and event_code("!") == 16 and event_digit(16) == "!"
    with pytest.raises(ValueError):
        event_code("x")


def test_sender_sequence():
    pk = tone_packets("7", 1000, duration=800)
    events = [parse_event(p.payload) for p in pk]
    assert [p.marker for p in pk] == [True, False, False, False, False, False, False]
    assert {p.timestamp for p in pk} == {1000}
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.event for e in events} == {7}
    short = tone_packets("1", 5, duration=100)      # shorter than a packet interval: only end packets
    assert [p.marker for p in short] == [True, False, False]
    assert all(parse_event(p.payload).end for p in short)
    with pytest.raises(ValueError):
        tone_packets("1", 0, duration=70000)


def feed_all(rx, packets):
    return [d for d in (rx.feed(p.timestamp, p.payload, p.marker) for p in packets) if d]


def test_receiver_one_digit_per_event_including_repeated_digits():
    pk, ts = [], 0
    for d in "1233#":
        pk += tone_packets(d, ts, 640)
        ts += 640 + 480                      # inter-digit gap
    rx = DtmfReceiver()
    assert feed_all(rx, pk) == list("1233#")
    assert rx.duration == 640


def test_receiver_survives_loss_of_start_and_reordering():
    a = tone_packets("4", 8000, 800)
    b = tone_packets("4", 9600, 800)
    # First digit: all but the end packets lost. Second: updates reordered; a straggler from the first.
    stream = a[4:] + [b[1], b[0], a[-1]] + b[2:]
    assert feed_all(DtmfReceiver(), stream) == ["4", "4"]


def test_receiver_timestamp_wrap():
    pk = tone_packets("9", 0xFFFFFF00, 800) + tone_packets("0", 0x00000400, 800)
    assert feed_all(DtmfReceiver(), pk) == ["9", "0"]


def test_receiver_long_event_segments_are_one_digit():
    # 2.5.1.3: a long event continues under a new timestamp without the marker bit.
    seg1 = [tone_packets("5", 0, 0xFFFF)[i] for i in range(3)]
    seg2 = tone_packets("5", 0xFFFF, 1600)
    seg2 = [type(p)(False, p.timestamp, p.payload) for p in seg2]
    assert feed_all(DtmfReceiver(), seg1 + seg2) == ["5"]


def test_receiver_end_is_sticky_against_reordered_updates():
    # An update overtaken by the end packets must not reopen the event: otherwise the same digit pressed
    # again, with its marker packet lost, would be taken for a long-event continuation and missed.
    a = tone_packets("4", 0, 800)
    b = tone_packets("4", 1600, 800)
    stream = a[:2] + a[4:] + [a[2]] + b[1:]
    assert feed_all(DtmfReceiver(), stream) == ["4", "4"]
