"""WebRtcLeg renegotiation over real sockets, an aiortc peer playing the browser (Chromium does the same in
test_video_switch.py): a voice call gets video from the browser's re-offer (reanswer), loses it from the leg's
own re-offer (reoffer, video inactive) and gets it back; an unusable re-offer is refused before anything
changes."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack

from media.engine import MediaEngine
from softswitch.b2bua.webrtc import WebRtcLeg, restrict_host_candidates
from tests.integration.test_webrtc import Browser, run, until


class VideoBrowser(Browser):
    """The aiortc browser with max-bundle (as Chromium bundles), counting the video frames it decodes."""

    def __init__(self) -> None:
        super().__init__()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.pc.on("track", self._on_track)
        self.video_frames = 0

    def _on_track(self, track) -> None:
        super()._on_track(track)
        if track.kind == "video":
            self.tasks.append(asyncio.get_running_loop().create_task(self._count(track)))

    async def _count(self, track) -> None:
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            self.video_frames += 1

    async def answer(self, offer: bytes) -> bytes:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer.decode(), "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp.encode()


def test_a_voice_call_switched_to_video_and_back():
    async def main():
        engine = MediaEngine(asyncio.get_running_loop(), address="127.0.0.1", port_range=(40000, 49999))
        await engine.start()
        leg, browser = await WebRtcLeg.create(engine), VideoBrowser()
        camera = VideoStreamTrack()
        try:
            # a voice call, the browser calling
            browser.pc.addTransceiver(browser.track, direction="sendrecv")
            restrict_host_candidates(browser.pc, ["127.0.0.1"])
            await browser.pc.setLocalDescription(await browser.pc.createOffer())
            answer = await leg.answer(browser.pc.localDescription.sdp.encode())
            await browser.pc.setRemoteDescription(RTCSessionDescription(answer.decode(), "answer"))
            await until(lambda: leg.state == "connected" and leg.stats["frames_from_browser"] > 5)
            assert not leg.has_video and leg.remote_video is None

            # hostile re-offers are refused before anything changes
            for junk in (b"", b"v=0\r\n", b"m=video\r\n", "m=audio 9 RTP/AVP 0\r\nc=IN IP4 x\r\n".encode() * 3):
                with pytest.raises(Exception):
                    leg.check_offer(junk)

            # the browser adds its camera and re-offers: the leg takes the video (sendrecv)
            browser.pc.addTrack(camera)
            await browser.pc.setLocalDescription(await browser.pc.createOffer())
            offer = browser.pc.localDescription.sdp.encode()
            leg.check_offer(offer)
            answer = await leg.reanswer(offer, video=True)
            assert re.search(rb"^m=video [1-9]\d* ", answer, re.M) and b"a=sendrecv" in answer.split(b"m=video")[1]
            await browser.pc.setRemoteDescription(RTCSessionDescription(answer.decode(), "answer"))
            assert leg.has_video and leg.remote_video is not None
            await until(lambda: leg.stats["video_frames_from_browser"] > 5)
            frames = leg.stats["frames_from_browser"]
            await until(lambda: leg.stats["frames_from_browser"] > frames + 5)     # audio goes on

            # the leg's own video to the browser: its received video, looped back through the feed
            assert leg.send_video(leg.remote_video)
            await until(lambda: browser.video_frames > 5)

            # back to voice, from the leg's side (the other browser of the call switched)
            offer = await leg.reoffer(video=False)
            assert b"a=inactive" in offer.split(b"m=video")[1]
            await leg.accept_answer(await browser.answer(offer))
            assert not leg.has_video
            await asyncio.sleep(0.3)                # frames in flight
            seen = browser.video_frames
            await asyncio.sleep(0.5)
            assert browser.video_frames == seen, "video still sent after the switch to voice"

            # and video again, the same m-line; the browser decodes frames again
            offer = await leg.reoffer(video=True)
            assert offer.count(b"m=video") == 1
            await leg.accept_answer(await browser.answer(offer))
            assert leg.has_video and leg.send_video(leg.remote_video)
            await until(lambda: browser.video_frames > seen + 5)
        finally:
            camera.stop()
            stream = leg.stream
            await leg.close()
            await browser.close()
            assert stream.closed and not engine.streams
            await engine.stop()

    run(main, timeout=40)
