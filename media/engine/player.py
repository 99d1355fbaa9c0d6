"""Prompts and music on hold: a player per stream, its frames encoded once per prompt for every caller.

A prompt playing to a stream replaces the room audio for that stream (see the package doc).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING

import numpy as np

from ..errors import LocalProtocolError
from ..mixer import FRAME
from .codecs import ENCODE

if TYPE_CHECKING:
    from .stream import Stream


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
            codes = np.take(ENCODE[pt], np.ascontiguousarray(pcm).view(np.uint16))
            block = self._coded[(pt, b)] = [row.tobytes() for row in codes]
        return block[i]


class Prompts:
    """The prompt half of MediaEngine (a mixin: it uses the engine's loop, _check_audio and _reroute)."""

    def _init_prompts(self) -> None:
        self._prompt_codes: dict[int, tuple[weakref.ref, dict]] = {}   # id(frames) -> (ref, encoded blocks)

    def play(self, stream: Stream, frames, loop: bool = False) -> asyncio.Future:
        """Play (N, 160) int16 frames to the stream (instead of its room audio); see the package doc."""
        self._check_audio(stream)
        f = np.asarray(frames)
        if f.ndim == 1:
            f = np.pad(f, (0, -len(f) % FRAME)).reshape(-1, FRAME)
        if f.ndim != 2 or f.shape[1] != FRAME:
            raise LocalProtocolError(f"prompt must be (N, {FRAME}) frames, got {f.shape}")
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

    def _player_step(self, s: Stream, p: _Player) -> _Player | None:
        """The tick's look at a stream's player before sending: a cancelled or finished prompt ends here
        (its future resolves True when the last frame's slot is over); a looping one starts again."""
        if p.future.done():             # cancelled by its owner
            s._player = None
            self._reroute(s)
            return None
        if p.pos >= len(p.frames):
            if p.loop:
                p.pos = 0
            else:
                s._player = None
                self._reroute(s)
                p.future.set_result(True)
                return None
        return p
