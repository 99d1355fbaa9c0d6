"""MediaEngine: the node's RTP streams, rooms, supervisor modes, recordings and video relay, and the tick
that composes the stages (see the package doc for the documented choices)."""

from __future__ import annotations

import asyncio
import random
import socket
from collections import deque

from ..errors import LocalProtocolError
from ..mixer import FRAME, Mixer
from . import stages
from .codecs import CODEC_BY_PT
from .player import Prompts
from .recording import Recording
from .relay import RelayRoutes, _Discard, _Proto
from .stream import Stream
from .ticker import Ticker


class MediaEngine(Ticker, RelayRoutes, Prompts):
    """All RTP streams of the node, driven by one drift-free ptime ticker on the asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, address: str = "127.0.0.1",
                 port_range: tuple[int, int] = (20000, 29999), ptime: float = 0.02, *,
                 max_catchup: int = 50, rtcp_interval: float = 5.0, record_flush: int = 25,
                 port_rest: float = 2.0, spare_ports: int = 4096) -> None:
        if abs(ptime - FRAME / 8000) > 1e-9:
            raise LocalProtocolError("only 20 ms frames (160 samples at 8 kHz) are supported")
        lo, hi = port_range
        lo += lo & 1
        if not 0 < lo < hi <= 65535:
            raise LocalProtocolError(f"bad port range {port_range}")
        Ticker.__init__(self, loop or asyncio.get_event_loop(), ptime, max_catchup)
        self._init_routes()
        self._init_prompts()
        self.address = address
        self.port_range = (lo, hi)
        self.rtcp_every = max(1, round(rtcp_interval / ptime))
        self.record_flush = record_flush
        self.mixer = Mixer()
        self.streams: set[Stream] = set()
        self._audio: dict[Stream, None] = {}       # in opening order; a stream leaves in O(1)
        self._recordings: set[Recording] = set()
        self._next_port = lo + 2 * random.randrange((hi - lo) // 2) if hi - lo >= 4 else lo
        self._relayed_closed = 0        # packets relayed by streams that are gone
        # A closed stream's two sockets rest here (stray packets discarded) and are handed to a later stream
        # once they have rested port_rest seconds: no sockets to make, bind and close per call, and
        # open_stream_now() needs no await. At most spare_ports pairs are kept; the oldest goes first.
        self._resting: deque[tuple[float, int, object, object]] = deque()
        self.port_rest, self.spare_ports = port_rest, spare_ports

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
        self._start_ticking()

    async def stop(self) -> None:
        self._stop_ticking()
        for s in list(self.streams):
            self._close_stream(s)
        while self._resting:
            _, _, a, b = self._resting.popleft()
            a.close()
            b.close()
        for r in list(self._recordings):
            r.close()

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

    def open_stream_now(self, kind: str = "audio") -> Stream | None:
        """A stream on a pair of sockets that has rested since its last stream closed, without waiting;
        None when no pair has rested long enough (open_stream then binds a new one)."""
        if kind not in ("audio", "video"):
            raise LocalProtocolError("kind must be 'audio' or 'video'")
        resting = self._resting
        if not resting or self.clock() - resting[0][0] < self.port_rest:
            return None
        return self._reuse(kind, resting.popleft())

    def _reuse(self, kind: str, pair) -> Stream:
        _, port, rtp, rtcp = pair
        stream = Stream(self, kind, port, rtp, rtcp)
        rtp.set_protocol(_Proto(stream, False))
        rtcp.set_protocol(_Proto(stream, True))
        self._opened(stream)
        return stream

    def _opened(self, stream: Stream) -> None:
        self.streams.add(stream)
        if stream.kind == "audio":
            self.mixer.add_leg(stream)
            self._audio[stream] = None

    async def open_stream(self, kind: str = "audio") -> Stream:
        """Bind an even free port of the range (and port+1 for RTCP); the stream is idle until used. A pair
        of sockets that has rested since its last stream (open_stream_now) is taken first, and any resting
        pair, however recently closed, when no port of the range is free."""
        ready = self.open_stream_now(kind)
        if ready is not None:
            return ready
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
            if self._resting:
                return self._reuse(kind, self._resting.popleft())
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
        self._opened(stream)
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
            del self._audio[s]
        self.streams.discard(s)
        self._rest(s.port, s.transport, s.rtcp_transport)

    def _rest(self, port: int, rtp, rtcp) -> None:
        if rtp is None or rtcp is None or rtp.is_closing() or rtcp.is_closing() or not self.running:
            for t in (rtp, rtcp):
                if t is not None:
                    t.close()
            return
        rtp.set_protocol(_Discard())
        rtcp.set_protocol(_Discard())
        self._resting.append((self.clock(), port, rtp, rtcp))
        while len(self._resting) > self.spare_ports:
            _, _, a, b = self._resting.popleft()
            a.close()
            b.close()

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
            raise LocalProtocolError(f"unknown supervisor mode {mode!r}")
        if supervisor.room is None and agent.room is not None:
            self.join(supervisor, agent.room)
        action(supervisor, agent, customer)

    def _check_audio(self, s: Stream) -> None:
        if s.closed or s.kind != "audio" or s.engine is not self:
            raise LocalProtocolError(f"{s!r} is not an open audio stream of this engine")

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
                raise LocalProtocolError(f"{s!r} is not an open stream of this engine")
        for s in (a, b):
            if s.peer is not None:
                s.peer.peer = None
        a.peer, b.peer = b, a

    def unrelay(self, s: Stream) -> None:
        if s.peer is not None:
            s.peer.peer = None
            s.peer = None

    # --- the tick ------------------------------------------------------------------------------------

    def _tick(self, n: int, now: float) -> None:
        self._update_routes()
        audio = self._audio
        if not audio:
            return
        # Relayed pairs are forwarded as packets arrive (RTCP too): the tick leaves them alone, but for
        # decoding a recorded pair for its recording.
        recordings = self._recordings
        ticked = [s for s in audio if s.fwd is None]
        decode = ticked if not recordings else ticked + [s for s in audio if s.fwd is not None and s._recordings]
        if not decode:
            return
        mixer = self.mixer
        index = mixer.rows          # leg -> row
        silent, groups, odd, pts, sounding = stages.receive(decode, index, now)
        g711_mix = len(pts) == 1 and not odd and not mixer.has_overrides
        if g711_mix:
            pt = next(iter(pts))
            codes = stages.gather_codes(mixer.frames.shape[0], groups, silent, pt)
            stages.record_codes(recordings, codes, index, pt)
            if not ticked:
                return
            out = mixer.mix_codes(codes, CODEC_BY_PT[pt])
        else:
            stages.decode_frames(mixer.frames, groups, silent, odd)
            stages.record_frames(recordings, mixer.frames, index)
            if not ticked:
                return
            out = mixer.mix()
        outgoing, mixed_rows = stages.plan(self, ticked, n, index, sounding)
        if mixed_rows:
            outgoing += stages.encode_rows(out, mixed_rows, g711_mix)
        stages.send(outgoing, n)
