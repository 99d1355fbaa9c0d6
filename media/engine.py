"""The node's RTP media engine: UDP streams, one 20 ms ticker, rooms, prompts, recordings, video relay.

This is the only media module that does I/O. Everything numeric is delegated to the pure kernels:
g711 (codec tables), rtp (packets, SeqTracker), jitter (JitterBuffer), mixer (Mixer), dtmf (RFC 4733),
wav (Recorder).

Usage (inside a running asyncio loop, default or uvloop)::

    engine = MediaEngine(loop, address="127.0.0.1", port_range=(20000, 29999))
    await engine.start()
    a = await engine.open_stream()               # a.port goes into the SDP answer
    a.set_remote("10.0.0.5", 4000, pt=0, event_pt=101)
    a.on_dtmf = lambda digit: ...
    engine.join(a, "call-1"); engine.join(b, "call-1")
    done = engine.play(a, frames)                # asyncio.Future -> True (finished) / False (stopped)
    rec = engine.record(customer, agent, "/var/rec/x.wav"); ...; rec.close()
    await engine.stop()

Documented choices:

* Sending: an audio stream sends one packet per tick when it has a remote address AND (it is in a room,
  or a prompt is playing to it, or DTMF is being sent on it). A stream alone in a room sends silence
  (keeps NAT bindings and the far jitter buffer alive). A stream in no room with no prompt sends nothing.
* A prompt playing to a stream REPLACES the room audio for that stream (the caller hears the prompt
  only); what the stream says is still mixed into its room. ``play`` on a stream that is already
  playing stops the earlier prompt (its future resolves False).
* ``play`` futures resolve True when the last frame's 20 ms slot is over, False when stopped
  (``stop_play``, a new ``play``, stream close, engine stop). Cancelling the future stops the prompt.
* Symmetric RTP: the first valid RTP packet received after ``open_stream``/``set_remote`` latches the
  remote address to the packet's source (``latch=True``), so a NATed phone is reached where it really
  is. Before any remote is known the stream sends nothing. Packets are accepted from any source.
* Lost/late frames are concealed with silence: zeros, or where a tick mixes G.711 codes directly (one
  codec, no supervisor override) the code nearest to zero, which for A-law is +8 (also in recordings).
* Two-party relay: in a room of exactly two audio streams with the same payload type, no prompt playing
  to either, no DTMF being sent on either and no supervisor override involving either, each RTP packet
  is forwarded to the other party the moment it arrives, unchanged, as a media relay does: nothing is
  decoded, mixed, encoded or buffered and the ticker does not touch the pair. The far end sees its
  partner's SSRC, sequence numbers and timestamps (a new SSRC when the relay starts or ends, as on any
  transfer); RTCP is forwarded the same way instead of the engine's own reports. RFC 4733 events are
  forwarded too (payload type mapped) when both sides negotiated them, and still reach ``on_dtmf``. A
  lost packet is not replaced (the far end conceals it). Receive statistics go on: every packet is
  counted for loss (RFC 3550 A.1/A.3), interarrival jitter is estimated on every 8th packet. A recorded
  pair also fills its jitter buffers for the recording. Routes are dropped at once when a prompt, a
  DTMF send, a supervisor override or a room change needs the mixer, and (re)made at the next tick.
  Counted in ``stats["relayed_frames"]``.
* Only the stream's payload type is decoded (learned from the first packet if set_remote has not run);
  other payload types (comfort noise, video on an audio port, ...) are counted as ``ignored``.
* RTCP: port+1 is bound; received RTCP (there or multiplexed on the RTP port) is counted and otherwise
  ignored; every ``rtcp_interval`` seconds an audio stream the ticker sends on emits a minimal SR to
  remote port+1. Relayed audio pairs and video streams pass RTCP to the partner's remote instead.
* Ticker: tick n is due at ``t0 + n * ptime`` on the engine's clock (``time.monotonic``, which is also
  the loop's clock) and a ``loop.call_at`` timer, so there is no drift. A loop runs its timers only
  between iterations, and under a heavy packet load one iteration can spend many milliseconds on I/O;
  so the packet paths also compare the clock with the next due time (the relay on one packet in 8 of
  a stream) and run due ticks themselves. When ticks run late by one tick or more, the missed ticks run
  back to back, up to ``max_catchup + 1`` per call (then the loop gets its turn); each
  catch-up tick counts in ``stats["late_ticks"]``. A gap longer than ``max_catchup`` ticks (host
  suspended, debugger) is not replayed: the oldest missed ticks are dropped (counted in ``stats["skipped_ticks"]``),
  the schedule itself stays anchored at t0, so RTP timestamps keep following real time.
* Recordings are buffered and written every ``record_flush`` ticks (and on close) to keep file I/O off
  most ticks. A recording closes itself when either of its streams closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import struct
import time
import weakref

import numpy as np

from . import g711
from .dtmf import DtmfError, DtmfReceiver, parse_event, tone_packets
from .jitter import JitterBuffer
from .mixer import FRAME, Mixer
from .rtp import (ReceiverReport, RtpError, SenderReport, SeqTracker, build_rtcp, build_rtp, is_rtcp,
                  parse_rtp)
from .wav import Recorder

log = logging.getLogger("media.engine")

CODEC_BY_PT = {0: "PCMU", 8: "PCMA"}
_DECODE = {0: g711.ULAW_DECODE, 8: g711.ALAW_DECODE}
_ENCODE = {0: g711.ULAW_ENCODE, 8: g711.ALAW_ENCODE}
_SILENCE = {0: 0xFF, 8: 0xD5}           # the code nearest to 0 (mu-law 0xFF is 0, A-law 0xD5 is +8)
_NTP_EPOCH = 2208988800
_SEQ_SSRC = struct.Struct("!H4xI")      # RTP header: sequence number (bytes 2-3) and SSRC (8-11)
_TS = struct.Struct("!I")
_HDR = struct.Struct("!BBHII")     # version 2, no padding/extension/CSRC: b0, marker|pt, seq, ts, SSRC


def _ntp_now() -> int:
    t = time.time() + _NTP_EPOCH
    return (int(t) << 32) | int((t % 1.0) * (1 << 32))


class _Proto(asyncio.DatagramProtocol):
    """RTCP socket, and the RTP socket of a stream that is not relaying."""

    __slots__ = ("stream", "handle", "engine")

    def __init__(self, stream: Stream, rtcp: bool) -> None:
        self.stream = stream
        self.engine = stream.engine
        self.handle = stream._rtcp_received if rtcp else stream._received

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            self.handle(data, addr)
        except Exception:   # noqa: BLE001 - a datagram must never take the engine down
            s = self.stream
            s.counters["errors"] += 1
            log.exception("media: error handling a datagram on port %s", s.port)
        e = self.engine
        if e.clock() >= e.next_due:
            e.run_due()

    def error_received(self, exc) -> None:
        # ICMP port unreachable etc.: the phone is gone or not yet listening; keep going.
        self.stream.counters["send_errors"] += 1


class _RelayProto(_Proto):
    """Installed on a stream's RTP transport while its packets are relayed to its partner (module doc).

    This is the hottest code of the node, so it works on a snapshot of the route in its own slots: one
    Python frame per packet. In-order packets are only counted here; every 8th one (and anything out of
    order) goes through the stream's SeqTracker with its arrival time, after the counted ones are
    handed over, so loss figures stay exact. Anything it cannot forward as is (another payload type, a
    new SSRC, CSRCs, RTCP, ...) takes the stream's full path (_Proto), which forwards what it should. Any change to
    the route takes this object off the transport first. Stream._fold moves its counts into the streams.
    """

    __slots__ = ("tracker", "clock", "pt", "ssrc_in", "out", "dest", "next", "n", "synced")

    def __init__(self, src: Stream, to: Stream) -> None:
        super().__init__(src, False)
        self.tracker = src.tracker
        self.clock = src.engine.clock
        self.pt = src.pt
        self.ssrc_in = src.remote_ssrc
        self.out = to.transport
        self.dest = to.remote
        self.next = src.tracker._next   # the in-order successor, -1 while the tracker must see everything
        self.n = 0                      # packets forwarded
        self.synced = 0                 # ... of which the tracker knows

    def datagram_received(self, data: bytes, addr) -> None:
        if data[0] == 0x80 and data[1] & 0x7F == self.pt and len(data) >= 12:
            seq, ssrc = _SEQ_SSRC.unpack_from(data, 2)
            if ssrc == self.ssrc_in:
                if seq == self.next and seq & 7:
                    self.next = seq + 1         # seq & 7 != 0: no wrap here (seq 0 goes to the tracker)
                    due = False
                else:
                    self.sync()
                    now = self.clock()
                    self.tracker.update(seq, _TS.unpack_from(data, 4)[0], now * 8000.0)
                    self.next = self.tracker._next
                    self.synced += 1
                    due = now >= self.engine.next_due      # checked here only: 1 packet in 8 is enough
                self.n += 1
                try:
                    self.out.sendto(data, self.dest)
                except OSError:
                    self.stream.counters["send_errors"] += 1
                if due:
                    self.engine.run_due()
                return
        _Proto.datagram_received(self, data, addr)

    def sync(self) -> None:
        """Hand the in-order packets counted here to the tracker (they extend its max_seq one by one)."""
        k = self.n - self.synced
        if k:
            tr = self.tracker
            tr.received += k
            tr.max_seq = (self.next - 1) & 0xFFFF
            tr._next = self.next & 0xFFFF
            self.synced = self.n


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
            raise ValueError(f"unsupported audio payload type {pt} (0 PCMU or 8 PCMA)")
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
            raise ValueError("no telephone-event payload type negotiated")
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


class Recording:
    """A running call recording: stereo WAV, left = customer's voice, right = agent's voice."""

    def __init__(self, engine: MediaEngine, customer: Stream, agent: Stream, path, flush_ticks: int) -> None:
        self.engine = engine
        self.customer = customer
        self.agent = agent
        self.path = path
        self._rec = Recorder(os.fspath(path) if isinstance(path, os.PathLike) else path)
        self._buf: list[np.ndarray] = []      # (2, 160) per tick
        self._flush_ticks = flush_ticks
        self.closed = False

    @property
    def samples(self) -> int:
        return self._rec.samples + FRAME * len(self._buf)

    def _add(self, pair: np.ndarray) -> None:
        self._buf.append(pair)
        if len(self._buf) >= self._flush_ticks:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            both = np.concatenate(self._buf, axis=1)
            self._buf.clear()
            self._rec.write(both[0], both[1])

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._flush()
        finally:
            self._rec.close()
            self.engine._recordings.discard(self)
            for s in (self.customer, self.agent):
                if self in s._recordings:
                    s._recordings.remove(self)
                    if s.room is None:
                        s._unheard()


class _Player:
    __slots__ = ("frames", "pos", "loop", "future", "_coded")

    BLOCK = 50      # frames encoded at a time (1 s), as playback reaches them

    def __init__(self, frames: np.ndarray, loop: bool, future: asyncio.Future,
                 coded: dict[tuple[int, int], list[bytes]] | None = None) -> None:
        self.frames = frames
        self.pos = 0
        self.loop = loop
        self.future = future
        # (pt, block) -> payloads; shared by every player of the same frames (MediaEngine._coded_for)
        self._coded = {} if coded is None else coded

    def payload(self, pt: int) -> bytes:
        """The current frame as a G.711 payload. Each block is encoded once for all the players of a
        prompt, so a thousand callers on the same music on hold cost one encoding of it."""
        b, i = divmod(self.pos, self.BLOCK)
        block = self._coded.get((pt, b))
        if block is None:
            pcm = self.frames[b * self.BLOCK:(b + 1) * self.BLOCK]
            codes = np.take(_ENCODE[pt], np.ascontiguousarray(pcm).view(np.uint16))
            block = self._coded[(pt, b)] = [row.tobytes() for row in codes]
        return block[i]


class MediaEngine:
    """All RTP streams of the node, driven by one drift-free ptime ticker on the asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, address: str = "127.0.0.1",
                 port_range: tuple[int, int] = (20000, 29999), ptime: float = 0.02, *,
                 max_catchup: int = 50, rtcp_interval: float = 5.0, record_flush: int = 25) -> None:
        if abs(ptime - FRAME / 8000) > 1e-9:
            raise ValueError("only 20 ms frames (160 samples at 8 kHz) are supported")
        lo, hi = port_range
        lo += lo & 1
        if not 0 < lo < hi <= 65535:
            raise ValueError(f"bad port range {port_range}")
        self.loop = loop or asyncio.get_event_loop()
        self.address = address
        self.port_range = (lo, hi)
        self.ptime = ptime
        self.max_catchup = max_catchup
        self.rtcp_every = max(1, round(rtcp_interval / ptime))
        self.record_flush = record_flush
        self.mixer = Mixer()
        self.streams: set[Stream] = set()
        self._audio: list[Stream] = []
        self._recordings: set[Recording] = set()
        self._rooms: dict[object, list[Stream]] = {}     # room id -> its audio streams
        self._dirty_rooms: set = set()                  # rooms whose relay route must be re-decided
        self._over_seen = 0                             # mixer.over_version the routes were decided on
        self._next_port = lo + 2 * random.randrange((hi - lo) // 2) if hi - lo >= 4 else lo
        self._handle: asyncio.TimerHandle | None = None
        # The schedule's clock: time.monotonic() when it is the loop's clock (asyncio's and uvloop's are):
        # finer than uvloop's whole milliseconds for arrival times, and cheaper to read per packet.
        self.clock = time.monotonic if abs(self.loop.time() - time.monotonic()) < 0.01 else self.loop.time
        self.t0: float | None = None
        self.tick_no = 0                 # index of the next tick to run
        self.next_due = float("inf")     # clock time of tick tick_no while running; packet paths compare
        self.running = False
        self._stats = dict(ticks=0, late_ticks=0, skipped_ticks=0, max_lateness_ms=0.0, max_tick_ms=0.0)
        self._relayed_closed = 0        # packets relayed by streams that are gone
        self._prompt_codes: dict[int, tuple[weakref.ref, dict]] = {}   # id(frames) -> (ref, encoded blocks)

    @property
    def stats(self) -> dict:
        """ticks, late_ticks, skipped_ticks, max_lateness_ms, max_tick_ms, relayed_frames (packets forwarded)."""
        for s in self._audio:
            s._fold()
        return dict(self._stats, relayed_frames=self._relayed_closed + sum(s._fwd_n for s in self._audio))

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.running:
            return
        self.running = True
        self.t0 = self.next_due = self.clock()
        self.tick_no = 0
        self._handle = self.loop.call_at(self.t0, self._on_timer)

    async def stop(self) -> None:
        self.running = False
        self.next_due = float("inf")
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for s in list(self.streams):
            self._close_stream(s)
        for r in list(self._recordings):
            r.close()

    def due(self, n: int) -> float:
        """Clock time (self.clock) at which tick n is due."""
        return self.t0 + n * self.ptime

    # --- streams -------------------------------------------------------------------------------------

    def _bind(self, port: int) -> socket.socket | None:
        sock = socket.socket(socket.AF_INET6 if ":" in self.address else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.address, port))
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        return sock

    async def open_stream(self, kind: str = "audio") -> Stream:
        """Bind an even free port of the range (and port+1 for RTCP); the stream is idle until used."""
        if kind not in ("audio", "video"):
            raise ValueError("kind must be 'audio' or 'video'")
        lo, hi = self.port_range
        count = (hi - lo + 1) // 2
        port = self._next_port
        for _ in range(count):
            cand = port
            port += 2
            if port + 1 > hi:
                port = lo
            if cand + 1 > hi:
                continue
            rtp = self._bind(cand)
            if rtp is None:
                continue
            rtcp = self._bind(cand + 1)
            if rtcp is None:
                rtp.close()
                continue
            self._next_port = port      # rotate: a just-freed port is not reused at once
            break
        else:
            raise OSError(f"no free RTP port pair in {self.port_range}")
        stream = Stream(self, kind, cand, None, None)
        try:
            stream.transport, _ = await self.loop.create_datagram_endpoint(lambda: _Proto(stream, False), sock=rtp)
            stream.rtcp_transport, _ = await self.loop.create_datagram_endpoint(lambda: _Proto(stream, True),
                                                                                 sock=rtcp)
        except BaseException:
            for t, sk in ((stream.transport, rtp), (stream.rtcp_transport, rtcp)):
                (t.close() if t is not None else sk.close())
            raise
        self.streams.add(stream)
        if kind == "audio":
            self.mixer.add_leg(stream)
            self._audio.append(stream)
        return stream

    def _close_stream(self, s: Stream) -> None:
        if s.closed:
            return
        s.closed = True
        self._stop_player(s, False)
        for r in list(s._recordings):
            r.close()
        if s.peer is not None:
            s.peer.peer = None
            s.peer = None
        if s.kind == "audio":
            self._move(s, None)
            self._relayed_closed += s._fwd_n
            self.mixer.remove_leg(s)
            self._audio.remove(s)
        self.streams.discard(s)
        for t in (s.transport, s.rtcp_transport):
            if t is not None:
                t.close()

    # --- rooms and supervisor modes -----------------------------------------------------------------

    def join(self, stream: Stream, room_id) -> None:
        """Put an audio stream in a room (moving it from any other room)."""
        self._check_audio(stream)
        self.mixer.set_room(stream, room_id)
        self._move(stream, room_id)

    def leave(self, stream: Stream) -> None:
        """Take a stream out of its room; supervisor overrides involving it are dropped."""
        self._check_audio(stream)
        self.mixer.set_room(stream, None)
        self.mixer.clear_hears(stream)
        self._move(stream, None)

    def mode(self, supervisor: Stream, agent: Stream, customer: Stream, mode: str | None) -> None:
        """'listen' | 'whisper' | 'barge' (or None/'off' to clear) for a supervisor on an agent's call.

        A supervisor in no room is joined to the agent's room; the overrides decide what it hears.
        """
        for s in (supervisor, agent, customer):
            self._check_audio(s)
        m = self.mixer
        m.clear_hears(supervisor)
        for s in (supervisor, agent, customer):
            self._reroute(s)
        if mode in (None, "off", "none"):
            return
        action = {"listen": m.listen, "whisper": m.whisper, "barge": m.barge}.get(mode)
        if action is None:
            raise ValueError(f"unknown supervisor mode {mode!r}")
        if supervisor.room is None and agent.room is not None:
            self.join(supervisor, agent.room)
        action(supervisor, agent, customer)

    def _check_audio(self, s: Stream) -> None:
        if s.closed or s.kind != "audio" or s.engine is not self:
            raise ValueError(f"{s!r} is not an open audio stream of this engine")

    # --- prompts -------------------------------------------------------------------------------------

    def play(self, stream: Stream, frames, loop: bool = False) -> asyncio.Future:
        """Play (N, 160) int16 frames to the stream (instead of its room audio); see module doc."""
        self._check_audio(stream)
        f = np.asarray(frames)
        if f.ndim == 1:
            f = np.pad(f, (0, -len(f) % FRAME)).reshape(-1, FRAME)
        if f.ndim != 2 or f.shape[1] != FRAME:
            raise ValueError(f"prompt must be (N, {FRAME}) frames, got {f.shape}")
        if f.dtype != np.int16:
            f = np.clip(f, -32768, 32767).astype(np.int16)
        self._stop_player(stream, False)
        fut = self.loop.create_future()
        if len(f) == 0:
            fut.set_result(True)
            return fut
        stream._player = _Player(f, loop, fut, self._coded_for(f))
        self._reroute(stream)
        return fut

    def _coded_for(self, frames: np.ndarray) -> dict:
        """The encoded-frame cache of a prompt array, kept as long as the array lives (prompts and music
        on hold are loaded once and played to many callers; a one-off sentence goes with its player)."""
        key = id(frames)
        hit = self._prompt_codes.get(key)
        if hit is not None and hit[0]() is frames:
            return hit[1]
        coded: dict = {}
        ref = weakref.ref(frames, lambda _, key=key, codes=self._prompt_codes: codes.pop(key, None))
        self._prompt_codes[key] = (ref, coded)
        return coded

    def stop_play(self, stream: Stream) -> None:
        self._stop_player(stream, False)

    def _stop_player(self, s: Stream, result: bool) -> None:
        p = s._player
        if p is None:
            return
        s._player = None
        self._reroute(s)
        if not p.future.done():
            p.future.set_result(result)

    # --- two-party relay routes (see module doc) --------------------------------------------------------

    def _move(self, s: Stream, room_id) -> None:
        """Book-keeping of room membership for the relay routes."""
        self._reroute(s)
        old = s.room
        if old is not None:
            ms = self._rooms.get(old)
            if ms is not None and s in ms:
                ms.remove(s)
                if not ms:
                    del self._rooms[old]
        s.room = room_id
        if room_id is not None:
            self._rooms.setdefault(room_id, []).append(s)
            self._dirty_rooms.add(room_id)
        else:
            s._unheard()

    def _reroute(self, s: Stream) -> None:
        """Something about s changed: drop its relay route now; the tick decides its room afresh."""
        t = s.fwd
        if t is not None:
            for x in (s, t):
                x._uninstall()
            for x in (s, t):
                x.fwd = None
                x._sent_last_tick = False       # the next ticked packet is marked (timestamp jump)
                if not x._recordings:
                    x.jb = JitterBuffer(frame_time=self.ptime)     # not fed while relayed
        if s.room is not None:
            self._dirty_rooms.add(s.room)

    def _relayable(self, a: Stream, b: Stream, over: set[int]) -> bool:
        return (a.pt is not None and a.pt == b.pt and a._player is None and b._player is None
                and not a._dtmf_out and not b._dtmf_out
                and self.mixer.index(a) not in over and self.mixer.index(b) not in over)

    def _update_routes(self) -> None:
        m = self.mixer
        if m.over_version != self._over_seen:       # overrides changed (possibly on the mixer directly)
            self._over_seen = m.over_version
            self._dirty_rooms.update(s.room for s in self._audio if s.fwd is not None)
        if not self._dirty_rooms:
            return
        over = m.overridden_rows() if m._over else set()
        rooms, self._dirty_rooms = self._dirty_rooms, set()
        for room in rooms:
            ms = self._rooms.get(room, ())
            if len(ms) == 2 and self._relayable(ms[0], ms[1], over):
                a, b = ms
                if a.fwd is not b:
                    a.fwd, b.fwd = b, a
            else:
                for x in ms:
                    if x.fwd is not None:
                        self._reroute(x)

    def routes(self) -> dict[Stream, Stream]:
        """stream -> relay partner for every two-party relay in force (pending changes applied first)."""
        self._update_routes()
        return {s: s.fwd for s in self._audio if s.fwd is not None}

    # --- recording and video -----------------------------------------------------------------------

    def record(self, customer: Stream, agent: Stream, path) -> Recording:
        """Record both parties' voices (decoded input, after the jitter buffer) to a stereo WAV."""
        self._check_audio(customer)
        self._check_audio(agent)
        r = Recording(self, customer, agent, path, self.record_flush)
        customer._uninstall()       # the relayed packets must now also feed the jitter buffers
        agent._uninstall()
        self._recordings.add(r)
        customer._recordings.append(r)
        agent._recordings.append(r)
        return r

    def relay(self, a: Stream, b: Stream) -> None:
        """Forward every RTP/RTCP packet received on one video stream, unchanged, to the other's remote."""
        for s in (a, b):
            if s.closed or s.engine is not self:
                raise ValueError(f"{s!r} is not an open stream of this engine")
        for s in (a, b):
            if s.peer is not None:
                s.peer.peer = None
        a.peer, b.peer = b, a

    def unrelay(self, s: Stream) -> None:
        if s.peer is not None:
            s.peer.peer = None
            s.peer = None

    # --- the ticker ----------------------------------------------------------------------------------

    def _on_timer(self) -> None:
        self._handle = None
        self.run_due()

    def run_due(self) -> None:
        """Run the ticks that are due, then set the timer for the next one.

        Called by the timer and also by the packet paths once the clock has passed ``next_due``: under
        a heavy packet load one loop iteration can handle I/O for many milliseconds before any timer
        runs, and the media clock must not wait for it.
        """
        if not self.running:
            return
        now = self.clock()
        if now < self.next_due - 0.001:
            # A timer a little early (uvloop rounds delays to whole ms): wait again, at least 1 ms, so
            # that a delay rounded down to zero cannot spin.
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self.loop.call_at(max(self.next_due, self.loop.time() + 0.001), self._on_timer)
            return
        self.next_due = float("inf")        # no re-entry from a packet path while the ticks run
        st = self._stats
        lateness = now - self.due(self.tick_no)
        if lateness * 1000 > st["max_lateness_ms"]:
            st["max_lateness_ms"] = lateness * 1000
        behind = int(lateness / self.ptime)         # ticks that are already due after this one
        if behind > self.max_catchup:
            skip = behind - self.max_catchup
            st["skipped_ticks"] += skip
            self.tick_no += skip    # not replayed; RTP timestamps still follow real time
        first = True
        budget = self.max_catchup + 1     # an overloaded host must not starve the loop in here forever
        while True:
            n = self.tick_no
            if not first:
                st["late_ticks"] += 1
            first = False
            started = time.perf_counter()
            try:
                self._tick(n, self.due(n))
            except Exception:   # noqa: BLE001 - keep the clock running whatever happens
                log.exception("media: tick %d failed", n)
            cost = (time.perf_counter() - started) * 1000
            if cost > st["max_tick_ms"]:
                st["max_tick_ms"] = cost
            st["ticks"] += 1
            self.tick_no = n + 1
            budget -= 1
            if self.due(self.tick_no) > self.clock() or not self.running or budget <= 0:
                break
        if self.running:
            self._schedule()

    def _schedule(self) -> None:
        due = self.due(self.tick_no)
        now = self.clock()
        # Still behind after a whole catch-up budget: only the timer (once per loop iteration) goes on
        # catching up. The packet paths wait a tick; otherwise every datagram would start another budget
        # and an overloaded engine would starve the loop (SIP included) after all.
        self.next_due = due if due > now else now + self.ptime
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self.loop.call_at(due, self._on_timer)

    def _tick(self, n: int, now: float) -> None:
        self._update_routes()
        audio = self._audio
        if not audio:
            return
        mixer = self.mixer
        frames = mixer.frames
        rtcp_due = n % self.rtcp_every == 0 and n > 0
        # Relayed pairs are forwarded as packets arrive (RTCP too): the tick leaves them alone, but for
        # decoding a recorded pair for its recording.
        ticked = [s for s in audio if s.fwd is None]
        decode = ticked if not self._recordings else \
            ticked + [s for s in audio if s.fwd is not None and s._recordings]
        if not decode:
            return
        # 1. One frame per stream out of its jitter buffer, grouped by payload type.
        silent: list[int] = []
        groups: dict[int, tuple[list[int], list[bytes]]] = {}
        odd: list[tuple[int, int, bytes]] = []
        pts: set[int] = set()
        index = mixer.rows          # leg -> row (a dict: this loop runs for every leg on every tick)
        for s in decode:
            row = index[s]
            if s.room is not None or s._recordings:     # heard: its codec takes part in the mix
                pts.add(s.pt)
            f = s.jb.get(now)
            payload = f.payload if f is not None else None
            if payload is None:
                silent.append(row)
            elif len(payload) == FRAME:
                g = groups.get(s.pt)
                if g is None:
                    g = groups[s.pt] = ([], [])
                g[0].append(row)
                g[1].append(payload)
            else:
                odd.append((row, s.pt, payload))
        pts.discard(None)
        # 2. Mixing. The common case, one codec and no supervisor override, stays in G.711: the codes go
        # straight through the CodecRoomMixer kernel (a lost frame is the codec's silence code). Anything
        # else is decoded to int16 for the general mixer, which applies the overrides.
        g711_mix = len(pts) == 1 and not odd and not mixer.has_overrides
        if g711_mix:
            pt0 = next(iter(pts))
            codes = np.empty((mixer.frames.shape[0], FRAME), dtype=np.uint8)
            for rows, payloads in groups.values():
                codes[rows] = np.frombuffer(b"".join(payloads), np.uint8).reshape(-1, FRAME)
            if silent:
                codes[silent] = _SILENCE[pt0]
            for r in self._recordings:      # what each party said
                r._add(_DECODE[pt0][codes[[index[r.customer], index[r.agent]]]])
            if not ticked:
                return
            out = mixer.mix_codes(codes, CODEC_BY_PT[pt0])
        else:
            if silent:
                frames[silent] = 0
            for pt, (rows, payloads) in groups.items():
                frames[rows] = np.take(_DECODE[pt], np.frombuffer(b"".join(payloads), np.uint8)).reshape(-1, FRAME)
            for row, pt, payload in odd:        # odd packetization: decode alone, pad or cut to one frame
                pcm = _DECODE[pt][np.frombuffer(payload, np.uint8)][:FRAME]
                frames[row] = 0
                frames[row, :len(pcm)] = pcm
            for r in self._recordings:
                r._add(frames[[index[r.customer], index[r.agent]]])
            if not ticked:
                return
            out = mixer.mix()
        # 3. Prompts replace room audio (their frames encoded once, _Player.payload); room audio is
        # encoded per codec (general path); then everything is sent.
        mixed_rows: list[tuple[Stream, int]] = []
        outgoing: list[tuple[Stream, bytes]] = []      # prompt frames, then room audio
        for s in ticked:
            p = s._player
            if p is not None:
                if p.future.done():             # cancelled by its owner
                    s._player = p = None
                    self._reroute(s)
                elif p.pos >= len(p.frames):
                    if p.loop:
                        p.pos = 0
                    else:
                        s._player = None
                        self._reroute(s)
                        p.future.set_result(True)
                        p = None
            if s.remote is None or s.pt is None:
                if p is not None:
                    p.pos += 1          # a prompt's time passes even if nobody can hear it yet
                s._sent_last_tick = False
                continue
            if s._dtmf_out:
                s._send_dtmf_packet(n)
                if not s._dtmf_out:
                    self._reroute(s)
                continue
            if p is None and s.room is None:
                s._sent_last_tick = False
                continue
            if rtcp_due:
                s._send_sr(n)
            if p is not None:
                outgoing.append((s, p.payload(s.pt)))
                p.pos += 1
            else:
                mixed_rows.append((s, index[s]))
        if mixed_rows:
            if g711_mix:
                buf = out.tobytes()
            else:
                enc_rows: dict[int, list[int]] = {}
                for s, row in mixed_rows:
                    enc_rows.setdefault(s.pt, []).append(row)
                codes = np.empty((out.shape[0], FRAME), dtype=np.uint8)
                for pt, rows in enc_rows.items():
                    codes[rows] = np.take(_ENCODE[pt], out[rows].view(np.uint16))   # take(): ~2x fancy indexing
                buf = codes.tobytes()
            # One copy to bytes, then slices: cheaper than a row view's tobytes() per leg.
            for s, row in mixed_rows:
                outgoing.append((s, buf[row * FRAME:(row + 1) * FRAME]))
        for s, payload in outgoing:
            try:
                s._send_audio(n, payload)
            except OSError:
                s.counters["send_errors"] += 1
