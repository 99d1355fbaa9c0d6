"""The queue board: who waits in which queue and the queue counters, seen by every node of a pool.

Each node's ACD decides for its own calls; the board adds them up so the API, the wallboard and the
announcements show the pool's figures. Two implementations behind one interface (one contract test suite):
memory for a single node, Redis for a pool. Entries are keyed by node and call, so a node that dies leaves
entries that expire with its heartbeat instead of lingering.
"""

from __future__ import annotations

import time
from typing import Protocol

COUNTERS = ("entered", "answered", "abandoned", "overflowed", "completed", "wait_total", "talk_total")


class QueueBoard(Protocol):
    async def add(self, queue: str, call_id: str, at: float) -> None: ...
    async def remove(self, queue: str, call_id: str) -> None: ...
    async def waiting(self, queue: str, now: float) -> tuple[int, float]: ...      # (calls, longest wait)
    async def position(self, queue: str, call_id: str) -> int | None: ...
    async def count(self, queue: str, counter: str, amount: float = 1.0) -> None: ...
    async def counters(self, queue: str) -> dict[str, float]: ...


class MemoryQueueBoard:
    def __init__(self, node_id: str = "") -> None:
        self.node_id = node_id
        self._entries: dict[str, dict[str, float]] = {}
        self._counters: dict[str, dict[str, float]] = {}

    async def add(self, queue: str, call_id: str, at: float) -> None:
        self._entries.setdefault(queue, {})[call_id] = at

    async def remove(self, queue: str, call_id: str) -> None:
        self._entries.get(queue, {}).pop(call_id, None)

    async def waiting(self, queue: str, now: float) -> tuple[int, float]:
        e = self._entries.get(queue, {})
        return len(e), max((now - t for t in e.values()), default=0.0)

    async def position(self, queue: str, call_id: str) -> int | None:
        e = self._entries.get(queue, {})
        if call_id not in e:
            return None
        return 1 + sum(1 for c, t in e.items() if (t, c) < (e[call_id], call_id))

    async def count(self, queue: str, counter: str, amount: float = 1.0) -> None:
        c = self._counters.setdefault(queue, dict.fromkeys(COUNTERS, 0.0))
        c[counter] = c.get(counter, 0.0) + amount

    async def counters(self, queue: str) -> dict[str, float]:
        return dict(self._counters.get(queue, dict.fromkeys(COUNTERS, 0.0)))


class RedisQueueBoard:
    """Entries in a sorted set per queue (score = arrival time, member = node|call); counters in a hash per
    queue. A node refreshes its heartbeat key; entries of nodes without a heartbeat are swept."""

    def __init__(self, redis, node_id: str, prefix: str = "ss:", heartbeat_ttl: float = 10.0) -> None:
        self.redis, self.node_id, self.prefix, self.ttl = redis, node_id, prefix, heartbeat_ttl

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _member(self, call_id: str) -> str:
        return f"{self.node_id}|{call_id}"

    async def heartbeat(self) -> None:
        await self.redis.set(self._k("node", self.node_id), str(time.time()), px=int(self.ttl * 1000))

    async def sweep(self, queues) -> int:
        """Drop the entries of nodes whose heartbeat is gone (their calls died with them). Each node's
        heartbeat is asked once per sweep and each queue's dead entries go in one command: the round trips
        grow with the queues and the nodes, not with the calls waiting."""
        gone = 0
        alive: dict[str, bool] = {}
        for q in queues:
            key = self._k("waiting", q)
            dead = []
            for m in await self.redis.zrange(key, 0, -1):
                node = m.split("|", 1)[0]
                if node not in alive:
                    alive[node] = bool(await self.redis.exists(self._k("node", node)))
                if not alive[node]:
                    dead.append(m)
            if dead:
                gone += await self.redis.zrem(key, *dead)
        return gone

    async def add(self, queue: str, call_id: str, at: float) -> None:
        await self.redis.zadd(self._k("waiting", queue), {self._member(call_id): at})

    async def remove(self, queue: str, call_id: str) -> None:
        await self.redis.zrem(self._k("waiting", queue), self._member(call_id))

    async def waiting(self, queue: str, now: float) -> tuple[int, float]:
        key = self._k("waiting", queue)
        n = await self.redis.zcard(key)
        first = await self.redis.zrange(key, 0, 0, withscores=True)
        return n, (now - first[0][1]) if first else 0.0

    async def position(self, queue: str, call_id: str) -> int | None:
        rank = await self.redis.zrank(self._k("waiting", queue), self._member(call_id))
        return None if rank is None else rank + 1

    async def count(self, queue: str, counter: str, amount: float = 1.0) -> None:
        await self.redis.hincrbyfloat(self._k("counters", queue), counter, amount)

    async def counters(self, queue: str) -> dict[str, float]:
        raw = await self.redis.hgetall(self._k("counters", queue))
        out = dict.fromkeys(COUNTERS, 0.0)
        out.update({k: float(v) for k, v in raw.items()})
        return out
