"""One RTP session (audio or video) of the engine: its sockets' receive paths and its send paths."""

from __future__ import annotations

import logging
import random
import struct
import time
from typing import TYPE_CHECKING

from ..dtmf import DtmfError, DtmfReceiver, parse_event, tone_packets
from ..errors import LocalProtocolError
from ..jitter import JitterBuffer
from ..mixer import FRAME
from ..rtp import ReceiverReport, RtpError, SenderReport, SeqTracker, build_rtcp, build_rtp, is_rtcp, parse_rtp
from .codecs import CODEC_BY_PT
from .relay import _Proto, _RelayProto

if TYPE_CHECKING:
    from .core import MediaEngine
    from .recording import Recording

log = logging.getLogger("media.engine")

_NTP_EPOCH = 2208988800
_HDR = struct.Struct("!BBHII")     # version 2, no padding/extension/CSRC: b0, marker|pt, seq, ts, SSRC


def _ntp_now() -> int:
    t = time.time() + _NTP_EPOCH
    return (int(t) << 32) | int((t % 1.0) * (1 << 32))


class Stream:
    """One RTP session (audio or video) on an even local port; RTCP on port + 1."""

    # Slots: the packet paths read several of these, for thousands of streams.
    __slots__ = ("engine", "kind", "address", "port", "transport", "rtcp_transport", "remote", "remote_rtcp",
                 "pt", "event_pt", "latch", "_latched", "on_dtmf", "closed", "room", "peer", "fwd", "ssrc", "_seq",
                 "_ts_base", "_sent_last_tick", "_dtmf_out", "_tx_octets", "remote_ssrc", "jb", "tracker", "dtmf",
                 "counters", "_rx", "_tx", "_fwd_n", "_relay", "_player", "_recordings", "__weakref__")

    def __init__(self, engine: MediaEngine, kind: str, port: int, transport, rtcp_transport) -> None:
        self.engine = engine
        self.kind = kind
        self.address = engine.address
        self.port = port
        self.transport = transport
        self.rtcp_transport = rtcp_transport
        self.remote: tuple[str, int] | None = None
        self.remote_rtcp: tuple[str, int] | None = None
        self.pt: int | None = None
        self.event_pt: int | None = None
        self.latch = True
        self._latched = False
        self.on_dtmf = None             # callable(digit: str)
        self.closed = False
        self.room = None
        self.peer: Stream | None = None     # video relay partner
        self.fwd: Stream | None = None      # audio: the stream this one's packets are forwarded to
        self._fwd_n = 0         # packets forwarded out of here
        self._relay: _RelayProto | None = None      # on our RTP transport while our packets are relayed
        # sending state
        self.ssrc = random.getrandbits(32)
        self._seq = random.getrandbits(16)
        self._ts_base = random.getrandbits(32)
        self._sent_last_tick = False
        self._dtmf_out: list = []
        self._tx_octets = 0
        # receiving state
        self.remote_ssrc: int | None = None
        self.jb = JitterBuffer(frame_time=engine.ptime)
        self.tracker = SeqTracker()
        self.dtmf = DtmfReceiver()
        self._rx = 0            # RTP packets accepted / sent with our SSRC: plain slots, they change on every
        self._tx = 0            # packet (forwarded packets are _fwd_n; they are the partner's, not in our SR)
        self.counters = dict(garbage=0, ignored=0, rtcp_rx=0, rtcp_tx=0,
                             dtmf_events=0, ssrc_changes=0, errors=0, send_errors=0)
        self._player = None
        self._recordings: list[Recording] = []

    def __repr__(self) -> str:
        return f"<Stream {self.kind} {self.address}:{self.port} remote={self.remote} pt={self.pt}>"

    # --- public ------------------------------------------------------------------------------------

    def set_remote(self, host: str, port: int, pt: int | None = None, event_pt: int | None = None, *,
                   latch: bool = True) -> None:
        """Where to send (from the SDP); pt 0 PCMU / 8 PCMA for audio, any for video (unused).

        With latch=True the first valid RTP packet received afterwards moves the remote to its source.
        """
        if self.kind == "audio" and pt is not None and pt not in CODEC_BY_PT:
            raise LocalProtocolError(f"unsupported audio payload type {pt} (0 PCMU or 8 PCMA)")
        self.remote = (host, int(port))
        self.remote_rtcp = (host, int(port) + 1)
        if pt is not None:
            self.pt = pt
        self.event_pt = event_pt
        self.latch = latch
        self._latched = False
        if self.kind == "audio":
            self.engine._reroute(self)

    @property
    def codec(self) -> str | None:
        return CODEC_BY_PT.get(self.pt)

    @property
    def stats(self) -> dict:
        """rx_packets, tx_packets, lost (network, RFC 3550 A.3), late, duplicates, jitter_ms, and more."""
        self._fold()
        if self.fwd is not None:
            self.fwd._fold()
        c = dict(self.counters, rx_packets=self._rx, tx_packets=self._tx + self._fwd_n, relayed=self._fwd_n)
        js = self.jb.stats
        c.update(lost=max(0, self.tracker.lost), late=js.late, duplicates=js.duplicates,
                 concealed=js.lost, jitter_ms=self.tracker.jitter / 8.0 if self.kind == "audio" else 0.0,
                 jitter_buffer_ms=self.jb.target * self.engine.ptime * 1000)
        return c

    @property
    def playing(self) -> bool:
        return self._player is not None

    def send_dtmf(self, digit: str, duration: int = 800) -> None:
        """Queue an RFC 4733 digit (needs event_pt); it replaces audio packets for its duration."""
        if self.event_pt is None:
            raise LocalProtocolError("no telephone-event payload type negotiated")
        tone_packets(digit, 0, duration)        # validates the digit and duration now
        self._dtmf_out.append((digit, duration))
        self.engine._reroute(self)              # the tick sends the digit, so it must own the stream

    def close(self) -> None:
        self.engine._close_stream(self)

    # --- receive path --------------------------------------------------------------------------------

    def _received(self, data: bytes, addr) -> None:
        if self.closed:
            return
        if (len(data) > 12 and data[0] == 0x80 and data[1] & 0x7F == self.pt and self.kind == "audio"
                and self.fwd is None and (self._latched or not self.latch) and self.remote is not None):
            # The common packet, taken without parse_rtp: plain header, the stream's own codec, from
            # where it is expected. Same steps as below. (A payload type of 0 or 8 is never RTCP.)
            _, _, seq, ts, ssrc = _HDR.unpack_from(data)
            if ssrc == self.remote_ssrc:
                self._rx += 1
                now = self.engine.clock()
                self.tracker.update(seq, ts, now * 8000.0)
                if self.room is not None or self._recordings or self.engine.mixer.has_overrides:
                    self.jb.put(seq, ts, data[12:], now)
                return
        if is_rtcp(data):
            self.counters["rtcp_rx"] += 1
            to = self.peer if self.kind == "video" else self.fwd      # relays pass RTCP end to end
            if to is not None and to.remote_rtcp is not None:
                to._forward_rtcp(data, mux=True)
            return
        if self.kind == "video":
            if len(data) < 12 or data[0] >> 6 != 2:
                self.counters["garbage"] += 1
                return
            self._rx += 1
            self._maybe_latch(addr)
            peer = self.peer
            if peer is not None and peer.remote is not None and not peer.closed:
                peer.transport.sendto(data, peer.remote)
                peer._tx += 1
            return
        try:
            p = parse_rtp(data)
        except RtpError:
            self.counters["garbage"] += 1
            return
        pt = p.payload_type
        if self.pt is None and pt in CODEC_BY_PT:
            self.pt = pt
            self.engine._reroute(self)      # may pair up now
        if pt != self.pt and pt != self.event_pt:
            self.counters["ignored"] += 1
            return
        if self.event_pt is not None and pt == self.event_pt:
            try:
                # Validate first so that a malformed event does not disturb the session state.
                parse_event(p.payload)
            except DtmfError:
                self.counters["garbage"] += 1
                return
        self._rx += 1
        self._maybe_latch(addr)
        now = self.engine.clock()
        if p.ssrc != self.remote_ssrc:
            if self.remote_ssrc is not None:
                # A new source (the phone restarted, or a transfer): start the receive state afresh.
                self.counters["ssrc_changes"] += 1
                self._uninstall()       # its snapshot has the old SSRC and tracker
                self.jb = JitterBuffer(frame_time=self.engine.ptime)
                self.tracker = SeqTracker()
                self.dtmf = DtmfReceiver()
            self.remote_ssrc = p.ssrc
        self.tracker.update(p.seq, p.timestamp, now * 8000.0)
        t = self.fwd
        if pt == self.event_pt:
            if t is not None and t.event_pt is not None:
                t._forward(data, t.event_pt)
            digit = self.dtmf.feed(p.timestamp, p.payload, p.marker)
            if digit is not None:
                self.counters["dtmf_events"] += 1
                if t is None and self.room is not None:
                    self.engine._dtmf_to_partner(self, digit)
                cb = self.on_dtmf
                if cb is not None:
                    try:
                        cb(digit)
                    except Exception:  # noqa: BLE001
                        log.exception("media: on_dtmf callback failed")
            return
        if t is not None:
            t._forward(data, -1)
            if not self._recordings:
                if self._relay is None:
                    self._install()
                return
        if self.room is None and not self._recordings and not self.engine.mixer.has_overrides:
            return      # nobody hears this stream now (a caller at a prompt or on hold): nothing to play out
        self.jb.put(p.seq, p.timestamp, p.payload, now)

    def _unheard(self) -> None:
        """Out of its room: unless recorded, nothing it sends is played out any more, and a playout
        position left behind would count the whole pause as loss (or resync) once it is heard again."""
        if self.kind == "audio" and not self._recordings:
            self.jb.restart()

    def _maybe_latch(self, addr) -> None:
        if self.remote is None or (self.latch and not self._latched):
            addr = (addr[0], addr[1])
            self._latched = True
            if addr != self.remote:
                self.remote = addr
                self.remote_rtcp = (addr[0], addr[1] + 1)
                if self.fwd is not None:
                    self.fwd._uninstall()       # its relay snapshot holds our old address

    def _rtcp_received(self, data: bytes, addr) -> None:
        if self.closed:
            return
        if len(data) < 8 or data[0] >> 6 != 2:
            self.counters["garbage"] += 1
            return
        self.counters["rtcp_rx"] += 1
        to = self.peer if self.kind == "video" else self.fwd
        if to is not None:
            to._forward_rtcp(data, mux=False)

    def _forward_rtcp(self, data: bytes, mux: bool) -> None:
        if self.closed:
            return
        if mux and self.remote is not None:
            self.transport.sendto(data, self.remote)
        elif self.remote_rtcp is not None:
            self.rtcp_transport.sendto(data, self.remote_rtcp)

    # --- send path ----------------------------------------------------------------------------------

    def _forward(self, data: bytes, pt: int) -> None:
        """Send a packet received by our relay partner, unchanged but for the payload type (pt -1 = keep)."""
        if self.remote is None or self.closed:
            return
        if pt >= 0 and data[1] & 0x7F != pt:
            buf = bytearray(data)
            buf[1] = (buf[1] & 0x80) | pt
            data = buf
        self._fwd_n += 1
        try:
            self.transport.sendto(data, self.remote)
        except OSError:
            self.counters["send_errors"] += 1

    def _install(self) -> None:
        """Hand our RTP socket to a _RelayProto (after the full path has forwarded a first packet)."""
        t = self.fwd
        if t is None or t.remote is None or self.remote_ssrc is None or self._recordings \
                or not (self._latched or not self.latch) or self.closed or t.closed:
            return
        self._relay = _RelayProto(self, t)
        self.transport.set_protocol(self._relay)

    def _uninstall(self) -> None:
        if self._relay is not None:
            self._fold()
            self.transport.set_protocol(_Proto(self, False))
            self._relay = None

    def _fold(self) -> None:
        """Move the relay's packet counts into this stream (received) and its partner (sent)."""
        r = self._relay
        if r is not None and r.n:
            r.sync()
            n = r.n
            self._rx += n
            if self.fwd is not None:
                self.fwd._fwd_n += n
            r.n = r.synced = 0

    # --- send path (called by the ticker) -----------------------------------------------------------

    def _send_audio(self, tick: int, payload: bytes) -> None:
        # The plain header of build_rtp, packed here: this runs for every mixed leg on every tick.
        pkt = _HDR.pack(0x80, self.pt if self._sent_last_tick else self.pt | 0x80, self._seq,
                            (self._ts_base + FRAME * tick) & 0xFFFFFFFF, self.ssrc) + payload
        self._seq = (self._seq + 1) & 0xFFFF
        self._sent_last_tick = True
        self._tx += 1
        self._tx_octets += len(payload)
        self.transport.sendto(pkt, self.remote)

    def _send_dtmf_packet(self, tick: int) -> None:
        """One packet of the digit in progress; the event's packets were prepared when it started."""
        head = self._dtmf_out[0]
        if not isinstance(head, list):
            digit, duration = head
            ts = (self._ts_base + FRAME * tick) & 0xFFFFFFFF
            self._dtmf_out[0] = head = [(p.marker, ts, p.payload) for p in tone_packets(digit, ts, duration)]
        marker, ts, payload = head.pop(0)
        if not head:
            self._dtmf_out.pop(0)
        pkt = build_rtp(self.event_pt, self._seq, ts, self.ssrc, payload, marker=marker)
        self._seq = (self._seq + 1) & 0xFFFF
        self._sent_last_tick = True
        self._tx += 1
        self.transport.sendto(pkt, self.remote)

    def _send_sr(self, tick: int) -> None:
        if self.remote_rtcp is None or self.rtcp_transport is None:
            return
        ts = (self._ts_base + FRAME * tick) & 0xFFFFFFFF
        blocks = [self.tracker.report_block(self.remote_ssrc)] if self.remote_ssrc is not None else []
        if self._tx:
            pkt = build_rtcp(SenderReport(self.ssrc, _ntp_now(), ts, self._tx,
                                          self._tx_octets, blocks))
        else:
            pkt = build_rtcp(ReceiverReport(self.ssrc, blocks))
        self.counters["rtcp_tx"] += 1
        self.rtcp_transport.sendto(pkt, self.remote_rtcp)
