"""RFC 4733 telephone-events: payload codec, a receiver yielding one digit per event, and a sender."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import LocalProtocolError, RemoteProtocolError
from .rtp import ts_diff

# RFC 4733 3.2: events 0-9, * (10), # (11), A-D (12-15), flash (16).
DIGITS = "0123456789*#ABCD"
FLASH = 16


def event_code(digit: str) -> int:
    if digit == "!":
        return FLASH
    i = DIGITS.find(digit.upper())
    if len(digit) != 1 or i < 0:
        raise LocalProtocolError(f"not a DTMF digit: {digit!r}")
    return i


def event_digit(code: int) -> str:
    return DIGITS[code] if 0 <= code < 16 else "!" if code == FLASH else f"event{code}"


class DtmfError(RemoteProtocolError):
    """A malformed telephone-event payload."""


@dataclass(frozen=True)
class ToneEvent:
    event: int
    end: bool
    volume: int          # 0..63, power in -dBm0
    duration: int        # timestamp units since the event's start (the packet's RTP timestamp)

    @property
    def digit(self) -> str:
        return event_digit(self.event)


def parse_event(payload: bytes) -> ToneEvent:
    """2.3: event(8) | E(1) R(1) volume(6) | duration(16). Trailing blocks (RFC 2198 redundancy) ignored."""
    if len(payload) < 4:
        raise DtmfError("telephone-event payload shorter than 4 bytes")
    ev, flags, duration = struct.unpack_from("!BBH", payload)
    return ToneEvent(ev, bool(flags & 0x80), flags & 0x3F, duration)


def build_event(e: ToneEvent) -> bytes:
    if not (0 <= e.event <= 255 and 0 <= e.volume <= 63 and 0 <= e.duration <= 0xFFFF):
        raise LocalProtocolError("event 0..255, volume 0..63, duration 0..65535")
    # The R bit is reserved: sent as zero.
    return struct.pack("!BBH", e.event, (0x80 if e.end else 0) | e.volume, e.duration)


@dataclass(frozen=True)
class DtmfPacket:
    marker: bool
    timestamp: int
    payload: bytes


def tone_packets(digit: str, timestamp: int, duration: int = 800, *, volume: int = 10,
                 interval: int = 160, end_repeats: int = 3) -> list[DtmfPacket]:
    """The packets for one digit, one per `interval`; the caller gives each its own sequence number.

    2.5.1: every packet carries the event's start timestamp and the duration so far; the first has M set.
    2.5.1.4: the final packet (E bit) is sent three times.
    """
    if not 0 < duration <= 0xFFFF:
        raise LocalProtocolError("duration must be 1..65535 timestamp units (long-event segments not supported)")
    ev = event_code(digit)
    ts = timestamp & 0xFFFFFFFF
    out = [DtmfPacket(d == interval, ts, build_event(ToneEvent(ev, False, volume, d)))
           for d in range(interval, duration, interval)]
    end = build_event(ToneEvent(ev, True, volume, duration))
    out += [DtmfPacket(not out and i == 0, ts, end) for i in range(end_repeats)]
    return out


class DtmfReceiver:
    """Turns a telephone-event packet stream into digits, each reported once, as soon as first seen.

    An event is identified by its RTP timestamp (2.5.2.1): updates and the repeated end packets of the
    same event share it and are absorbed.
    """

    def __init__(self) -> None:
        self._ts: int | None = None
        self._event: int | None = None
        self._ended = True
        self.duration = 0          # duration of the latest event as known so far

    def feed(self, timestamp: int, payload: bytes, marker: bool = False) -> str | None:
        """Account one packet; returns the digit when it starts a new event, else None."""
        e = parse_event(payload)
        if self._ts is not None:
            d = ts_diff(timestamp, self._ts)
            if d < 0:
                return None                         # a straggler from an earlier event
            if d == 0:
                if e.event == self._event:
                    self.duration = max(self.duration, e.duration)
                    self._ended = self._ended or e.end
                    return None
            elif e.event == self._event and not self._ended and not marker:
                # 2.5.1.3: a long event continues in a new segment with a new timestamp and no marker.
                self._ts = timestamp
                self.duration = e.duration
                self._ended = e.end
                return None
        self._ts, self._event, self._ended, self.duration = timestamp, e.event, e.end, e.duration
        return e.digit
