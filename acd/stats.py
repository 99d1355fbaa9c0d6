"""Live per-queue statistics: service level, average speed of answer, abandon rate, average handle time."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .erlang import agents_needed


@dataclass
class QueueStats:
    queue: str
    service_level_s: float = 20.0
    short_abandon_s: float = 5.0
    entered_n: int = 0
    answered_n: int = 0
    answered_in_sl: int = 0
    abandoned_n: int = 0
    short_abandoned: int = 0
    overflowed_n: int = 0
    completed_n: int = 0
    wait_total: float = 0.0
    talk_total: float = 0.0
    window: float = 900.0              # arrival rate for the Erlang-C estimate: the last 15 minutes
    target_share: float = 0.8          # service level goal: this share answered within service_level_s
    arrivals: deque = field(default_factory=deque)

    def entered(self, now: float) -> None:
        self.entered_n += 1
        self.arrivals.append(now)
        while self.arrivals and self.arrivals[0] < now - self.window:
            self.arrivals.popleft()

    def answered(self, now: float, wait: float) -> None:
        self.answered_n += 1
        self.wait_total += wait
        if wait <= self.service_level_s:
            self.answered_in_sl += 1

    def abandoned(self, now: float, wait: float) -> None:
        self.abandoned_n += 1
        if wait < self.short_abandon_s:
            self.short_abandoned += 1

    def overflowed(self, now: float) -> None:
        self.overflowed_n += 1

    def completed(self, now: float, talk: float) -> None:
        self.completed_n += 1
        self.talk_total += talk

    def view(self, now: float | None = None) -> dict:
        counted_abandons = self.abandoned_n - self.short_abandoned      # short abandons are not held against us
        offered = self.answered_n + counted_abandons
        return {
            "entered": self.entered_n, "answered": self.answered_n, "abandoned": self.abandoned_n,
            "overflowed": self.overflowed_n,
            # abandons within short_abandon_time are in `abandoned` but left out of the two rates
            "short_abandoned": self.short_abandoned, "short_abandon_time": self.short_abandon_s,
            "answered_in_service_level": self.answered_in_sl,
            "service_level_time": self.service_level_s, "service_level_goal": self.target_share,
            "service_level": round(self.answered_in_sl / offered, 4) if offered else None,
            "average_speed_of_answer": round(self.wait_total / self.answered_n, 3) if self.answered_n else None,
            "abandon_rate": round(counted_abandons / offered, 4) if offered else None,
            "average_handle_time": round(self.talk_total / self.completed_n, 3) if self.completed_n else None,
            "agents_needed": self.agents_needed(now),
        }

    def agents_needed(self, now: float | None) -> int | None:
        """Erlang-C agents for the recent arrival rate and handle time to meet the service level goal."""
        if now is None or not self.completed_n:
            return None
        recent = self.arrivals           # in arrival order: drop the old from the left, no walk over the rest
        while recent and recent[0] < now - self.window:
            recent.popleft()
        span = max(60.0, min(self.window, now - recent[0])) if recent else self.window
        per_hour = len(recent) * 3600.0 / span
        return agents_needed(per_hour, self.talk_total / self.completed_n, self.service_level_s, self.target_share)
