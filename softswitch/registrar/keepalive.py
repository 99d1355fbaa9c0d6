"""When to send an OPTIONS keepalive to each registered phone, and what its answers and silences mean.

Pure: no sockets and no clock of its own; every input takes `now`. Like Asterisk's qualify: every binding is
probed once per `interval`; a probe not answered within `timeout` is a failure, and `failures` in a row make
the binding unreachable (never offered a call) until it answers again or registers again.

Cost: one heap holds each binding's next probe and each outstanding probe's deadline, so a poll costs the
probes that are due (log n each), never a walk over every binding. A new binding's first probe is placed at
a random point of the first interval, which spreads a registration storm's probes evenly over the interval.
A removed binding's heap items are dropped lazily when they come up (at most two per binding).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Hashable, Protocol

Key = Hashable


class Rng(Protocol):
    """Where the first probes fall (random.Random in the node, a seeded one in tests)."""
    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True)
class KeepaliveOptions:
    interval: float = 30.0       # seconds between two probes of one binding; 0 turns keepalives off
    timeout: float = 5.0         # a probe not answered within this is a failure
    failures: int = 3            # failures in a row that make the binding unreachable

    @property
    def enabled(self) -> bool:
        return self.interval > 0


# --- effects: what the shell must do --------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    """Send an OPTIONS to the binding; report its answer with `answered(key, token, now)`."""
    key: Key
    token: int


@dataclass(frozen=True)
class Failed:
    """The probe went unanswered past the timeout: stop sending it."""
    key: Key
    token: int


@dataclass(frozen=True)
class Unreachable:
    """The binding missed `failures` probes in a row."""
    key: Key


@dataclass(frozen=True)
class Reachable:
    """An unreachable binding answered (or registered) again."""
    key: Key


@dataclass(slots=True)
class _Peer:
    probe_token: int = 0          # the heap item that is this binding's next probe
    wait_token: int = 0           # the probe outstanding (0: none)
    failures: int = 0
    unreachable: bool = False


class Keepalive:
    def __init__(self, options: KeepaliveOptions, rng: Rng) -> None:
        self.options = options
        self.rng = rng
        self._peers: dict[Key, _Peer] = {}
        self._heap: list[tuple[float, int, Key, bool]] = []    # (at, token, key, is_timeout)
        self._token = 0
        self.stats = {"probes": 0, "answered": 0, "failures": 0, "unreachable": 0, "reachable": 0}

    def __len__(self) -> int:
        return len(self._peers)

    def __contains__(self, key: Key) -> bool:
        return key in self._peers

    def is_unreachable(self, key: Key) -> bool:
        p = self._peers.get(key)
        return p is not None and p.unreachable

    def _push(self, at: float, key: Key, is_timeout: bool) -> int:
        self._token += 1
        heapq.heappush(self._heap, (at, self._token, key, is_timeout))
        return self._token

    # --- inputs --------------------------------------------------------------------------------------------
    def add(self, key: Key, now: float, unreachable: bool = False, within: float | None = None) -> None:
        """A binding to watch (a known one keeps its schedule), first probed at a random point of the next
        `within` seconds (an interval unless given); `unreachable` carries a verdict over, or holds a binding
        that must first prove itself (one kept from a previous run)."""
        if key in self._peers or not self.options.enabled:
            return
        p = self._peers[key] = _Peer(unreachable=unreachable)
        spread = self.options.interval if within is None else min(within, self.options.interval)
        p.probe_token = self._push(now + self.rng.uniform(0.0, spread), key, False)

    def remove(self, key: Key) -> int:
        """Stop watching a binding; returns the token of its probe outstanding (0: none), whose answer now
        means nothing."""
        p = self._peers.pop(key, None)
        return p.wait_token if p is not None else 0

    def alive(self, key: Key, now: float) -> list:
        """Proof of life other than an answer to our probe (the phone registered again)."""
        p = self._peers.get(key)
        if p is None:
            return []
        p.failures = 0
        p.wait_token = 0
        if p.unreachable:
            p.unreachable = False
            self.stats["reachable"] += 1
            return [Reachable(key)]
        return []

    def answered(self, key: Key, token: int, now: float) -> list:
        """Any response to the probe (a 404 or 501 too: the phone is there). A late answer, after its
        probe timed out, counts as well: the phone is there."""
        p = self._peers.get(key)
        if p is None or token <= 0:
            return []
        self.stats["answered"] += 1
        return self.alive(key, now)

    def poll(self, now: float) -> list:
        """Everything due by `now`: probes to send and verdicts, in time order."""
        out: list = []
        heap, interval = self._heap, self.options.interval
        while heap and heap[0][0] <= now:
            at, token, key, is_timeout = heapq.heappop(heap)
            p = self._peers.get(key)
            if p is None:
                continue
            if is_timeout:
                if p.wait_token == token:       # else answered meanwhile
                    self._failed(key, p, out)
                continue
            if p.probe_token != token:
                continue
            if p.wait_token:                    # polled late: the last probe's time is up as well
                self._failed(key, p, out)
            # the next probe is an interval after this one was due, so the schedule does not drift
            p.probe_token = self._push(max(at + interval, now), key, False)
            p.wait_token = self._push(now + self.options.timeout, key, True)
            self.stats["probes"] += 1
            out.append(Probe(key, p.wait_token))
        return out

    def _failed(self, key: Key, p: _Peer, out: list) -> None:
        out.append(Failed(key, p.wait_token))
        p.wait_token = 0
        p.failures += 1
        self.stats["failures"] += 1
        if p.failures >= self.options.failures and not p.unreachable:
            p.unreachable = True
            self.stats["unreachable"] += 1
            out.append(Unreachable(key))

    def next_deadline(self) -> float | None:
        """When `poll` next has something to do (None: nothing watched). Items of removed bindings may make
        it early; such a poll returns nothing."""
        return self._heap[0][0] if self._heap else None
