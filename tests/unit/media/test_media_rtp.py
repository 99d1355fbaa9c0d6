"""RTP/RTCP parsing and building, sequence extension and jitter (RFC 3550)."""

import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from media.rtp import (Bye, ReceiverReport, ReportBlock, RtcpOther, RtpError, RtpPacket, SenderReport,
                       SeqTracker, build_packet, build_rtcp, build_rtp, is_rtcp, parse_rtcp, parse_rtp,
                       seq_diff, ts_diff)

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)

packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    seq=u16,
    timestamp=u32,
    ssrc=u32,
    marker=st.booleans(),
    payload=st.binary(max_size=200),
    csrc=st.lists(u32, max_size=15),
    extension=st.none() | st.tuples(u16, st.binary(max_size=40).map(lambda b: b[: len(b) - len(b) % 4])),
)


@given(packets, st.integers(0, 255))
def test_build_parse_round_trip(p, padding):
    data = build_packet(p, padding=padding)
    assert len(data) == 12 + 4 * len(p.csrc) + (4 + len(p.extension[1]) if p.extension else 0) \
        + len(p.payload) + padding
    assert parse_rtp(data) == p
    assert not is_rtcp(data) or p.payload_type >= 64  # PT 64-95 with marker collides, as RFC 5761 warns


@given(st.binary(max_size=80))
def test_garbage_parses_or_raises_rtp_error(data):
    try:
        p = parse_rtp(data)
    except RtpError:
        return
    assert data[0] >> 6 == 2 and len(data) >= 12
    assert len(p.payload) <= len(data) - 12


@given(st.binary(max_size=120))
def test_rtcp_garbage_parses_or_raises_rtp_error(data):
    try:
        parse_rtcp(data)
    except RtpError:
        pass


def test_header_fields_on_the_wire():
    data = build_rtp(8, 0x1234, 0xDEADBEEF, 0xCAFEBABE, b"\xd5" * 160, marker=True)
    assert data[:12] == bytes.fromhex("8088 1234 deadbeef cafebabe".replace(" ", ""))
    p = parse_rtp(data)
    assert (p.payload_type, p.seq, p.timestamp, p.ssrc, p.marker) == (8, 0x1234, 0xDEADBEEF, 0xCAFEBABE, True)


def test_parse_rejects_malformed():
    good = build_rtp(0, 1, 2, 3, b"abcd")
    with pytest.raises(RtpError, match="version"):
        parse_rtp(bytes([0x40]) + good[1:])
    with pytest.raises(RtpError, match="12-byte"):
        parse_rtp(good[:11])
    with pytest.raises(RtpError, match="CSRC"):
        parse_rtp(bytes([0x83]) + good[1:])          # claims 3 CSRCs, only 4 bytes follow
    with pytest.raises(RtpError, match="padding"):
        parse_rtp(bytes([0xA0]) + good[1:-1] + b"\x00")  # padding count 0
    with pytest.raises(RtpError, match="padding"):
        parse_rtp(bytes([0xA0]) + good[1:-1] + b"\x09")  # more padding than payload
    with pytest.raises(RtpError, match="extension"):
        parse_rtp(bytes([0x90]) + good[1:12] + struct.pack("!HH", 0xBEDE, 5) + b"xxxx")
    with pytest.raises(RtpError, match="extension"):
        parse_rtp(bytes([0x90]) + good[1:12] + b"\xbe")


def test_padding_and_extension_are_stripped():
    data = build_rtp(0, 1, 2, 3, b"pay", extension=(0xBEDE, b"\x10\xff\x00\x00"), padding=5)
    p = parse_rtp(data)
    assert p.payload == b"pay" and p.extension == (0xBEDE, b"\x10\xff\x00\x00")
    assert data[-1] == 5


def test_seq_and_ts_diff_wrap():
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(5, 5) == 0
    assert seq_diff(32767, 0) == 32767 and seq_diff(32768, 0) == -32768
    assert ts_diff(0, 0xFFFFFFFF) == 1
    assert ts_diff(160, 0xFFFFFF60) == 320
    assert ts_diff(0xFFFFFF60, 160) == -320


@given(u16, st.integers(-32768, 32767))
def test_seq_diff_inverse(a, d):
    assert seq_diff((a + d) & 0xFFFF, a) == d


def test_tracker_extends_across_wrap():
    t = SeqTracker(probation=0)
    for s in range(65530, 65536):
        assert t.update(s)
    for s in range(0, 10):
        assert t.update(s)
    assert t.cycles == 65536
    assert t.extended_max == 65536 + 9
    assert t.expected == 16 == t.received
    assert t.lost == 0


