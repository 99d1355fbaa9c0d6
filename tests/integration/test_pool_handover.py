"""Pool hand-over on a real redis-server: a node releases and re-reserves its agent in one step, a dead node's
reservations are taken over (its token fenced) as soon as its liveness key lapses, and real nodes killed with
SIGKILL hand their agent to a survivor, one call at a time. The timings are in benchmarks/pool_bench.py."""

from __future__ import annotations

import asyncio

import pytest

from softswitch.pool.reservations import Pool
from tools.pool_scenarios import handover, next_call
from tools.redisserver import redis_server


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        yield url


def test_release_and_reserve_in_one_step_and_a_dead_holder_fenced(redis_url):
    async def scenario():
        loop = asyncio.get_running_loop()
        a, b = Pool(redis_url, "h1", loop, prefix="ho:"), Pool(redis_url, "h2", loop, prefix="ho:")
        try:
            assert await a.reserve("ag", "c1")
            t1 = a.tokens["ag"]
            # the release of c1 has not run yet: the same node's next offer gets the agent in the same step
            assert await a.reserve("ag", "c2") and a.tokens["ag"] > t1 and a.stats["lost"] == 0
            await a.release("ag", t1)                   # that late release frees nothing
            assert await a.holder("ag") == "h1" and "ag" in a.tokens
            assert not await b.reserve("ag", "c3")      # h1 lives: h2 waits for it
            assert b.engaged_at == {"ag": "h1"}
            # h1 falls silent (its liveness key is not refreshed): h2 takes the agent over
            for _ in range(200):                        # bounds a hang; the key lapses after LIVE_TTL
                if not await b.redis.exists("ho:live:h1"):
                    break
                await asyncio.sleep(0.05)
            assert await b.reserve("ag", "c3") and b.stats["taken_over"] == 1
            assert b.tokens["ag"] > a.tokens["ag"]
            await a.release("ag")                       # the dead holder's token is fenced
            assert await b.holder("ag") == "h2"
        finally:
            await a.stop()
            await b.stop()
    asyncio.run(scenario())


def test_a_node_killed_mid_call_hands_its_agent_to_the_survivor(redis_url, tmp_path):
    r = handover(redis_url, str(tmp_path), nodes=2)
    assert r["offered_by"] == ["h2"] and r["max_live"] == 1
    assert r["taken_over"] == 1                         # by fencing the dead holder, not by waiting out its lease


def test_three_nodes_one_killed_the_survivors_take_turns(redis_url, tmp_path):
    r = handover(redis_url, str(tmp_path), nodes=3)
    assert sorted(r["offered_by"]) == ["h2", "h3"]      # each waiting call reached the agent
    assert r["max_live"] == 1                           # never two calls to the agent at once
    assert r["taken_over"] == 1


def test_one_node_offers_its_agent_the_next_call_after_wrap_up(redis_url, tmp_path):
    r = next_call(redis_url, str(tmp_path), wrap_up=1.0)
    assert len(r["gaps_s"]) == 2
    assert r["reserved_elsewhere"] == 0                 # the node never found its own agent reserved
