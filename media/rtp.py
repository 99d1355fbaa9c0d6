"""RFC 3550 RTP/RTCP packets, sequence extension and jitter statistics (pure, no I/O)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .errors import LocalProtocolError, RemoteProtocolError

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2

RTCP_SR, RTCP_RR, RTCP_SDES, RTCP_BYE, RTCP_APP = 200, 201, 202, 203, 204


class RtpError(RemoteProtocolError):
    """A malformed RTP or RTCP packet."""


@dataclass
class RtpPacket:
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    marker: bool = False
    payload: bytes = b""
    csrc: list[int] = field(default_factory=list)
    # (profile, data) of the header extension; data length is a multiple of 4.
    extension: tuple[int, bytes] | None = None


_HDR = struct.Struct("!BBHII")


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP packet; padding is removed, CSRCs and extension are returned."""
    n = len(data)
    if n < 12:
        raise RtpError("shorter than the 12-byte RTP header")
    b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
    if b0 >> 6 != 2:
        raise RtpError(f"RTP version {b0 >> 6}, expected 2")
    cc = b0 & 0x0F
    off = 12 + 4 * cc
    if off > n:
        raise RtpError("CSRC count runs past the packet")
    csrc = list(struct.unpack_from(f"!{cc}I", data, 12))
    ext = None
    if b0 & 0x10:
        # 5.3.1: 16-bit profile word, then the length in 32-bit words not counting this 4-byte header.
        if off + 4 > n:
            raise RtpError("extension header runs past the packet")
        profile, words = struct.unpack_from("!HH", data, off)
        end = off + 4 + 4 * words
        if end > n:
            raise RtpError("extension length runs past the packet")
        ext = (profile, bytes(data[off + 4:end]))
        off = end
    end = n
    if b0 & 0x20:
        # 5.1: the last octet of the padding counts the padding octets to ignore, including itself.
        pad = data[-1]
        if pad == 0 or off + pad > n:
            raise RtpError(f"bad padding count {pad}")
        end = n - pad
    return RtpPacket(b1 & 0x7F, seq, ts, ssrc, bool(b1 & 0x80), bytes(data[off:end]), csrc, ext)


