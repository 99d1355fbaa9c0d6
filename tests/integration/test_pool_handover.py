"""Pool hand-over on a real redis-server: a node releases and re-reserves its agent in one step, a dead node's
reservations are taken over (its token fenced) as soon as its liveness key lapses, and real nodes killed with
SIGKILL hand their agent to a survivor, one call at a time. The timings are in benchmarks/pool_bench.py."""

from __future__ import annotations

import asyncio
import random

import pytest

from acd import Acd, Agent, QueueSpec
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


class _Center:
    """What the pool drives of the contact center: a real ACD, each input carried out at once."""

    def __init__(self, acd) -> None:
        self.acd = acd

    def run(self, fn, *args):
        return fn(*args)


def test_many_agents_engaged_elsewhere_are_checked_in_batches_and_the_unheld_freed(redis_url):
    # 2,500 agents engaged at another node; that node holds 2,000 of them: the 500 others are free again here,
    # and the check goes by the roster's index of engaged agents, in pipelined batches
    ags = [Agent(str(1 + i), str(50001 + i), {"q": 0}) for i in range(5000)]
    acd = Acd([QueueSpec("q")], ags, lambda: 1000.0, random.Random(0))
    engaged = [a.id for a in ags[:2500]]
    for agent_id in engaged:
        acd.set_elsewhere(agent_id, True)
    assert set(acd.roster.elsewhere) == set(engaged)

    async def scenario():
        loop = asyncio.get_running_loop()
        holder, here = Pool(redis_url, "b1", loop, prefix="bt:"), Pool(redis_url, "b2", loop, prefix="bt:")
        here.center = _Center(acd)
        try:
            for agent_id in engaged[:2000]:
                assert await holder.reserve(agent_id, "c-" + agent_id)
            await holder._refresh_held()
            assert await holder.holder(engaged[1999]) == "b1"
            await here._free_unheld()
        finally:
            await holder.stop()
            await here.stop()
    asyncio.run(scenario())
    assert set(acd.roster.elsewhere) == set(engaged[:2000])
    assert {a.id for a in acd.agents.values() if a.elsewhere} == set(engaged[:2000])
