"""A WebRTC (browser) leg bridged to the RTP media engine.

aiortc does ICE, DTLS-SRTP and the codecs (Opus / PCMU / PCMA, whatever the browser takes); this module
only moves decoded audio between the peer connection and an ordinary engine ``Stream``::

    browser <-- ICE/DTLS-SRTP (aiortc) --> WebRtcLeg <-- plain PCMU RTP over loopback UDP --> engine Stream

Usage (inside the running loop that also runs the engine)::

    leg = await WebRtcLeg.create(engine)          # leg.stream is what the B2BUA joins into a room
    sdp = await leg.offer()                       # the switch calls the agent's browser ...
    await leg.accept_answer(browser_answer)
    # ... or the browser calls:  sdp = await leg.answer(browser_offer)
    engine.join(leg.stream, "call-1")
    await leg.close()

Documented choices:

* ICE: no STUN/TURN servers, host candidates only, gathered on ``address`` alone (aioice normally skips
  127.0.0.1 and gathers on every interface; each gatherer of the peer connection is restricted per
  instance, nothing global is patched). ``address="0.0.0.0"`` gathers on every IPv4 interface plus
  127.0.0.1. No trickle: the SDP returned by offer()/answer() carries all candidates.
* The gateway: one UDP socket on the engine's host (loopback when the engine is bound to a wildcard),
  on an even port with port+1 bound as an RTCP sink (the engine's periodic SR goes there and is dropped).
  ``self.stream`` is pointed at it with PCMU (pt 0); everything to/from the engine is 20 ms PCMU frames.
* Browser -> engine: each decoded av.AudioFrame (any rate/layout) is resampled to 8 kHz mono s16,
  cut into 160-sample frames and sent as PCMU RTP (own SSRC, consecutive seq, timestamp += 160; marker
  on the first packet). Sending is paced by the arrival of the browser's audio.
* Engine -> browser: received RTP (PCMU or PCMA) is decoded into a sample FIFO capped at
  ``MAX_BUFFER_MS`` (oldest samples dropped on overflow, counted as ``overflow_samples``). The outgoing
  track is paced on an absolute 20 ms schedule (like aiortc's AudioStreamTrack) and sends silence when
  fewer than 160 samples are buffered (``silence_to_browser``). It waits for ``PREBUFFER`` frames after
  an underrun before playing again, which absorbs the ticker-vs-track phase jitter.
* Video is relayed browser to browser, never through the engine, and only when asked for:
  ``offer(video=True)`` adds one video transceiver (sendrecv) and ``answer(offer, video=True)`` accepts the
  first video m-line of a browser's offer (sendrecv). Without ``video=True`` video m-lines are rejected.
  The video the browser sends is decoded by aiortc and exposed as ``remote_video`` (a track; a drain task
  keeps reading it through a shared ``MediaRelay`` so frames never pile up while nobody watches it).
  ``send_video(track)`` sends another leg's ``remote_video`` to this browser (the sender holds a VideoFeed,
  webrtc_video.py, fed by a non-buffered relay subscription: the latest frame only, aiortc re-encodes it);
  until then the video sender sends nothing. Further audio/video m-lines (and any other kind) are answered rejected (port 0,
  removed from the BUNDLE group, the transceiver set inactive); ``rejected_mids`` lists what was refused.
* Renegotiation (voice <-> video, re-INVITEs): ``reoffer(video)`` / ``reanswer(offer, video)`` keep audio and
  add the video transceiver (max-bundle: it shares the one ICE/DTLS transport) or set it inactive. aiortc has no
  rollback: after a re-offer the browser refuses, further renegotiation raises RuntimeError.
* DTMF from the browser (RFC 4733, e.g. RTCDTMFSender / JsSIP sendDTMF RFC2833): aiortc knows no
  telephone-event, so the audio m-line of our SDP gets one (8 kHz; in an answer the browser's payload type,
  in an offer one no bundled m-line uses), and the events are taken off the decrypted RTP before aiortc's
  router (which would drop them) and sent to the engine in the gateway's own sequence and timestamp space as
  payload type EVENT_PT, which the engine stream knows: it forwards them to the other party like any phone's.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import socket

import av
from aioice.ice import get_host_addresses
import numpy as np
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media import g711
from media.rtp import RtpError, build_rtp, is_rtcp, parse_rtp
from .webrtc_video import RELAY as _RELAY, VideoFeed
from .webrtc_sdp import _add_telephone_event, _reject_mids, _telephone_event_pt, keep_negotiated, video_offered

__all__ = ["WebRtcLeg", "host_addresses", "restrict_host_candidates", "video_offered",
           "_add_telephone_event", "_telephone_event_pt"]

log = logging.getLogger("softswitch.b2bua.webrtc")

RATE = 8000
FRAME = 160                     # samples per 20 ms at 8 kHz
PTIME = FRAME / RATE
TIME_BASE = fractions.Fraction(1, RATE)
MAX_BUFFER_MS = 120             # engine -> browser FIFO cap
PREBUFFER = 2                   # frames to collect after an underrun before playing again
_DECODE = {0: g711.ULAW_DECODE, 8: g711.ALAW_DECODE}
EVENT_PT = 101                  # telephone-event between the gateway and the engine
_WILDCARDS = ("", "0.0.0.0", "::")


# --- ICE host candidates ---------------------------------------------------------------------------------

def host_addresses(address: str) -> list[str]:
    """The IPv4 addresses to gather host candidates on for a leg bound to `address`."""
    if address in _WILDCARDS:
        addrs = get_host_addresses(use_ipv4=True, use_ipv6=False)
        return ["127.0.0.1"] + [a for a in addrs if a != "127.0.0.1"]
    return [address]


def restrict_host_candidates(pc: RTCPeerConnection, addresses: list[str]) -> None:
    """Make every not-yet-gathered ICE gatherer of `pc` gather host candidates on `addresses` only.

    aiortc exposes no such option, so each gatherer's aioice Connection gets an instance-level wrapper of
    ``get_component_candidates`` (the one place the address list is used). Call it after transceivers
    exist (addTransceiver / setRemoteDescription) and before setLocalDescription.
    """
    transports = [t.sender.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for dtls in transports:
        try:
            conn = dtls.transport.iceGatherer._connection
        except AttributeError:      # pragma: no cover - aiortc internals changed
            log.warning("webrtc: cannot restrict ICE host addresses with this aiortc version")
            return
        if getattr(conn, "_softswitch_addresses", None) is not None:
            conn._softswitch_addresses = list(addresses)
            continue
        original = conn.get_component_candidates

        async def get_component_candidates(component, addresses=None, timeout=5, *, _orig=original,
                                           _conn=conn):
            return await _orig(component=component, addresses=list(_conn._softswitch_addresses),
                               timeout=timeout)

        conn._softswitch_addresses = list(addresses)
        conn.get_component_candidates = get_component_candidates


# --- the two directions of audio -------------------------------------------------------------------------

class EngineAudioTrack(MediaStreamTrack):
    """What the engine sends, as 20 ms 8 kHz mono s16 av.AudioFrames for aiortc to encode."""

    kind = "audio"

    def __init__(self, leg: WebRtcLeg) -> None:
        super().__init__()
        self._leg = leg
        self._buf = bytearray()         # int16 little/native-endian samples
        self._max = MAX_BUFFER_MS * RATE // 1000 * 2
        self._start: float | None = None
        self._pts = 0
        self._primed = False

    def push(self, samples: np.ndarray) -> None:
        self._buf += samples.astype(np.int16, copy=False).tobytes()
        extra = len(self._buf) - self._max
        if extra > 0:
            del self._buf[:extra]
            self._leg.stats["overflow_samples"] += extra // 2

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
            self._pts = 0
        else:
            self._pts += FRAME
            wait = self._start + self._pts / RATE - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.readyState != "live":
                raise MediaStreamError
        n = FRAME * 2
        if not self._primed and len(self._buf) >= PREBUFFER * n:
            self._primed = True
        if self._primed and len(self._buf) >= n:
            data = bytes(self._buf[:n])
            del self._buf[:n]
        else:
            self._primed = False
            data = bytes(n)
            self._leg.stats["silence_to_browser"] += 1
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(data)
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self._leg.stats["frames_to_browser"] += 1
        return frame


class _Gateway(asyncio.DatagramProtocol):
    def __init__(self, leg: WebRtcLeg) -> None:
        self.leg = leg

    def datagram_received(self, data: bytes, addr) -> None:
        leg = self.leg
        if leg.closed or is_rtcp(data):
            return
        try:
            p = parse_rtp(data)
        except RtpError:
            leg.stats["garbage_from_engine"] += 1
            return
        table = _DECODE.get(p.payload_type)
        if table is None:
            leg.stats["garbage_from_engine"] += 1
            return
        leg.stats["rtp_from_engine"] += 1
        leg._out_track.push(np.take(table, np.frombuffer(p.payload, dtype=np.uint8)))

    def error_received(self, exc) -> None:
        self.leg.stats["send_errors"] += 1


class _Sink(asyncio.DatagramProtocol):
    """Port+1 of the gateway: swallows the engine's RTCP."""