def test_tracker_counts_loss_and_duplicates():
    t = SeqTracker(probation=0)
    for s in [100, 101, 103, 104, 107, 106, 106]:   # lose 102 and 105, reorder 106/107, duplicate 106
        t.update(s)
    assert t.expected == 8
    assert t.received == 7
    assert t.lost == 1
    frac, cum = t.interval_report()
    assert (frac, cum) == ((1 << 8) // 8, 1)
    for s in [108, 110]:
        t.update(s)
    frac, cum = t.interval_report()
    assert frac == (1 << 8) // 3 and cum == 2


def test_tracker_probation_and_restart():
    t = SeqTracker()                    # RFC default: MIN_SEQUENTIAL = 2
    assert not t.update(500)
    assert t.update(501)
    assert t.expected == 1 and t.received == 1
    assert not t.update(20000)          # a big jump is held until confirmed
    assert t.received == 1
    assert t.update(20001)              # confirmed: the sender restarted, statistics reset
    assert t.base_seq == 20001 and t.received == 1 and t.expected == 1
    assert t.update(20001 - 50)         # a late packet within MAX_MISORDER is counted, not a restart
    assert t.extended_max == 20001


def test_tracker_jitter():
    t = SeqTracker(probation=0)
    # Perfectly paced packets: zero jitter, including across a timestamp wrap.
    ts0 = 0xFFFFFFFF - 400
    for i in range(10):
        t.update(i, (ts0 + 160 * i) & 0xFFFFFFFF, 1000.0 + 160 * i)
    assert t.jitter == 0
    # One packet 80 units late then back on time: J goes 80/16, then 80/16 + (80 - 5)/16.
    t.update(10, (ts0 + 1600) & 0xFFFFFFFF, 1000.0 + 1600 + 80)
    assert t.jitter == pytest.approx(5.0)
    t.update(11, (ts0 + 1760) & 0xFFFFFFFF, 1000.0 + 1760)
    assert t.jitter == pytest.approx(5.0 + (80 - 5.0) / 16)
    assert t.report_block(7).jitter == int(t.jitter)


def test_is_rtcp():
    assert is_rtcp(build_rtcp(ReceiverReport(1)))
    assert is_rtcp(build_rtcp(Bye([1])))
    assert not is_rtcp(build_rtp(0, 1, 2, 3, b"x"))
    assert not is_rtcp(build_rtp(8, 1, 2, 3, b"x", marker=True))
    assert not is_rtcp(b"\x80")
    assert not is_rtcp(b"\x00\xc8")


blocks = st.builds(ReportBlock, u32, st.integers(0, 255), st.integers(-0x800000, 0x7FFFFF), u32, u32, u32, u32)


@given(u32, st.integers(0, 2**64 - 1), u32, u32, u32, st.lists(blocks, max_size=5), st.lists(blocks, max_size=5),
       st.lists(u32, min_size=1, max_size=5), st.text(max_size=30))
@settings(max_examples=60)
def test_rtcp_round_trip(ssrc, ntp, ts, pk, oc, rb1, rb2, byes, reason):
    items = [SenderReport(ssrc, ntp, ts, pk, oc, rb1), ReceiverReport(ssrc, rb2), Bye(byes, reason)]
    data = build_rtcp(*items)
    assert len(data) % 4 == 0
    parsed = parse_rtcp(data)
    reason_bytes = reason.encode()[:255]
    items[2].reason = reason_bytes.decode("utf-8", "replace")
    assert parsed == items


def test_rtcp_wire_format_and_unknown_types():
    rr = build_rtcp(ReceiverReport(0x11223344, [ReportBlock(5, 64, -1, 70000, 12, 0, 0)]))
    assert rr[:8] == bytes.fromhex("81c90007 11223344".replace(" ", ""))
    assert rr[12:16] == bytes.fromhex("40ffffff")          # fraction 64, cumulative lost -1 in 24 bits
    sdes = struct.pack("!BBHI", 0x81, 202, 2, 9) + b"\x01\x00\x00\x00"
    parsed = parse_rtcp(rr + sdes)
    assert parsed[1] == RtcpOther(202, 1, struct.pack("!I", 9) + b"\x01\x00\x00\x00")
    with pytest.raises(RtpError):
        parse_rtcp(rr[:-4])                                 # length says more than is there
    with pytest.raises(RtpError):
        parse_rtcp(struct.pack("!BBH", 0x81, 200, 1) + b"\x00" * 4)   # SR claims a block it lacks


class _SlowTracker(SeqTracker):
    """The tracker with its in-order shortcut switched off: only the general RFC 3550 A.1 branches."""

    __slots__ = ()

    def update(self, seq, timestamp=None, arrival=None):
        return self._update(seq, timestamp, arrival)


_steps = st.lists(st.one_of(
    st.tuples(st.just("run"), st.integers(1, 40)),          # packets in order
    st.tuples(st.just("gap"), st.integers(1, 200)),         # loss
    st.tuples(st.just("back"), st.integers(1, 150)),        # reordered / duplicate
    st.tuples(st.just("jump"), st.integers(3000, 65000)),   # restart-like jump
), max_size=40)


@settings(max_examples=200, deadline=None)
@given(start=st.one_of(st.integers(0xFFC0, 0xFFFF), st.integers(0, 0xFFFF)), ts0=st.integers(0, 0xFFFFFFFF),
       steps=_steps, jitter=st.lists(st.floats(-80, 80), min_size=1, max_size=16))
@example(start=0xFFF0, ts0=0xFFFFFF00, steps=[("run", 40), ("gap", 5), ("back", 3), ("run", 30)], jitter=[0.0, 7.5])
def test_tracker_shortcut_matches_the_general_algorithm(start, ts0, steps, jitter):
    fast, slow = SeqTracker(), _SlowTracker()
    seq, ts, t, k = start, ts0, 0.0, 0
    for kind, n in steps:
        count = n if kind == "run" else 1
        if kind == "gap":
            seq, ts = (seq + n) & 0xFFFF, (ts + 160 * n) & 0xFFFFFFFF
        elif kind == "back":
            seq, ts = (seq - n) & 0xFFFF, (ts - 160 * n) & 0xFFFFFFFF
        elif kind == "jump":
            seq = (seq + n) & 0xFFFF
        for _ in range(count):
            t += 160 + jitter[k % len(jitter)]
            k += 1
            assert fast.update(seq, ts, t) == slow.update(seq, ts, t)
            seq, ts = (seq + 1) & 0xFFFF, (ts + 160) & 0xFFFFFFFF
    for name in SeqTracker.__slots__:
        if name != "_next":
            assert getattr(fast, name) == pytest.approx(getattr(slow, name)), name
    assert fast.lost == slow.lost and fast.extended_max == slow.extended_max
