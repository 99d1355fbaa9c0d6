"""The pieces of a call switched between voice and video on a WebRTC leg that need no browser: the SDP edits of
a re-offer (b2bua/webrtc_sdp.py), the re-INVITE test of b2bua/video_switch.py and the switchable video feed
(b2bua/webrtc_video.py). tests/integration/test_video_switch.py runs the whole switch in Chromium."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from softswitch.b2bua.video_switch import switches_video
from softswitch.b2bua.webrtc_sdp import keep_negotiated, video_offered
from softswitch.b2bua.webrtc_video import VideoFeed

AUDIO = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendrecv\r\n"
VIDEO = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=%s\r\n"
HEAD = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"


def test_video_offered_reads_the_first_video_m_line():
    assert video_offered(HEAD + AUDIO + VIDEO % "sendrecv")
    assert video_offered(HEAD + AUDIO + VIDEO % "recvonly")
    assert not video_offered(HEAD + AUDIO + VIDEO % "inactive")
    assert not video_offered(HEAD + AUDIO + (VIDEO % "sendrecv").replace("m=video 9", "m=video 0"))
    assert not video_offered(HEAD + AUDIO)
    assert not video_offered("")
    assert not video_offered("m=video\r\n\x00garbage")             # hostile: no port field, no crash
    # a second video m-line does not count: only the first one is ever relayed
    assert not video_offered(HEAD + AUDIO + VIDEO % "inactive" + (VIDEO % "sendrecv").replace("mid:1", "mid:2"))


# What the browser offered first (its payload types and extension ids), our answer to it, and aiortc's fresh
# re-offer with its own defaults: opus 96 instead of 111, mid as extension 1 where the browser has 4.
BROWSER = HEAD + ("m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
                  "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:9 urn:example:only-the-browser\r\n"
                  "a=mid:0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n")
OURS = HEAD + ("m=audio 40000 UDP/TLS/RTP/SAVPF 111 0\r\na=sendrecv\r\n"
               "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
               "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n"
               "a=rtpmap:0 PCMU/8000\r\na=setup:active\r\n")
REOFFER = HEAD + ("a=group:BUNDLE 0 1\r\n"
                  "m=audio 40000 UDP/TLS/RTP/SAVPF 96 0\r\na=sendrecv\r\n"
                  "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
                  "a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=mid:0\r\n"
                  "a=rtpmap:96 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\na=setup:actpass\r\n"
                  "m=video 40000 UDP/TLS/RTP/SAVPF 97\r\na=sendrecv\r\n"
                  "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
                  "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\na=mid:1\r\n"
                  "a=rtpmap:97 VP8/90000\r\n")


def test_a_reoffer_keeps_what_was_negotiated():
    out = keep_negotiated(REOFFER, OURS, BROWSER)
    audio, video = out.split("m=video")
    # audio: the codecs and extensions in use, nothing of aiortc's defaults
    assert "m=audio 40000 UDP/TLS/RTP/SAVPF 111 0\r\n" in audio and "opus/48000/2" in audio
    assert "a=rtpmap:96" not in audio and "a=extmap:2 " not in audio
    assert "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid" in audio
    assert "a=setup:actpass" in audio and "a=mid:0" in audio            # the rest of aiortc's section stays
    # video: mid keeps id 4 (one id per extension in a bundle); a new extension takes an id nobody uses
    assert "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid" in video
    new_id = int(video.split(" http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time")[0].rsplit(":", 1)[1])
    assert new_id not in (1, 4, 9, 15)
    assert "a=rtpmap:97 VP8/90000" in video and "a=group:BUNDLE 0 1" in out


def test_a_reoffer_without_audio_in_use_is_left_as_aiortc_made_it():
    assert keep_negotiated(REOFFER, HEAD, HEAD) == REOFFER


def _leg(video: bool | None, state: str = "confirmed"):
    rtc = None if video is None else SimpleNamespace(has_video=video)
    return SimpleNamespace(rtc=rtc, state=state)


def test_switches_video_only_between_two_browsers_when_the_video_state_changes():
    on, off = (HEAD + AUDIO + VIDEO % "sendrecv").encode(), (HEAD + AUDIO + VIDEO % "inactive").encode()
    assert switches_video(_leg(False), _leg(False), on)
    assert switches_video(_leg(True), _leg(True), off)
    assert not switches_video(_leg(True), _leg(True), on)           # nothing changes: hold/refresh path
    assert not switches_video(_leg(False), _leg(None), on)          # a SIP phone on the other side
    assert not switches_video(_leg(None), _leg(False), on)          # not a browser leg
    assert not switches_video(_leg(False), _leg(False, "early"), on)
    assert not switches_video(_leg(False), None, on)
    assert not switches_video(_leg(False), _leg(False), b"")         # a refresh without SDP
    assert not switches_video(_leg(False), _leg(False), b"\xff\xfem=video")


class Frames(MediaStreamTrack):
    """A video source the test feeds by hand."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.q: asyncio.Queue = asyncio.Queue()

    async def recv(self):
        item = await self.q.get()
        if item is None:
            raise MediaStreamError
        return item


def test_the_feed_follows_its_source_even_while_its_reader_waits():
    """aiortc's sender waits in recv(): switching the source off and on again must wake it with the new
    source's frames (a stopped relay subscription never would)."""
    async def main():
        a, b, feed = Frames(), Frames(), VideoFeed()
        feed.set_source(a)
        reader = asyncio.ensure_future(feed.recv())
        await asyncio.sleep(0.01)
        a.q.put_nowait("a1")
        assert await asyncio.wait_for(reader, 5) == "a1"
        reader = asyncio.ensure_future(feed.recv())       # waiting when the video is switched off ...
        await asyncio.sleep(0.01)
        feed.set_source(None)
        a.q.put_nowait("a2")                              # ... nothing of the old source comes through
        await asyncio.sleep(0.05)
        assert not reader.done()
        feed.set_source(b)                                # ... and on again, from another source
        await asyncio.sleep(0.01)
        b.q.put_nowait("b1")
        assert await asyncio.wait_for(reader, 5) == "b1"
        reader = asyncio.ensure_future(feed.recv())       # a source that ends: the feed waits for the next one
        await asyncio.sleep(0.01)
        b.q.put_nowait(None)
        await asyncio.sleep(0.05)
        assert not reader.done() and feed.source is None
        feed.stop()                                       # the leg closes: the reader ends
        try:
            await asyncio.wait_for(reader, 5)
        except MediaStreamError:
            pass
        else:
            raise AssertionError("recv() returned after stop()")

    asyncio.run(main())
