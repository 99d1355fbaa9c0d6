"""The media side of calls: anchors each leg's RTP on the node's media engine and wires rooms, prompts,
music on hold and recordings. The B2BUA calls these; SDP in, SDP out."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from media.wav import WavError, read_frames, tone

from .sdp import ANSWER_DIRECTION, Session, build_sdp, negotiate_audio, parse_sdp
from .sip.errors import SipError


def music_on_hold(seconds: float = 8.0) -> np.ndarray:
    """A soft arpeggio used when a queue names no music file: never silence, so callers know they wait."""
    notes = [261.63, 329.63, 392.0, 523.25, 392.0, 329.63]
    step = seconds / len(notes) / 2
    parts = []
    for f in notes * 2:
        t = tone(f, step, amplitude=0.12)
        ramp = np.minimum(1.0, np.minimum(np.arange(t.size), np.arange(t.size)[::-1]) / 400.0)
        parts.append((t * ramp).astype(np.int16))
    samples = np.concatenate(parts)
    return samples[: samples.size - samples.size % 160].reshape(-1, 160)


class CallMedia:
    def __init__(self, engine, base_dir: Path, recordings: Path | None, log) -> None:
        self.engine = engine
        self.base_dir = base_dir
        self.recordings = recordings
        self.log = log
        self._prompts: dict[str, np.ndarray | None] = {}
        self._moh = music_on_hold()

    # --- prompts ---------------------------------------------------------------------------------------
    def prompt(self, name: str | None) -> np.ndarray | None:
        if not name:
            return None
        if name not in self._prompts:
            path = Path(name) if Path(name).is_absolute() else self.base_dir / name
            try:
                self._prompts[name] = read_frames(str(path))
            except (OSError, WavError, ValueError) as exc:
                self.log.warning("prompt_unreadable", file=str(path), error=str(exc))
                self._prompts[name] = None
        return self._prompts[name]

    async def play(self, stream, name_or_frames) -> bool:
        frames = self.prompt(name_or_frames) if isinstance(name_or_frames, str) else name_or_frames
        if frames is None or stream is None or stream.closed:
            return False
        return await self.engine.play(stream, frames)

    def hold_music(self, stream, name: str | None = None) -> None:
        frames = self.prompt(name) if name else None
        self.engine.play(stream, frames if frames is not None else self._moh, loop=True)

    # --- legs --------------------------------------------------------------------------------------------
    async def answer_customer(self, leg, offer: Session) -> bytes:
        """Open the customer's streams, point them at the offer, and return our SDP answer."""
        audio = offer.first("audio")
        picked = negotiate_audio(audio) if audio else None
        if picked is None:
            raise SipError(488, "No common audio codec")
        pt, event = picked
        leg.stream = await self.engine.open_stream()
        host, port = offer.endpoint("audio")
        leg.stream.set_remote(host, port, pt, event)
        video_in = [m for m in offer.media if m.kind == "video" and m.port]
        leg.video = None
        if video_in:
            leg.video = await self.engine.open_stream("video")
            vhost, vport = offer.endpoint("video")
            leg.video.set_remote(vhost, vport)
        return build_sdp(self.engine.address, int(time.time()), 1,
                         [(leg.stream.port, event, ANSWER_DIRECTION[audio.direction], pt)],
                         video_in[:1], [leg.video.port] if leg.video else [])

    async def offer_agent(self, leg, customer_offer: Session | None) -> bytes:
        from .sdp import offer_sdp
        leg.stream = await self.engine.open_stream()
        video = [m for m in customer_offer.media if m.kind == "video" and m.port][:1] if customer_offer else []
        leg.video = await self.engine.open_stream("video") if video else None
        return offer_sdp(self.engine.address, leg.stream.port, int(time.time()), video=video,
                         video_ports=[leg.video.port] if leg.video else [])

    def agent_answered(self, call, leg, answer_body: bytes) -> None:
        """Point the agent's streams at its answer and put customer and agent in one room."""
        ans = parse_sdp(answer_body)
        audio = ans.first("audio")
        pt = int(audio.formats[0]) if audio and audio.formats and audio.formats[0].isdigit() else 0
        event = next((int(f) for f in audio.formats if f.isdigit() and
                      audio.codec(f).lower().startswith("telephone-event")), None) if audio else None
        host, port = ans.endpoint("audio")
        leg.stream.set_remote(host, port, pt, event)
        cust = call.customer.stream
        self.engine.stop_play(cust)
        self.engine.join(cust, call.id)
        self.engine.join(leg.stream, call.id)
        if leg.video is not None and call.customer.video is not None and ans.endpoint("video"):
            leg.video.set_remote(*ans.endpoint("video"))
            self.engine.relay(call.customer.video, leg.video)

    def record(self, call, leg) -> str | None:
        if self.recordings is None:
            return None
        self.recordings.mkdir(parents=True, exist_ok=True)
        path = self.recordings / f"{time.strftime('%Y%m%d-%H%M%S')}-{_safe(call.id)}.wav"
        call.recording = self.engine.record(call.customer.stream, leg.stream, str(path))
        return str(path)

    def close(self, leg) -> None:
        for s in (getattr(leg, "stream", None), getattr(leg, "video", None)):
            if s is not None:
                s.close()


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:60]
