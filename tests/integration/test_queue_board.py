"""One contract for the queue board: memory (single node) and Redis (pool, a real redis-server)."""

from __future__ import annotations

import asyncio

import pytest

from softswitch.pool.queue_board import MemoryQueueBoard, RedisQueueBoard
from tools.redisserver import redis_server


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        yield url


def run(coro):
    return asyncio.run(coro)


async def _redis_board(url, node="n1"):
    from redis.asyncio import Redis
    r = Redis.from_url(url, decode_responses=True)
    await r.flushdb() if node == "n1" else None
    return RedisQueueBoard(r, node)


@pytest.fixture(params=["memory", "redis"])
def make_board(request, redis_url):
    if request.param == "memory":
        return lambda: MemoryQueueBoard("n1")
    return lambda: _redis_board(redis_url)


async def _get(factory):
    b = factory()
    return await b if asyncio.iscoroutine(b) else b


def test_waiting_positions_and_counters(make_board):
    async def scenario():
        b = await _get(make_board)
        await b.add("q", "c1", 100.0)
        await b.add("q", "c2", 105.0)
        await b.add("other", "c3", 90.0)
        assert await b.waiting("q", 110.0) == (2, 10.0)
        assert (await b.position("q", "c1"), await b.position("q", "c2")) == (1, 2)
        await b.remove("q", "c1")
        assert await b.position("q", "c2") == 1 and await b.position("q", "c1") is None
        assert await b.waiting("q", 110.0) == (1, 5.0)
        await b.count("q", "answered")
        await b.count("q", "wait_total", 2.5)
        c = await b.counters("q")
        assert (c["answered"], c["wait_total"], c["abandoned"]) == (1.0, 2.5, 0.0)
        assert await b.waiting("empty", 1.0) == (0, 0.0)
    run(scenario())


def test_redis_board_adds_up_nodes_and_sweeps_dead_ones(redis_url):
    async def scenario():
        n1 = await _redis_board(redis_url, "n1")
        n2 = await _redis_board(redis_url, "n2")
        n2.ttl = 0.3
        await n1.heartbeat()
        await n2.heartbeat()
        await n1.add("q", "a", 1.0)
        await n2.add("q", "b", 2.0)
        await n1.count("q", "entered")
        await n2.count("q", "entered")
        assert await n1.waiting("q", 3.0) == (2, 2.0)
        assert await n2.position("q", "b") == 2
        assert (await n1.counters("q"))["entered"] == 2.0          # pool-wide counters
        await asyncio.sleep(0.5)                                   # n2 stops beating: it died
        await n1.heartbeat()
        assert await n1.sweep(["q"]) == 1
        assert await n1.waiting("q", 3.0) == (1, 2.0)
    run(scenario())


class _Counting:
    """The real client, counting the commands sent through it."""

    def __init__(self, redis) -> None:
        self.redis, self.sent = redis, []

    def __getattr__(self, name):
        self.sent.append(name)
        return getattr(self.redis, name)


def test_redis_sweep_asks_each_node_once_whatever_the_calls_waiting(redis_url):
    async def scenario():
        n1 = await _redis_board(redis_url, "n1")
        dead = await _redis_board(redis_url, "n9")
        await n1.heartbeat()
        for q in ("q", "r"):
            for i in range(200):
                await dead.add(q, f"{q}{i}", float(i))        # n9 never beat: its calls are gone
            await n1.add(q, f"live-{q}", 5.0)
        counting = _Counting(n1.redis)
        n1.redis = counting
        assert await n1.sweep(["q", "r"]) == 400
        assert counting.sent.count("exists") == 2 and counting.sent.count("zrem") == 2
        assert await n1.waiting("q", 10.0) == (1, 5.0) and await n1.waiting("r", 10.0) == (1, 5.0)
    run(scenario())