def _bind_pair(host: str) -> tuple[socket.socket, socket.socket]:
    """An even UDP port and port+1 on `host` (falls back to any port without an RTCP sink)."""
    for _ in range(32):
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind((host, 0))
        port = a.getsockname()[1]
        if port & 1 == 0 and port < 65535:
            b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                b.bind((host, port + 1))
            except OSError:
                b.close()
            else:
                a.setblocking(False)
                b.setblocking(False)
                return a, b
        a.close()
    raise OSError(f"no free even UDP port pair on {host}")


class WebRtcLeg:
    """One browser call leg: an aiortc peer connection bridged to an engine audio Stream."""

    def __init__(self, engine, address: str = "127.0.0.1") -> None:
        self.engine = engine
        self.address = address
        self.stream = None
        self.pc: RTCPeerConnection | None = None
        self.gateway: tuple[str, int] | None = None
        self.closed = False
        self.rejected_mids: list[str] = []
        self.stats = dict(frames_from_browser=0, frames_to_browser=0, rtp_to_engine=0, rtp_from_engine=0,
                          silence_to_browser=0, overflow_samples=0, garbage_from_engine=0, send_errors=0,
                          video_frames_from_browser=0, dtmf_to_engine=0)
        self.remote_video: MediaStreamTrack | None = None     # the browser's video, decoded (see send_video)
        self._video = None                                    # the video transceiver, when video is negotiated
        self._audio = None                                    # the audio transceiver bridged to the engine
        self._event_pt: int | None = None                     # telephone-event payload type in our SDP
        self._video_out = VideoFeed()                         # what the video sender sends (see send_video)
        self._out_track = EngineAudioTrack(self)
        self._transport = None
        self._rtcp_transport = None
        self._engine_addr: tuple[str, int] | None = None
        self._pump_tasks: set[asyncio.Task] = set()
        self._negotiated = False
        # browser -> engine RTP state
        self._ssrc = int(np.random.randint(0, 2**32, dtype=np.uint64))
        self._seq = int(np.random.randint(0, 2**16))
        self._ts = int(np.random.randint(0, 2**32, dtype=np.uint64))
        self._first = True
        self._event_in: int | None = None       # the telephone-event payload type the browser sends
        self._event_src = None                  # (browser timestamp, our timestamp) of the current event
        self._event_done = None

    def __repr__(self) -> str:
        state = self.pc.connectionState if self.pc is not None else "-"
        return f"<WebRtcLeg {state} stream={self.stream!r} gateway={self.gateway}>"

    @classmethod
    async def create(cls, engine, address: str = "127.0.0.1") -> WebRtcLeg:
        leg = cls(engine, address)
        try:
            await leg._open()
        except BaseException:
            await leg.close()
            raise
        return leg

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self.stream = await self.engine.open_stream()
        host = self.engine.address if self.engine.address not in _WILDCARDS else "127.0.0.1"
        rtp, rtcp = _bind_pair(host)
        self._transport, _ = await loop.create_datagram_endpoint(lambda: _Gateway(self), sock=rtp)
        self._rtcp_transport, _ = await loop.create_datagram_endpoint(_Sink, sock=rtcp)
        self.gateway = self._transport.get_extra_info("sockname")[:2]
        self._engine_addr = (host, self.stream.port)
        self.stream.set_remote(self.gateway[0], self.gateway[1], pt=0, event_pt=EVENT_PT)
        # max-bundle: a video transceiver added later (a voice call turned into video) shares the one ICE/DTLS
        # transport instead of gathering its own
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    # --- signalling ----------------------------------------------------------------------------------

    async def offer(self, video: bool = False) -> bytes:
        """Our SDP offer (all candidates included) for the browser; then call accept_answer()."""
        self._check_fresh()
        audio = self._audio = self.pc.addTransceiver(self._out_track, direction="sendrecv")
        if video:       # relayed to/from the other browser of the call (send_video), not the engine
            self._video = self.pc.addTransceiver("video", direction="sendrecv")
        restrict_host_candidates(self.pc, host_addresses(self.address))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        text, pt = _add_telephone_event(self.pc.localDescription.sdp)
        self._event_pt = pt
        if pt is not None:
            self._tap_events(audio)
        return text.encode()

    async def accept_answer(self, sdp: bytes) -> None:
        text = sdp.decode() if isinstance(sdp, (bytes, bytearray)) else sdp
        self._event_in = _telephone_event_pt(text)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="answer"))

    async def answer(self, offer_sdp: bytes, video: bool = False) -> bytes:
        """Answer a browser's offer: first audio m-line bridged; with ``video=True`` the first video m-line is
        accepted (sendrecv, see send_video); any other m-line is rejected."""
        self._check_fresh()
        text = offer_sdp.decode() if isinstance(offer_sdp, (bytes, bytearray)) else offer_sdp
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="offer"))
        audio = None
        rejected = set()
        for t in self.pc.getTransceivers():
            if t.kind == "audio" and audio is None:
                audio = t
            elif video and t.kind == "video" and self._video is None:
                self._video = t
                t.direction = "sendrecv"        # no track yet: sends nothing until send_video()
            else:
                t.direction = "inactive"
                rejected.add(t.mid)
        if audio is None:
            raise ValueError("the offer has no audio m-line")
        self._audio = audio
        self.pc.addTrack(self._out_track)          # reuses the audio transceiver, direction -> sendrecv
        restrict_host_candidates(self.pc, host_addresses(self.address))
        return await self._local_answer(text, rejected)

    # --- renegotiation: a call switched between voice and video ----------------------------------------
    async def reoffer(self, video: bool) -> bytes:
        """A new offer of ours on the established connection, for a re-INVITE: the same audio, and video
        sendrecv (a video transceiver added on a voice call, or the earlier one again) or inactive (back to
        voice: nothing is sent or expected on it). Then accept_answer() with the browser's answer."""
        self._check_stable()
        t = self._video
        if video and t is None:
            t = self._video = self.pc.addTransceiver("video", direction="sendrecv")
        if t is not None:
            t.direction = "sendrecv" if video else "inactive"
        if not video:
            self._stop_video_out()
        offer = keep_negotiated((await self.pc.createOffer()).sdp, self.pc.localDescription.sdp,
                                self.pc.remoteDescription.sdp)
        await self.pc.setLocalDescription(RTCSessionDescription(sdp=offer, type="offer"))
        text = _reject_mids(self.pc.localDescription.sdp, set(self.rejected_mids))
        text, _ = _add_telephone_event(text, self._event_pt)
        return text.encode()

    async def reanswer(self, offer_sdp: bytes, video: bool) -> bytes:
        """Answer the browser's re-offer on the established connection: audio as before; its first video m-line
        (added now, or the one it had) sendrecv with ``video=True``, inactive without; m-lines refused before,
        or any further ones, stay refused."""
        self._check_stable()
        text = offer_sdp.decode() if isinstance(offer_sdp, (bytes, bytearray)) else offer_sdp
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="offer"))
        rejected = set(self.rejected_mids)
        for t in self.pc.getTransceivers():
            if t is self._audio or t.mid in rejected:
                continue
            if t.kind == "video" and self._video in (None, t):
                self._video = t
                t.direction = "sendrecv" if video else "inactive"
            else:
                t.direction = "inactive"
                rejected.add(t.mid)
        if not video:
            self._stop_video_out()
        return await self._local_answer(text, rejected)

    async def _local_answer(self, offer_text: str, rejected: set) -> bytes:
        """Our answer to the offer just set: the `rejected` m-lines refused, and the offer's telephone-event
        payload type taken for the browser's digits (tapped off the audio transport)."""
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self.rejected_mids = sorted(m for m in rejected if m is not None)
        answer = _reject_mids(self.pc.localDescription.sdp, set(self.rejected_mids))
        offered = _telephone_event_pt(offer_text)
        if offered is not None:
            answer, self._event_in = _add_telephone_event(answer, offered)
            self._event_pt = self._event_in
            if self._audio is not None:
                self._tap_events(self._audio)
        return answer.encode()

    def check_offer(self, offer_sdp: bytes) -> None:
        """Raise (ValueError or a parse error) unless reanswer() can take this offer: checked before the other side
        of the call is asked to change anything."""
        desc = aiortc_sdp.SessionDescription.parse(offer_sdp.decode("latin-1"))
        if not desc.media or any(m.port and not (m.ice.usernameFragment and m.ice.password) for m in desc.media):
            raise ValueError("the offer has no media or no ICE credentials")

    def _check_stable(self) -> None:
        if self.closed:
            raise RuntimeError("leg is closed")
        if not self._negotiated or self.pc.signalingState != "stable":
            raise RuntimeError(f"cannot renegotiate in signalling state {self.pc.signalingState}")

    def _stop_video_out(self) -> None:
        """Send no more video to this browser (nothing is encoded meanwhile)."""
        self._video_out.set_source(None)

    def _check_fresh(self) -> None:
        if self.closed:
            raise RuntimeError("leg is closed")
        if self._negotiated:
            raise RuntimeError("the first offer/answer is done: reoffer() or reanswer() renegotiates")
        self._negotiated = True

    @property
    def codec(self) -> str | None:
        """The audio codec negotiated with the browser ("opus", "PCMU", "PCMA"), once both SDPs are in."""
        pc = self.pc
        if pc is None or pc.remoteDescription is None or pc.localDescription is None:
            return None
        desc = pc.localDescription if pc.localDescription.type == "answer" else pc.remoteDescription
        for m in aiortc_sdp.SessionDescription.parse(desc.sdp).media:
            if m.kind == "audio" and m.port and m.rtp.codecs:
                return m.rtp.codecs[0].mimeType.split("/", 1)[1]
        return None

    @property
    def has_video(self) -> bool:
        """Video was negotiated with this browser (a video transceiver whose m-line was not refused)."""
        t = self._video
        return t is not None and t.currentDirection not in (None, "inactive") and not t.stopped

    def send_video(self, track: MediaStreamTrack | None) -> bool:
        """Send `track` (typically the other browser leg's ``remote_video``) to this browser; None stops.

        The sender holds this leg's VideoFeed, whose source is `track` subscribed through the shared MediaRelay
        without buffering (latest frame only), so one source can feed several legs. Returns False when this
        leg has no video."""
        if self.closed or not self.has_video:
            return False
        if self._video.sender.track is not self._video_out:
            self._video.sender.replaceTrack(self._video_out)
        self._video_out.set_source(track)
        return True

    @property
    def state(self) -> str:
        return self.pc.connectionState if self.pc is not None else "closed"

    # --- media ---------------------------------------------------------------------------------------

    def _on_state(self) -> None:
        log.debug("webrtc: %r connection state %s", self, self.pc.connectionState)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if self.closed:
            return
        if track.kind == "video":
            if self.remote_video is not None:
                return
            self.remote_video = track
            coro = self._drain_video(track)
        elif track.kind == "audio":
            coro = self._pump(track)
        else:
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._pump_tasks.add(task)
        task.add_done_callback(self._pump_tasks.discard)

    async def _pump(self, track: MediaStreamTrack) -> None:
        """Browser audio -> 8 kHz mono -> 20 ms PCMU RTP to the engine stream."""
        resampler = None
        pending = np.zeros(0, dtype=np.int16)
        while not self.closed:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.stats["frames_from_browser"] += 1
            frame.pts = None            # resample by sample count; network pts gaps are not our clock
            try:
                if resampler is None:
                    raise ValueError
                out = resampler.resample(frame)
            except ValueError:          # first frame, or the input format changed (codec switch)
                resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
                out = resampler.resample(frame)
            chunks = [f.to_ndarray().reshape(-1) for f in out]
            if not chunks:
                continue
            pending = np.concatenate([pending, *chunks])
            n = len(pending) // FRAME
            for i in range(n):
                self._send_to_engine(pending[i * FRAME:(i + 1) * FRAME])
            pending = pending[n * FRAME:]

    async def _drain_video(self, track: MediaStreamTrack) -> None:
        """Keep the browser's video flowing through the relay (and counted) whether or not anyone sends it on."""
        sub = _RELAY.subscribe(track, buffered=False)
        try:
            while not self.closed:
                try:
                    await sub.recv()
                except MediaStreamError:
                    return
                self.stats["video_frames_from_browser"] += 1
        finally:
            sub.stop()

    def _send_to_engine(self, samples: np.ndarray) -> None:
        if self.closed or self._transport is None:
            return
        pkt = build_rtp(0, self._seq, self._ts, self._ssrc, g711.ulaw_encode(samples).tobytes(),
                        marker=self._first)
        self._first = False
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + FRAME) & 0xFFFFFFFF
        try:
            self._transport.sendto(pkt, self._engine_addr)
        except OSError:
            self.stats["send_errors"] += 1
            return
        self.stats["rtp_to_engine"] += 1

    def _tap_events(self, audio) -> None:
        """Take the browser's telephone-event packets off the (bundle) DTLS transport before aiortc routes
        them: an instance-level wrapper of that transport's _handle_rtp_data, nothing global."""
        dtls = audio.receiver.transport
        original = getattr(dtls, "_handle_rtp_data", None)
        if original is None or getattr(dtls, "_softswitch_events", False):   # pragma: no cover - aiortc changed
            return

        async def handle(data: bytes, arrival_time_ms: int, *, _orig=original) -> None:
            if len(data) > 12 and self._event_in is not None and data[1] & 0x7F == self._event_in:
                self._event_from_browser(data)
                return
            await _orig(data, arrival_time_ms=arrival_time_ms)

        dtls._handle_rtp_data = handle
        dtls._softswitch_events = True

    def _event_from_browser(self, data: bytes) -> None:
        """One RFC 4733 packet from the browser -> the engine, in the gateway's own RTP stream: every packet of
        an event carries the timestamp our audio had when it began; after its end the audio clock moves on by
        the event's duration (the browser sent no audio meanwhile)."""
        if self.closed or self._transport is None:
            return
        try:
            p = parse_rtp(data)
        except RtpError:
            return
        if len(p.payload) < 4:
            return
        if self._event_src is None or self._event_src[0] != p.timestamp:
            self._event_src = (p.timestamp, self._ts)
        ts = self._event_src[1]
        pkt = build_rtp(EVENT_PT, self._seq, ts, self._ssrc, bytes(p.payload[:4]), marker=p.marker)
        self._seq = (self._seq + 1) & 0xFFFF
        if p.payload[1] & 0x80 and self._event_done != p.timestamp:     # the end (sent three times)
            self._event_done = p.timestamp
            self._ts = (ts + int.from_bytes(p.payload[2:4], "big")) & 0xFFFFFFFF
        try:
            self._transport.sendto(pkt, self._engine_addr)
        except OSError:
            self.stats["send_errors"] += 1
            return
        self.stats["dtmf_to_engine"] += 1

    # --- teardown ------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the peer connection, the gateway sockets and the engine stream (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._out_track.stop()
        self._video_out.stop()
        for task in list(self._pump_tasks):
            task.cancel()
        if self._pump_tasks:
            await asyncio.gather(*self._pump_tasks, return_exceptions=True)
        try:
            if self.pc is not None:
                await self.pc.close()
        finally:
            for t in (self._transport, self._rtcp_transport):
                if t is not None:
                    t.close()
            if self.stream is not None and not self.stream.closed:
                self.stream.close()
