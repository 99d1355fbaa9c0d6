"""Stall watchdog: how long each input holds the event loop.

The shells (UDP datagrams, TCP/TLS chunks, WebSocket messages, HTTP requests) read a clock before and after
handling one input and call `observe`. Every duration lands in a per-kind histogram; one over `threshold`
is a stall: counted, and `stall` logs where it came from, its first bytes and what the node was doing, so a
load test or an operator sees a slow path before a peer finds it.

Pure: no clock of its own (the shell passes durations, and `clock` is whatever the node injects), no I/O
apart from the logger it is given.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from typing import Callable

KINDS = ("udp", "tcp", "tls", "ws", "wss", "http")
# Upper bounds (seconds) of the histogram buckets: a REGISTER takes ~0.1-1 ms, a stall 100 ms or more.
BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PREVIEW = 64           # bytes of the input shown in the log line


class Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)     # the last one is +Inf
        self.total = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus buckets: (le, observations <= le)."""
        out, running = [], 0
        for bound, n in zip(BOUNDS, self.counts):
            running += n
            out.append((repr(bound), running))
        out.append(("+Inf", running + self.counts[-1]))
        return out


@dataclass(frozen=True)
class Stall:
    kind: str
    seconds: float
    source: str
    what: str
    preview: str


class Watchdog:
    def __init__(self, threshold: float = 0.1, clock: Callable[[], float] | None = None, log=None,
                 keep: int = 20) -> None:
        self.threshold = threshold
        self.clock = clock            # the shells read durations with it (the node injects perf_counter)
        self.log = log
        self.hist: dict[str, Histogram] = {k: Histogram() for k in KINDS}
        self.stalls: dict[str, int] = {k: 0 for k in KINDS}
        self.recent: deque[Stall] = deque(maxlen=keep)

    def observe(self, kind: str, seconds: float) -> bool:
        """One handled input; True when it was a stall (the caller then describes it with `stall`)."""
        h = self.hist[kind]
        h.counts[bisect_left(BOUNDS, seconds)] += 1
        h.total += seconds
        return seconds > self.threshold

    def stall(self, kind: str, seconds: float, source: str, what: str, data: bytes | str = b"") -> Stall:
        """Count and log one stall. Only called past the threshold, so building strings here costs nothing
        on the normal path."""
        s = Stall(kind, seconds, source, what, printable(data))
        self.stalls[kind] += 1
        self.recent.append(s)
        if self.log is not None:
            self.log.warning("loop_stall", kind=kind, ms=round(seconds * 1000, 1), source=source, what=what,
                             first_bytes=s.preview)
        return s

    def busy(self) -> float:
        """Seconds spent handling SIP inputs so far (all transports)."""
        return sum(h.total for k, h in self.hist.items() if k != "http")


def printable(data: bytes | str, limit: int = PREVIEW) -> str:
    """The first `limit` bytes with everything but printable ASCII escaped (\\r, \\n, \\xNN): a log line must
    not carry a peer's control characters, and NULs or 0xFF bytes are exactly what a hostile peer sends."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return "".join([_ESC[b] for b in data[:limit]]) + ("..." if len(data) > limit else "")


_ESC = [chr(b) if 32 <= b < 127 and b != 92 else {13: "\\r", 10: "\\n", 9: "\\t", 92: "\\\\"}.get(b, f"\\x{b:02x}")
        for b in range(256)]


def describe(data: bytes) -> str:
    """What a SIP input was: its method, or the status of a response (from the first line, unparsed)."""
    line = data[:80].split(b"\r", 1)[0].split(b"\n", 1)[0]
    if line.startswith(b"SIP/"):
        parts = line.split(b" ", 2)
        return "response " + (printable(parts[1], 8) if len(parts) > 1 else "?")
    method = line.split(b" ", 1)[0]
    return printable(method, 20) if method else "empty"
