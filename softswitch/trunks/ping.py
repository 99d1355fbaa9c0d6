"""A trunk's liveness from OPTIONS pings, as a table: up until `threshold` pings in a row go unanswered (or
are answered 408/5xx), then down (the dial plan skips it) until one is answered again. Pings go on at
`interval` whatever the state: that is how a down trunk is seen coming back.

Pure: the shell sends the ping the `Ping` effect asks for and reports "ok"/"fail" with `now`; `Arm` says when
the next ping is due.
"""

from __future__ import annotations

from dataclasses import dataclass

# (state, event) -> (new state, effects). "fail" is a miss below the threshold, "fail_last" the one reaching it.
TABLE = {
    ("unknown", "ok"): ("up", ("reset", "arm")),
    ("unknown", "fail"): ("unknown", ("count", "arm")),
    ("unknown", "fail_last"): ("down", ("count", "went_down", "arm")),
    ("up", "ok"): ("up", ("reset", "arm")),
    ("up", "fail"): ("up", ("count", "arm")),
    ("up", "fail_last"): ("down", ("count", "went_down", "arm")),
    ("down", "ok"): ("up", ("reset", "went_up", "arm")),
    ("down", "fail"): ("down", ("count", "arm")),
    ("down", "fail_last"): ("down", ("count", "arm")),
}


@dataclass(frozen=True)
class Ping:
    """Send an OPTIONS now; report its answer (or a miss after `timeout`)."""
    timeout: float


@dataclass(frozen=True)
class Arm:
    at: float


@dataclass(frozen=True)
class Changed:
    state: str           # "up" or "down"
    at: float


def answered(status: int | None) -> bool:
    """Any answer but 408 or a 5xx shows the peer is there (a 404 or 405 to OPTIONS is still an answer)."""
    return status is not None and status != 408 and not 500 <= status < 600


class PingState:
    def __init__(self, interval: float, threshold: int, timeout: float) -> None:
        self.interval = interval
        self.threshold = max(1, threshold)
        self.timeout = timeout
        self.state = "unknown"
        self.misses = 0              # in a row
        self.since: float | None = None    # when the state last changed
        self.stats = {"pings": 0, "misses": 0, "downs": 0, "ups": 0}

    @property
    def usable(self) -> bool:
        """A trunk not yet pinged is given the benefit of the doubt."""
        return self.state != "down"

    def start(self, now: float) -> list:
        self.stats["pings"] += 1
        return [Ping(self.timeout)]

    def due(self, now: float) -> list:
        """The timer of an `Arm`: ping again."""
        self.stats["pings"] += 1
        return [Ping(self.timeout)]

    def result(self, ok: bool, now: float) -> list:
        event = "ok" if ok else ("fail_last" if self.misses + 1 >= self.threshold else "fail")
        self.state, actions = TABLE[(self.state, event)]
        out: list = []
        for a in actions:
            if a == "reset":
                self.misses = 0
            elif a == "count":
                self.misses += 1
                self.stats["misses"] += 1
            elif a in ("went_down", "went_up"):
                self.since = now
                self.stats["downs" if a == "went_down" else "ups"] += 1
                out.append(Changed(self.state, now))
            elif a == "arm":
                out.append(Arm(now + self.interval))
        return out

    def retune(self, interval: float, threshold: int, timeout: float) -> None:
        self.interval, self.threshold, self.timeout = interval, max(1, threshold), timeout
