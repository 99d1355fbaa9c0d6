"""A running call recording: both parties' voices, buffered per tick and written to a stereo WAV."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from ..mixer import FRAME
from ..wav import Recorder

if TYPE_CHECKING:
    from .core import MediaEngine
    from .stream import Stream


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
