"""Per-queue views of the agents, kept current on every change, so no input scans all agents.

For each skill queue: its members, how many are in each state, and the ready ones (idle, registered, not
engaged at another node). For the strategies whose order is a fixed key while an agent is ready (longest
idle, fewest calls, least talk time, linear) a heap gives the next agent in O(log n); the others rank the
queue's ready agents (never the whole tenant). Pure: no clock, no I/O.
"""

from __future__ import annotations

import heapq

from .agent_state import STATES
from .agents import Agent
from .strategies import rank

# strategy -> the agent's order within a penalty tier (lower first), as strategies.py sorts them
KEYS = {
    "longest_idle": lambda a: (a.idle_since, a.order),
    "fewest_calls": lambda a: (a.answered, a.idle_since, a.order),
    "least_talk_time": lambda a: (a.talk_time, a.idle_since, a.order),
    "linear": lambda a: (a.order,),
}


def is_ready(a: Agent) -> bool:
    return a.state == "idle" and a.registered and not a.elsewhere


class Roster:
    def __init__(self) -> None:
        self.members: dict[str, dict[str, Agent]] = {}
        self.ready: dict[str, dict[str, Agent]] = {}        # insertion order: when each became ready
        self.counts: dict[str, dict[str, int]] = {}
        # every agent by its state, tenant-wide, oldest in the state first (the wallboard's counts and lists)
        self.by_state: dict[str, dict[str, Agent]] = {s: {} for s in STATES}
        self.strategy: dict[str, str] = {}
        self.gained: set[str] = set()                      # queues that gained a ready agent (to dispatch)
        self._heaps: dict[str, list] = {}
        self._seen: dict[str, tuple] = {}                  # agent id -> what it was indexed as
        self.elsewhere: dict[str, Agent] = {}              # pool mode: engaged at another node

    def _queue(self, q: str) -> None:
        if q not in self.members:
            self.members[q], self.ready[q], self._heaps[q] = {}, {}, []
            self.counts[q] = dict.fromkeys(STATES, 0)

    def set_strategy(self, q: str, strategy: str) -> None:
        self._queue(q)
        if self.strategy.get(q) != strategy:
            self.strategy[q] = strategy
            self._rebuild(q)

    def sync(self, a: Agent) -> None:
        """Index the agent as it is now (after any change of state, registration, queues or pool flag)."""
        if a.elsewhere:
            self.elsewhere[a.id] = a
        else:
            self.elsewhere.pop(a.id, None)
        ready = is_ready(a)
        now = (a.queues, a.state, ready, a.idle_since)
        was = self._seen.get(a.id)
        if was is not None and was[0] == now[0] and was[1:] == now[1:]:
            return
        old_queues, old_state, old_ready, _ = was or ({}, "", False, 0.0)
        if old_state != a.state:
            self.by_state.get(old_state, {}).pop(a.id, None)
            self.by_state.setdefault(a.state, {})[a.id] = a
        for q in old_queues:
            self.counts[q][old_state] -= 1
            if old_ready:
                del self.ready[q][a.id]
            if q not in a.queues:
                del self.members[q][a.id]
        for q, penalty in a.queues.items():
            self._queue(q)
            self.members[q][a.id] = a
            self.counts[q][a.state] += 1
            if ready:
                self.ready[q][a.id] = a
                self.gained.add(q)
                self._push(q, a, penalty)
        self._seen[a.id] = (dict(a.queues), a.state, ready, a.idle_since)

    def remove(self, a: Agent) -> None:
        self.elsewhere.pop(a.id, None)
        was = self._seen.pop(a.id, None)
        if was is None:
            return
        self.by_state.get(was[1], {}).pop(a.id, None)
        for q in was[0]:
            self.counts[q][was[1]] -= 1
            self.members[q].pop(a.id, None)
            self.ready[q].pop(a.id, None)

    def staffed(self, q: str) -> int:
        """Members signed in (any state but offline)."""
        return len(self.members[q]) - self.counts[q]["offline"] if q in self.members else 0

    def pick(self, q: str, rng, state: dict) -> list[Agent]:
        """The agent(s) the queue's strategy offers the next call to: lower penalty first, then its order."""
        ready = self.ready.get(q)
        if not ready:
            return []
        strategy = self.strategy.get(q, "longest_idle")
        key = KEYS.get(strategy)
        if key is not None:
            heap = self._heaps[q]
            while heap:
                item = heap[0]
                a = ready.get(item[-1])
                if a is not None and item[:-1] == (a.queues.get(q, 0), *key(a)):
                    return [a]
                heapq.heappop(heap)          # left the ready set or changed since it was pushed
            self._rebuild(q)
            return self.pick(q, rng, state)
        ranked = rank(strategy, q, list(ready.values()), state, rng)
        if strategy != "ring_all":
            return ranked[:1]
        best = min(a.queues.get(q, 0) for a in ranked)
        return [a for a in ranked if a.queues.get(q, 0) == best]

    def _push(self, q: str, a: Agent, penalty: int) -> None:
        key = KEYS.get(self.strategy.get(q, "longest_idle"))
        if key is None:
            return
        heap = self._heaps[q]
        heapq.heappush(heap, (penalty, *key(a), a.id))
        if len(heap) > 2 * len(self.ready[q]) + 64:    # stale items of agents that came and went
            self._rebuild(q)

    def _rebuild(self, q: str) -> None:
        key = KEYS.get(self.strategy.get(q, "longest_idle"))
        heap = [(a.queues.get(q, 0), *key(a), a.id) for a in self.ready[q].values()] if key else []
        heapq.heapify(heap)
        self._heaps[q] = heap
