"""Agents' outbound calls: how the far side's failure is shown to the agent, and the toll-fraud guard."""

from __future__ import annotations


def map_failure(status: int) -> int:
    """What the agent sees for the far side's final failure: no redirects followed, no auth passed back."""
    if 300 <= status < 400:
        return 480
    if status in (401, 407):
        return 403
    if status == 408 or status >= 700:
        return 480
    return status


def failure_for_event(event: str) -> int:
    """The agent's answer when the far side never answered (timeout) or could not be reached (error)."""
    return 480 if event == "timeout" else 503


class OutboundLimit:
    """At most `per_minute` calls per agent in any 60 s window: a stolen softphone password cannot be used to
    pump calls out. 0 is no cap. Each agent keeps only its last minute of call times."""

    WINDOW = 60.0

    def __init__(self) -> None:
        self._times: dict[str, list[float]] = {}

    def allow(self, agent_id: str, now: float, per_minute: int) -> bool:
        if not per_minute:
            return True
        times = [t for t in self._times.get(agent_id, ()) if t > now - self.WINDOW]
        if len(times) >= per_minute:
            self._times[agent_id] = times
            return False
        times.append(now)
        self._times[agent_id] = times
        return True
