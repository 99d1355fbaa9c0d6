"""Erlang C: how many agents a queue needs to answer a share of calls within a time (pure math)."""

from __future__ import annotations

import math


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a call has to wait, with `traffic` erlangs offered to `agents` agents."""
    if agents <= 0:
        return 1.0
    if traffic <= 0:
        return 0.0
    if traffic >= agents:
        return 1.0
    # Erlang B by its stable recurrence, then C from B (avoids factorials of large numbers).
    b = 1.0
    for k in range(1, agents + 1):
        b = traffic * b / (k + traffic * b)
    return agents * b / (agents - traffic * (1 - b))


def service_level(agents: int, traffic: float, handle_time: float, target_time: float) -> float:
    """Share of calls answered within `target_time` seconds."""
    if agents <= traffic:
        return 0.0
    return 1.0 - erlang_c(agents, traffic) * math.exp(-(agents - traffic) * target_time / handle_time)


def agents_needed(calls_per_hour: float, handle_time: float, target_time: float, target_share: float = 0.8,
                  limit: int = 10000) -> int:
    """The fewest agents that reach the service level for this load (0 when there is no load)."""
    traffic = calls_per_hour * handle_time / 3600.0
    if traffic <= 0:
        return 0
    n = max(1, math.floor(traffic) + 1)
    while n < limit and service_level(n, traffic, handle_time, target_time) < target_share:
        n += 1
    return n
