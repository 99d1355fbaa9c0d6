"""WebRtcLeg over real sockets: an aiortc peer plays "the browser", a plain UDP socket plays the phone.

browser (440 Hz) <-ICE/DTLS-SRTP-> WebRtcLeg <-PCMU-> engine room <-PCMU-> phone (1000 Hz)
"""

from __future__ import annotations

import asyncio
import fractions
import random
import re

import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from aiortc.rtcrtpsender import RTCRtpSender

from media import g711
from media.engine import MediaEngine
from media.rtp import build_rtp, is_rtcp, parse_rtp
from media.wav import dominant_frequency, tone
from softswitch.b2bua.webrtc import WebRtcLeg, restrict_host_candidates

try:
    import uvloop
except ImportError:     # pragma: no cover
    uvloop = None


def run(coro_fn, loop_kind: str = "asyncio", timeout: float = 15.0):
    if loop_kind == "uvloop" and uvloop is None:
        pytest.skip("uvloop not installed")
    factory = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(coro_fn(), timeout))


class ToneTrack(AudioStreamTrack):
    """440 Hz, s16 mono 48 kHz, 20 ms frames, paced on an absolute 20 ms schedule."""

    def __init__(self, freq: float = 440.0) -> None:
        super().__init__()
        self.freq = freq
        self.n = 0

    async def recv(self) -> av.AudioFrame:
        rate, samples = 48000, 960
        loop = asyncio.get_running_loop()
        if self.n == 0:
            self.t0 = loop.time()
        else:
            await asyncio.sleep(max(0.0, self.t0 + self.n / rate - loop.time()))
        t = (self.n + np.arange(samples)) / rate
        self.n += samples
        pcm = (0.4 * 32767 * np.sin(2 * np.pi * self.freq * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = self.n - samples
        frame.time_base = fractions.Fraction(1, rate)
        return frame


class Browser:
    """An aiortc peer standing in for the browser: sends a tone, records what it hears at 8 kHz mono."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = ToneTrack()
        self.heard: list[np.ndarray] = []
        self.tasks: list[asyncio.Task] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track) -> None:
        if track.kind == "audio":
            self.tasks.append(asyncio.get_running_loop().create_task(self._record(track)))

    async def _record(self, track) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=8000)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            frame.pts = None
            for f in resampler.resample(frame):
                self.heard.append(f.to_ndarray().reshape(-1))

    def samples(self) -> np.ndarray:
        return np.concatenate(self.heard) if self.heard else np.zeros(0, np.int16)

    def prefer(self, transceiver, codec: str | None) -> None:
        if codec is not None:
            caps = RTCRtpSender.getCapabilities("audio").codecs
            transceiver.setCodecPreferences([c for c in caps if c.mimeType == f"audio/{codec}"])

    async def close(self) -> None:
        await self.pc.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class Phone(asyncio.DatagramProtocol):
    """A plain RTP phone: sends 1000 Hz PCMU every 20 ms, keeps the payloads it receives."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.transport = None

    def datagram_received(self, data, addr) -> None:
        if not is_rtcp(data):
            p = parse_rtp(data)
            if p.payload_type == 0:
                self.received.append(p.payload)

    async def send_tone(self, dest, freq: float = 1000.0) -> None:
        pcm = tone(freq, 10.0, amplitude=0.4)
        ssrc, seq, ts = random.getrandbits(32), random.getrandbits(16), random.getrandbits(32)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(len(pcm) // 160):
            payload = g711.ulaw_encode(pcm[i * 160:(i + 1) * 160]).tobytes()
            self.transport.sendto(build_rtp(0, seq + i, ts + 160 * i, ssrc, payload, marker=i == 0), dest)
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.02 - loop.time()))

    def samples(self) -> np.ndarray:
        return g711.ulaw_decode(b"".join(self.received))


async def until(pred, timeout: float = 30.0) -> None:
    """Wait for a condition; the timeout only bounds a hang."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def candidate_addresses(sdp: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"a=candidate:\S+ \d+ udp \d+ (\S+) \d+ typ host", sdp)}


def assert_tone(samples: np.ndarray, freq: float) -> None:
    last = samples[-8000:].astype(np.float64)          # the last second, well after setup
    assert len(last) == 8000, f"only {len(samples)} samples"
    rms = np.sqrt(np.mean(last ** 2))
    assert rms > 1000, f"too quiet (rms {rms:.0f})"
    f = dominant_frequency(last, 8000)
    assert abs(f - freq) < 15, f"dominant {f:.1f} Hz, expected {freq}"


async def _call(direction: str, codec: str | None) -> None:
    loop = asyncio.get_running_loop()
    engine = MediaEngine(loop, address="127.0.0.1", port_range=(40000, 49999))
    await engine.start()
    leg = browser = phone_transport = None
    try:
        leg = await WebRtcLeg.create(engine)
        browser = Browser()
        if direction == "offer":                             # the switch calls the browser
            offer = (await leg.offer()).decode()
            assert candidate_addresses(offer) == {"127.0.0.1"}
            await browser.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            tr = next(t for t in browser.pc.getTransceivers() if t.kind == "audio")
            browser.prefer(tr, codec)
            browser.pc.addTrack(browser.track)
            restrict_host_candidates(browser.pc, ["127.0.0.1"])
            await browser.pc.setLocalDescription(await browser.pc.createAnswer())
            await leg.accept_answer(browser.pc.localDescription.sdp.encode())
        else:                                                # the browser calls
            tr = browser.pc.addTransceiver(browser.track, direction="sendrecv")
            browser.prefer(tr, codec)
            restrict_host_candidates(browser.pc, ["127.0.0.1"])
            await browser.pc.setLocalDescription(await browser.pc.createOffer())
            answer = (await leg.answer(browser.pc.localDescription.sdp.encode())).decode()
            assert candidate_addresses(answer) == {"127.0.0.1"}
            await browser.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        assert leg.codec == (codec or "opus")

        phone = Phone()
        phone_transport, _ = await loop.create_datagram_endpoint(lambda: phone, local_addr=("127.0.0.1", 0))
        phone.transport = phone_transport
        other = await engine.open_stream()
        other.set_remote("127.0.0.1", phone_transport.get_extra_info("sockname")[1], pt=0)
        engine.join(leg.stream, "room")
        engine.join(other, "room")
        sender = loop.create_task(phone.send_tone(("127.0.0.1", other.port)))

        await until(lambda: leg.state == "connected" and browser.pc.connectionState == "connected")
        # Two seconds of audio heard each way (the tone is checked in the last one), and more than 50 frames
        # through every hop, however long that takes on a busy host (the phone sends for 10 s, the browser
        # as long as it lives).
        await until(lambda: sum(len(x) for x in browser.heard) >= 16000 and len(phone.received) >= 100
                    and min(leg.stats[k] for k in ("frames_from_browser", "rtp_to_engine", "frames_to_browser",
                                                   "rtp_from_engine")) > 50)
        sender.cancel()

        assert_tone(browser.samples(), 1000.0)     # phone -> engine -> leg -> browser
        assert_tone(phone.samples(), 440.0)        # browser -> leg -> engine -> phone
        s = leg.stats
        assert s["frames_from_browser"] > 50 and s["rtp_to_engine"] > 50, s
        assert s["frames_to_browser"] > 50 and s["rtp_from_engine"] > 50, s

        stream, pc = leg.stream, leg.pc
        await leg.close()
        assert stream.closed and stream not in engine.streams
        assert pc.connectionState == "closed"
        assert leg._transport.is_closing() and leg._rtcp_transport.is_closing()
        await leg.close()                           # idempotent
    finally:
        if leg is not None:
            await leg.close()
        if browser is not None:
            await browser.close()
        if phone_transport is not None:
            phone_transport.close()
        await engine.stop()


@pytest.mark.parametrize("direction,codec,loop_kind", [
    ("offer", None, "asyncio"),        # leg offers, browser answers with its preference (Opus)
    ("answer", "PCMU", "uvloop"),      # browser offers PCMU only, leg answers
])
def test_call_both_ways(direction, codec, loop_kind):
    run(lambda: _call(direction, codec), loop_kind)


def test_video_offer_is_rejected_and_close_releases():
    async def main():
        engine = MediaEngine(asyncio.get_running_loop(), address="127.0.0.1", port_range=(40000, 49999))
        await engine.start()
        leg = await WebRtcLeg.create(engine)
        browser = Browser()
        try:
            browser.pc.addTransceiver(browser.track, direction="sendrecv")
            browser.pc.addTransceiver("video", direction="sendrecv")
            restrict_host_candidates(browser.pc, ["127.0.0.1"])
            await browser.pc.setLocalDescription(await browser.pc.createOffer())
            answer = (await leg.answer(browser.pc.localDescription.sdp.encode())).decode()
            assert re.search(r"^m=audio [1-9]\d* ", answer, re.M)
            assert re.search(r"^m=video 0 ", answer, re.M)
            assert leg.rejected_mids == ["1"]
            assert re.search(r"^a=group:BUNDLE 0\r?$", answer, re.M)
            await browser.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            await until(lambda: leg.state == "connected")
            with pytest.raises(RuntimeError):
                await leg.offer()                   # one negotiation per leg
        finally:
            stream = leg.stream
            await leg.close()
            await browser.close()
            assert stream.closed and not engine.streams
            await engine.stop()

    run(main)
