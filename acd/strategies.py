"""Which idle agent gets the next call of a queue. Each strategy orders the eligible agents."""

from __future__ import annotations

from typing import Callable

from .agents import Agent

Pick = Callable[[list[Agent], dict, object], list[Agent]]


def longest_idle(agents: list[Agent], state: dict, rng) -> list[Agent]:
    return sorted(agents, key=lambda a: (a.idle_since, a.order))


def round_robin(agents: list[Agent], state: dict, rng) -> list[Agent]:
    """The next agent after the last one offered, in config order, wrapping around."""
    ordered = sorted(agents, key=lambda a: a.order)
    last = state.get("last_order", -1)
    return [a for a in ordered if a.order > last] + [a for a in ordered if a.order <= last]


def fewest_calls(agents: list[Agent], state: dict, rng) -> list[Agent]:
    return sorted(agents, key=lambda a: (a.answered, a.idle_since, a.order))


def least_talk_time(agents: list[Agent], state: dict, rng) -> list[Agent]:
    return sorted(agents, key=lambda a: (a.talk_time, a.idle_since, a.order))


def random(agents: list[Agent], state: dict, rng) -> list[Agent]:
    out = sorted(agents, key=lambda a: a.order)
    rng.shuffle(out)
    return out


def linear(agents: list[Agent], state: dict, rng) -> list[Agent]:
    return sorted(agents, key=lambda a: a.order)


STRATEGIES: dict[str, Pick] = {
    "longest_idle": longest_idle, "round_robin": round_robin, "fewest_calls": fewest_calls,
    "least_talk_time": least_talk_time, "random": random, "linear": linear,
    "ring_all": linear,        # ring_all offers to every eligible agent at once; order only breaks ties
}


def rank(strategy: str, queue: str, agents: list[Agent], state: dict, rng) -> list[Agent]:
    """Lower penalty first; within a penalty tier, the strategy's order."""
    tiers: dict[int, list[Agent]] = {}
    for a in agents:
        tiers.setdefault(a.queues.get(queue, 0), []).append(a)
    out: list[Agent] = []
    for penalty in sorted(tiers):
        out.extend(STRATEGIES[strategy](tiers[penalty], state, rng))
    return out
