"""Two-party relay: the datagram protocols of a stream's sockets and the routes between relayed pairs.

A room of exactly two audio streams that need no mixing forwards each packet to the partner the moment
it arrives (the package doc lists the conditions). _RelayProto is the per-packet path of such a pair,
the hottest code of the node; RelayRoutes decides, once per tick, which pairs relay.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import TYPE_CHECKING

from ..jitter import JitterBuffer

if TYPE_CHECKING:
    from .stream import Stream

log = logging.getLogger("media.engine")

_SEQ_SSRC = struct.Struct("!H4xI")      # RTP header: sequence number (bytes 2-3) and SSRC (8-11)
_TS = struct.Struct("!I")


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


class _Discard(asyncio.DatagramProtocol):
    """The sockets of a closed stream while they rest before their next stream: late packets of the call
    that ended are dropped."""

    __slots__ = ()

    def datagram_received(self, data: bytes, addr) -> None:
        pass

    def error_received(self, exc) -> None:
        pass


class _RelayProto(_Proto):
    """Installed on a stream's RTP transport while its packets are relayed to its partner (package doc).

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


class RelayRoutes:
    """The route half of MediaEngine (a mixin: it uses the engine's mixer, _audio and ptime)."""

    def _init_routes(self) -> None:
        self._rooms: dict[object, list[Stream]] = {}     # room id -> its audio streams
        self._dirty_rooms: set = set()                  # rooms whose relay route must be re-decided
        self._over_seen = 0                             # mixer.over_version the routes were decided on

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

    def _dtmf_to_partner(self, s: Stream, digit: str) -> None:
        """A digit from a stream of a two-party room that is mixed, not relayed (the two sides speak different
        codecs): the mixer carries audio only, so the digit is sent on to the other party as RFC 4733 events of
        that party's own payload type, as a relayed pair's events are."""
        ms = self._rooms.get(s.room, ())
        if len(ms) == 2:
            other = ms[1] if ms[0] is s else ms[0]
            if other.event_pt is not None and not other.closed:
                other.send_dtmf(digit)

    def routes(self) -> dict[Stream, Stream]:
        """stream -> relay partner for every two-party relay in force (pending changes applied first)."""
        self._update_routes()
        return {s: s.fwd for s in self._audio if s.fwd is not None}
