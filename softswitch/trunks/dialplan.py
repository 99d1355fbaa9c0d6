"""The outbound dial plan: number patterns to an ordered list of trunks, the caller ID shown per queue or agent,
and the failover walk over the trunks of one call.

A pattern is written over the E.164 number: digits and `+` match themselves, `X` any one digit, a final `*`
anything that follows (`+49*`, `+1XXXXXXXXXX`, `*`). The first route whose pattern matches gives the trunks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

_PATTERN = re.compile(r"\+?[0-9X]*\*?")


def valid_pattern(text: str) -> bool:
    return bool(text) and _PATTERN.fullmatch(text) is not None


def matches(pattern: str, number: str) -> bool:
    if pattern.endswith("*"):
        head = pattern[:-1]
        if len(number) < len(head):
            return False
        number = number[:len(head)]
        pattern = head
    if len(pattern) != len(number):
        return False
    return all(p == c or (p == "X" and c.isdigit()) for p, c in zip(pattern, number))


@dataclass(frozen=True)
class Route:
    pattern: str
    trunks: tuple[str, ...]


@dataclass(frozen=True)
class CallerIds:
    default: str | None = None
    queues: dict = field(default_factory=dict, hash=False, compare=True)     # queue name -> number
    agents: dict = field(default_factory=dict, hash=False, compare=True)     # agent id -> number

    def choose(self, queue: str | None = None, agent: str | None = None) -> str | None:
        """The agent's own, else the queue's (a callback or an agent calling for a queue), else the default."""
        if agent is not None and agent in self.agents:
            return self.agents[agent]
        if queue is not None and queue in self.queues:
            return self.queues[queue]
        return self.default


@dataclass(frozen=True)
class DialPlan:
    routes: tuple[Route, ...] = ()
    caller_ids: CallerIds = CallerIds()
    attempt_timeout: float = 4.0         # seconds a trunk may stay silent after an outbound INVITE

    def route(self, number: str) -> Route | None:
        for r in self.routes:
            if matches(r.pattern, number):
                return r
        return None

    def trunks_for(self, number: str) -> tuple[str, ...]:
        r = self.route(number)
        return r.trunks if r else ()


# What a trunk's final answer (or its silence) means for the call: try the next trunk, or stop there. A busy
# callee (486), a wrong number (404, 484) or a decline (603) would be the same on any trunk.
FAILOVER_STATUSES = frozenset({408}) | frozenset(range(500, 600))


def fails_over(outcome: int | str) -> bool:
    """`outcome`: a final status, or "timeout" / "network_error"."""
    if isinstance(outcome, str):
        return outcome in ("timeout", "network_error")
    return outcome in FAILOVER_STATUSES


class Failover:
    """The trunks one outbound call tries, in order, skipping those `usable` refuses (down, or over their
    caps) when their turn comes."""

    def __init__(self, trunks: tuple[str, ...], usable: Callable[[str], bool]) -> None:
        self.trunks = trunks
        self.usable = usable
        self.tried: list[tuple[str, int | str]] = []
        self.skipped: list[str] = []
        self._next = 0
        self.current: str | None = None

    def first(self) -> str | None:
        return self._advance()

    def result(self, outcome: int | str) -> str | None:
        """The answer of the current trunk: the next trunk to try, or None (done: answered, a final failure,
        or no trunk left)."""
        if self.current is None:
            return None
        self.tried.append((self.current, outcome))
        if isinstance(outcome, int) and outcome < 300 or not fails_over(outcome):
            self.current = None
            return None
        return self._advance()

    def _advance(self) -> str | None:
        while self._next < len(self.trunks):
            name = self.trunks[self._next]
            self._next += 1
            if self.usable(name):
                self.current = name
                return name
            self.skipped.append(name)
        self.current = None
        return None
