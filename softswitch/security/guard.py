"""Who may talk to the node: per-source rate limits, bans after floods or repeated authentication failures,
and known scanners dropped without an answer. Pure apart from logging: `now` comes in.

A source is an IP address (NAT'd offices share one, so the limits are per address, not per port).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

SCANNERS = ("friendly-scanner", "sipvicious", "sipcli", "sip-scan", "vaxsipuseragent", "iwar", "sundayddr",
            "smap", "sipsak-scan", "pplsip", "cbvoip")


@dataclass
class GuardOptions:
    rate: float = 200.0                 # requests per second a source may send on average
    burst: int = 400                    # ... and in a burst
    flood_ban_after: int = 200          # requests over the limit (within a window) that get the source banned
    auth_failures: int = 10             # failed authentications within the window that get it banned
    window: float = 60.0
    ban_time: float = 600.0
    scanners: tuple[str, ...] = SCANNERS
    exempt: tuple[str, ...] = ()        # addresses never limited (e.g. a trusted load balancer)


@dataclass
class _Source:
    tokens: float
    at: float
    # times in the window, oldest first: up to flood_ban_after (a million at most) of them, dropped from the
    # left as they age, so a deque (a list's pop(0) moved them all, per request of a flood)
    over: deque[float] = field(default_factory=deque)
    failures: deque[float] = field(default_factory=deque)


class Guard:
    def __init__(self, options: GuardOptions, log=None) -> None:
        self.o = options
        self.log = log
        self.sources: dict[str, _Source] = {}
        self.bans: dict[str, float] = {}
        self.stats = {"scanner_dropped": 0, "rate_limited": 0, "banned_dropped": 0, "bans": 0}
        self._scanners = tuple(s.lower() for s in options.scanners)
        self._sweep_at = 0.0
        # Peers limited elsewhere (a trunk's own caps): a carrier sends every customer's call from one address
        self.trusted: Callable[[str], bool] | None = None
        self.on_ban: Callable[[str, float], None] | None = None   # (host, seconds): the UDP front hears of bans

    def reconfigure(self, options: GuardOptions) -> None:
        """New limits from a reload; buckets, bans and counted failures stay."""
        self.o = options
        self._scanners = tuple(s.lower() for s in options.scanners)

    def banned(self, host: str, now: float) -> bool:
        until = self.bans.get(host)
        if until is None:
            return False
        if until <= now:
            del self.bans[host]
            return False
        return True

    def admit(self, host: str, now: float) -> bool:
        """Before parsing: False (and counted) for a banned source."""
        if self.bans and self.banned(host, now) and not (self.trusted is not None and self.trusted(host)):
            self.stats["banned_dropped"] += 1
            return False
        return True

    def allow(self, host: str, user_agent: str | None, now: float) -> bool:
        """False: drop the request silently (no answer tells a scanner or a flooder anything)."""
        if host in self.o.exempt or (self.trusted is not None and self.trusted(host)):
            return True
        if self.banned(host, now):
            self.stats["banned_dropped"] += 1
            return False
        if user_agent:
            ua = user_agent.lower()
            if any(s in ua for s in self._scanners):
                self.stats["scanner_dropped"] += 1
                return False
        src = self.sources.get(host)
        if src is None:
            src = self.sources[host] = _Source(float(self.o.burst), now)
        src.tokens = min(float(self.o.burst), src.tokens + (now - src.at) * self.o.rate)
        src.at = now
        if now >= self._sweep_at:
            self._sweep(now)
        if src.tokens >= 1.0:
            src.tokens -= 1.0
            return True
        self.stats["rate_limited"] += 1
        src.over.append(now)
        _trim(src.over, now - self.o.window)
        if len(src.over) >= self.o.flood_ban_after:
            self.ban(host, now, "flood")
        return False

    def auth_failed(self, host: str, now: float) -> None:
        if host in self.o.exempt or (self.trusted is not None and self.trusted(host)):
            return
        src = self.sources.setdefault(host, _Source(float(self.o.burst), now))
        src.failures.append(now)
        _trim(src.failures, now - self.o.window)
        if len(src.failures) >= self.o.auth_failures:
            self.ban(host, now, "authentication failures")

    def ban(self, host: str, now: float, why: str) -> None:
        if self.banned(host, now):
            return
        self.bans[host] = now + self.o.ban_time
        self.stats["bans"] += 1
        src = self.sources.get(host)
        if src is not None:
            src.over.clear()
            src.failures.clear()
        if self.on_ban is not None:
            self.on_ban(host, self.o.ban_time)
        if self.log is not None:
            self.log.warning("source_banned", source=host, why=why, seconds=self.o.ban_time)

    def hold(self, host: str, until: float) -> None:
        """Keep a ban made elsewhere (the node's guard's, heard by the UDP front) until `until`."""
        self.bans[host] = max(until, self.bans.get(host, until))

    def _sweep(self, now: float) -> None:
        """Forget quiet sources so a scan across many addresses cannot grow the table without bound."""
        self._sweep_at = now + self.o.window
        idle = now - self.o.window
        for host in [h for h, s in self.sources.items() if s.at < idle and not s.failures]:
            del self.sources[host]


def _trim(times: deque[float], before: float) -> None:
    while times and times[0] < before:
        times.popleft()
