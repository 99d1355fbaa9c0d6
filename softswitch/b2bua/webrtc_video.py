"""Video between browser legs: one MediaRelay for every leg's received video, and the track a leg's video sender
always holds (VideoFeed), whose source can be switched or removed mid-call.

Why a feed and not ``sender.replaceTrack(subscription)``: aiortc's sender waits inside ``recv()`` of the track it
holds; a relay subscription that is stopped while the sender waits never wakes it (the relay no longer delivers
to it), so the sender would hang for the rest of the call and video switched off and on again would never flow.
The feed never ends: it waits for frames of whichever source is set, and wakes when the source changes.
"""

from __future__ import annotations

import asyncio

from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

# One relay for every leg's received video: each source track gets one reader task, any number of consumers
# (the drain of its own leg, the video feeds of the other legs of the call).
RELAY = MediaRelay()


class VideoFeed(MediaStreamTrack):
    """The frames of the current source (subscribed through RELAY without buffering: the latest frame only);
    none while there is no source."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._sub: MediaStreamTrack | None = None
        self._changed = asyncio.Event()

    @property
    def source(self) -> MediaStreamTrack | None:
        return self._sub

    def set_source(self, track: MediaStreamTrack | None) -> None:
        old, self._sub = self._sub, (RELAY.subscribe(track, buffered=False) if track is not None else None)
        if old is not None:
            old.stop()
        self._changed.set()

    async def recv(self):
        while self.readyState == "live":
            sub = self._sub
            self._changed.clear()
            if sub is None:
                await self._changed.wait()
                continue
            frame = asyncio.ensure_future(sub.recv())
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait((frame, changed), return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                if not frame.done():
                    frame.cancel()
            if frame.done() and not frame.cancelled():
                try:
                    return frame.result()
                except MediaStreamError:        # the source ended (its leg closed): wait for another one
                    if self._sub is sub:
                        self._sub = None
        raise MediaStreamError

    def stop(self) -> None:
        if self._sub is not None:
            self._sub.stop()
            self._sub = None
        self._changed.set()
        super().stop()