def build_rtp(payload_type: int, seq: int, timestamp: int, ssrc: int, payload: bytes = b"", *,
              marker: bool = False, csrc: list[int] | tuple[int, ...] = (),
              extension: tuple[int, bytes] | None = None, padding: int = 0) -> bytes:
    """Serialize an RTP packet; `padding` adds that many padding octets (0 or 1..255)."""
    if not 0 <= payload_type <= 127:
        raise LocalProtocolError("payload type must be 0..127")
    if len(csrc) > 15:
        raise LocalProtocolError("at most 15 CSRCs")
    if not 0 <= padding <= 255:
        raise LocalProtocolError("padding must be 0..255")
    b0 = 0x80 | len(csrc) | (0x20 if padding else 0) | (0x10 if extension is not None else 0)
    parts = [_HDR.pack(b0, payload_type | (0x80 if marker else 0), seq & 0xFFFF, timestamp & 0xFFFFFFFF,
                       ssrc & 0xFFFFFFFF)]
    if csrc:
        parts.append(struct.pack(f"!{len(csrc)}I", *csrc))
    if extension is not None:
        profile, ext = extension
        if len(ext) % 4:
            raise LocalProtocolError("extension data must be a multiple of 4 bytes")
        parts.append(struct.pack("!HH", profile, len(ext) // 4) + ext)
    parts.append(bytes(payload))
    if padding:
        parts.append(bytes(padding - 1) + bytes([padding]))
    return b"".join(parts)


def build_packet(p: RtpPacket, padding: int = 0) -> bytes:
    """Serialize an RtpPacket."""
    return build_rtp(p.payload_type, p.seq, p.timestamp, p.ssrc, p.payload, marker=p.marker, csrc=p.csrc,
                     extension=p.extension, padding=padding)


def seq_diff(a: int, b: int) -> int:
    """a - b for 16-bit sequence numbers, in [-32768, 32767]."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def ts_diff(a: int, b: int) -> int:
    """a - b for 32-bit RTP timestamps, in [-2**31, 2**31 - 1]."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 4: on a shared port, second octet 192..223 (RTCP PT 200-204 and feedback) means RTCP."""
    return len(data) >= 2 and data[0] >> 6 == 2 and 192 <= data[1] <= 223


class SeqTracker:
    """RFC 3550 A.1 sequence validation/extension with A.3 loss counts and A.8 interarrival jitter."""

    __slots__ = ("probation_needed", "started", "probation", "max_seq", "cycles", "base_seq", "bad_seq",
                 "received", "expected_prior", "received_prior", "jitter", "_next", "_last_arrival", "_last_ts")

    def __init__(self, probation: int = MIN_SEQUENTIAL) -> None:
        self.probation_needed = probation
        self.started = False
        self.probation = 0
        self.max_seq = 0
        self.cycles = 0
        self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0           # in timestamp units
        self._next = -1             # the in-order successor once the source is valid (fast path), else -1
        self._last_arrival: float | None = None     # arrival and timestamp of the previous packet
        self._last_ts = 0

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def update(self, seq: int, timestamp: int | None = None, arrival: float | None = None) -> bool:
        """Account one packet; False when it is rejected (probation, or a jump awaiting confirmation).

        `arrival` is the receive time in RTP timestamp units, supplied by the caller's clock.
        """
        if seq == self._next:
            # The common case, kept cheap because it runs for every packet of every call: the next
            # packet in order from a validated source (the general branches below give the same result).
            self._next = (seq + 1) & 0xFFFF
            if seq == 0:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
            self.received += 1
            if arrival is not None and timestamp is not None:
                last = self._last_arrival
                if last is not None:
                    dt = (timestamp - self._last_ts) & 0xFFFFFFFF
                    if dt >= 0x80000000:
                        dt -= 0x100000000
                    d = arrival - last - dt
                    self.jitter += ((d if d >= 0 else -d) - self.jitter) / 16.0
                self._last_arrival = arrival
                self._last_ts = timestamp
            return True
        ok = self._update(seq, timestamp, arrival)
        self._next = (self.max_seq + 1) & 0xFFFF if self.started and not self.probation else -1
        return ok

    def _update(self, seq: int, timestamp: int | None, arrival: float | None) -> bool:
        if not self.started:
            self.started = True
            self._init_seq(seq)
            self.max_seq = (seq - 1) & 0xFFFF
            self.probation = self.probation_needed
            if not self.probation:
                self.max_seq = seq
                self.received = 1
                self._jitter(timestamp, arrival)
                return True
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            # A source is valid only after MIN_SEQUENTIAL packets in sequence.
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    self._jitter(timestamp, arrival)
                    return True
            else:
                self.probation = self.probation_needed - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            # In order, with a permissible gap; a smaller number means the 16-bit counter wrapped.
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            # A very large jump: accept it only if the next packet confirms (the sender restarted).
            if seq == self.bad_seq:
                self._init_seq(seq)
                self._last_arrival = None
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: duplicate or reordered packet, counted as received.
        self.received += 1
        self._jitter(timestamp, arrival)
        return True

    def _jitter(self, timestamp: int | None, arrival: float | None) -> None:
        if timestamp is None or arrival is None:
            return
        if self._last_arrival is not None:
            # A.8: D(i-1,i) = (Rj - Ri) - (Sj - Si); J += (|D| - J)/16. ts_diff survives timestamp wrap.
            d = abs((arrival - self._last_arrival) - ts_diff(timestamp, self._last_ts))
            self.jitter += (d - self.jitter) / 16.0
        self._last_arrival = arrival
        self._last_ts = timestamp

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self.started and not self.probation else 0

    @property
    def lost(self) -> int:
        """A.3 cumulative lost; negative when duplicates arrived."""
        return self.expected - self.received

    def interval_report(self) -> tuple[int, int]:
        """A.3: (fraction lost in 1/256 since the last call, cumulative lost clamped to 24-bit signed)."""
        expected = self.expected
        exp_int = expected - self.expected_prior
        rec_int = self.received - self.received_prior
        self.expected_prior, self.received_prior = expected, self.received
        lost_int = exp_int - rec_int
        fraction = 0 if exp_int == 0 or lost_int <= 0 else min(255, (lost_int << 8) // exp_int)
        return fraction, max(-0x800000, min(0x7FFFFF, self.lost))

    def report_block(self, ssrc: int, lsr: int = 0, dlsr: int = 0) -> ReportBlock:
        fraction, lost = self.interval_report()
        return ReportBlock(ssrc, fraction, lost, self.extended_max & 0xFFFFFFFF, int(self.jitter), lsr, dlsr)


# --- RTCP (6.4 SR/RR, 6.6 BYE), enough for keepalive and statistics --------------------------------------

@dataclass
class ReportBlock:
    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_seq: int
    jitter: int
    lsr: int = 0
    dlsr: int = 0

    def pack(self) -> bytes:
        return struct.pack("!IBBHIIII", self.ssrc, self.fraction_lost, (self.cumulative_lost >> 16) & 0xFF,
                           self.cumulative_lost & 0xFFFF, self.highest_seq, self.jitter, self.lsr, self.dlsr)

    @classmethod
    def unpack(cls, data: bytes, off: int) -> ReportBlock:
        ssrc, frac, hi, lo, hseq, jit, lsr, dlsr = struct.unpack_from("!IBBHIIII", data, off)
        lost = (hi << 16) | lo
        if lost & 0x800000:     # 24-bit two's complement
            lost -= 1 << 24
        return cls(ssrc, frac, lost, hseq, jit, lsr, dlsr)


@dataclass
class SenderReport:
    ssrc: int
    ntp: int            # 64-bit NTP timestamp
    rtp_ts: int
    packets: int
    octets: int
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass
class ReceiverReport:
    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass
class Bye:
    ssrcs: list[int]
    reason: str = ""


@dataclass
class RtcpOther:
    """An RTCP packet type we do not interpret (SDES, APP, feedback); kept as raw bytes."""
    packet_type: int
    count: int
    body: bytes


def _rtcp_header(count: int, pt: int, body: bytes) -> bytes:
    # 6.4.1: length is the packet size in 32-bit words minus one, header included.
    return struct.pack("!BBH", 0x80 | count, pt, (len(body) + 4) // 4 - 1) + body


def build_sr(sr: SenderReport) -> bytes:
    if len(sr.reports) > 31:
        raise LocalProtocolError("at most 31 report blocks")
    body = struct.pack("!IQIII", sr.ssrc, sr.ntp, sr.rtp_ts & 0xFFFFFFFF, sr.packets & 0xFFFFFFFF,
                       sr.octets & 0xFFFFFFFF) + b"".join(r.pack() for r in sr.reports)
    return _rtcp_header(len(sr.reports), RTCP_SR, body)


def build_rr(rr: ReceiverReport) -> bytes:
    if len(rr.reports) > 31:
        raise LocalProtocolError("at most 31 report blocks")
    body = struct.pack("!I", rr.ssrc) + b"".join(r.pack() for r in rr.reports)
    return _rtcp_header(len(rr.reports), RTCP_RR, body)


def build_bye(bye: Bye) -> bytes:
    if len(bye.ssrcs) > 31:
        raise LocalProtocolError("at most 31 SSRCs")
    body = b"".join(struct.pack("!I", s) for s in bye.ssrcs)
    if bye.reason:
        reason = bye.reason.encode()[:255]
        body += bytes([len(reason)]) + reason
        body += bytes(-len(body) % 4)   # 6.6: pad the reason with nulls to a 32-bit boundary
    return _rtcp_header(len(bye.ssrcs), RTCP_BYE, body)


def build_rtcp(*packets) -> bytes:
    """A compound RTCP packet from SenderReport/ReceiverReport/Bye items."""
    out = []
    for p in packets:
        if isinstance(p, SenderReport):
            out.append(build_sr(p))
        elif isinstance(p, ReceiverReport):
            out.append(build_rr(p))
        elif isinstance(p, Bye):
            out.append(build_bye(p))
        else:
            raise TypeError(f"cannot build RTCP from {type(p).__name__}")
    return b"".join(out)


def parse_rtcp(data: bytes) -> list:
    """Parse a compound RTCP packet into SenderReport/ReceiverReport/Bye/RtcpOther items."""
    out: list = []
    off, n = 0, len(data)
    if n < 4:
        raise RtpError("RTCP packet shorter than 4 bytes")
    while off < n:
        if off + 4 > n:
            raise RtpError("truncated RTCP header")
        b0, pt, words = struct.unpack_from("!BBH", data, off)
        if b0 >> 6 != 2:
            raise RtpError(f"RTCP version {b0 >> 6}, expected 2")
        end = off + 4 * (words + 1)
        if end > n:
            raise RtpError("RTCP length runs past the datagram")
        count = b0 & 0x1F
        body_end = end
        if b0 & 0x20:
            # Padding is only allowed on the last packet of a compound (6.4.1).
            pad = data[end - 1]
            if end != n or pad == 0 or pad > end - off - 4:
                raise RtpError("bad RTCP padding")
            body_end = end - pad
        body = bytes(data[off + 4:body_end])
        out.append(_parse_one(pt, count, body))
        off = end
    return out


def _parse_one(pt: int, count: int, body: bytes):
    if pt == RTCP_SR:
        if len(body) < 24 + 24 * count:
            raise RtpError("SR too short for its report count")
        ssrc, ntp, ts, pkts, octets = struct.unpack_from("!IQIII", body)
        return SenderReport(ssrc, ntp, ts, pkts, octets, [ReportBlock.unpack(body, 24 + 24 * i) for i in range(count)])
    if pt == RTCP_RR:
        if len(body) < 4 + 24 * count:
            raise RtpError("RR too short for its report count")
        (ssrc,) = struct.unpack_from("!I", body)
        return ReceiverReport(ssrc, [ReportBlock.unpack(body, 4 + 24 * i) for i in range(count)])
    if pt == RTCP_BYE:
        if len(body) < 4 * count:
            raise RtpError("BYE too short for its SSRC count")
        ssrcs = list(struct.unpack_from(f"!{count}I", body))
        reason = ""
        rest = body[4 * count:]
        if rest and rest[0]:
            if 1 + rest[0] > len(rest):
                raise RtpError("BYE reason runs past the packet")
            reason = rest[1:1 + rest[0]].decode("utf-8", "replace")
        return Bye(ssrcs, reason)
    return RtcpOther(pt, count, body)
