"""Pool mode on a real redis-server: two nodes, one agent registered to both, never two calls at once."""

from __future__ import annotations

import time

import pjsua2
import pytest

from tests.support.cc import PASSWORDS, Api, cc_node, wait_for
from tools.redisserver import redis_server


def _accepts(port: int) -> bool:
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        yield url


@pytest.fixture(scope="module")
def phones():
    from tools.softphone import Softphones
    return Softphones.get()


def test_agent_on_two_nodes_gets_one_call_at_a_time(phones, redis_url, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with cc_node(tmp_path / "a", node_id="n1", state=redis_url, wrap_up="0s") as (na, pa, ha), \
            cc_node(tmp_path / "b", node_id="n2", state=redis_url, wrap_up="0s") as (nb, pb, hb):
        # one softphone account registered to both nodes (pool mode), same password
        agents = [phones.account("70001", PASSWORDS["70001"], f"127.0.0.1:{p}", domain="cc.test") for p in (pa, pb)]
        c1 = phones.account("5554001", "x", f"127.0.0.1:{pa}", domain="cc.test", register=False, auto_answer=False)
        c2 = phones.account("5554002", "x", f"127.0.0.1:{pb}", domain="cc.test", register=False, auto_answer=False)
        try:
            assert phones.wait(lambda: all(a.registered for a in agents), 5)
            api_a = Api(ha)
            api_a.login("acme_alice")
            api_a.call("POST", "/api/agents/me/sign-in", expect=200)
            api_b = Api(hb)
            api_b.login("acme_alice")
            # the sign-in made at node 1 reaches node 2 through Redis
            assert wait_for(lambda: api_b.state()["state"] == "idle", 3)
            r1 = c1.call(f"sip:4001@127.0.0.1:{pa}")
            r2 = c2.call(f"sip:4001@127.0.0.1:{pb}")
            peak = 0

            def active() -> int:
                return sum(1 for a in agents for rec in a.calls if rec.state in ("EARLY", "CONNECTING", "CONFIRMED",
                                                                                   "INCOMING"))
            end = time.monotonic() + 30                             # bounds a hang
            while time.monotonic() < end:
                phones.pump(0.05)
                peak = max(peak, active())
                if any(rec.state == "CONFIRMED" for a in agents for rec in a.calls):
                    break
            assert wait_for(lambda: "talking" in (api_a.state()["state"], api_b.state()["state"]), 10, phones)
            offers = [rec for a in agents for rec in a.calls]
            assert len(offers) == 1 and peak == 1                   # one call offered, the other waits
            first = offers[0]
            at_a = api_a.state()["state"] == "talking"            # which node's caller got the agent
            first_customer, waiting_api = (r1, api_b) if at_a else (r2, api_a)
            assert (api_b if at_a else api_a).state()["elsewhere"] is True
            assert waiting_api.call("GET", "/api/queues/support")[1]["waiting"] == 1
            phones.pump(1.0)
            assert sum(1 for a in agents for rec in a.calls) == 1   # still only one while it lasts
            first_customer.call.hangup(pjsua2.CallOpParam(True))
            assert phones.wait(lambda: first.ended_at is not None, 5)
            # the agent is freed everywhere: the call waiting at the other node is offered now
            end = time.monotonic() + 30                             # bounds a hang
            while time.monotonic() < end and sum(1 for a in agents for rec in a.calls) < 2:
                phones.pump(0.05)
                peak = max(peak, active())
            second = [rec for a in agents for rec in a.calls if rec is not first]
            assert second and phones.wait(lambda: second[0].state == "CONFIRMED", 6)
            assert peak == 1
        finally:
            for acc in (c1, c2):
                phones.remove(acc, unregister=False)
            for acc in agents:
                phones.remove(acc)


def test_a_node_killed_mid_call_frees_the_agent_for_the_survivor(phones, redis_url, tmp_path):
    import signal
    from tests.support.cc import config_text
    from tests.conftest import free_port
    from tests.support.serve import Served, wait_admitting
    nodes, ports = [], []
    for name in ("k1", "k2"):
        d = tmp_path / name
        d.mkdir()
        sip, http = free_port(), free_port()
        (d / "cc.yaml").write_text(config_text(sip, http, str(d / "cc.db"), 30000 + 1000 * (sip % 30),
                                               node_id=name, state=redis_url, wrap_up="0s"))
        nodes.append(Served(d / "cc.yaml"))
        ports.append((sip, http))
    (pa, ha), (pb, hb) = ports
    agents = [phones.account("70002", PASSWORDS["70002"], f"127.0.0.1:{p}", domain="cc.test") for p, _ in ports]
    cust = phones.account("5554003", "x", f"127.0.0.1:{pa}", domain="cc.test", register=False, auto_answer=False)
    try:
        assert phones.wait(lambda: all(a.registered for a in agents), 5)
        api_a, api_b = Api(ha), Api(hb)
        api_a.login("acme_bob")
        api_b.login("acme_bob")
        api_a.call("POST", "/api/agents/me/sign-in", expect=200)
        assert wait_for(lambda: api_b.state()["state"] == "idle", 3, phones)
        wait_admitting(ha)                                        # served nodes shed calls while the host is busy
        rec = cust.call(f"sip:4001@127.0.0.1:{pa}")
        assert phones.wait(lambda: any(r.state == "CONFIRMED" for a in agents for r in a.calls), 8)
        assert wait_for(lambda: api_b.state()["elsewhere"] is True, 3, phones)
        nodes[0].proc.send_signal(signal.SIGKILL)                 # node 1 dies with the call up
        nodes[0].proc.wait(5)
        for a in agents:                                          # the agent gives up on the dead call
            for r in a.calls:
                if r.ended_at is None:
                    try:
                        r.call.hangup(pjsua2.CallOpParam(True))
                    except pjsua2.Error:
                        pass
        # its liveness key lapses: the survivor frees the agent (60 s bound a hang)
        assert wait_for(lambda: api_b.state()["elsewhere"] is False, 60, phones)
        cust2 = phones.account("5554004", "x", f"127.0.0.1:{pb}", domain="cc.test", register=False,
                               auto_answer=False)
        try:
            before = sum(len(a.calls) for a in agents)
            wait_admitting(hb)
            r2 = cust2.call(f"sip:4001@127.0.0.1:{pb}")
            assert phones.wait(lambda: sum(len(a.calls) for a in agents) > before, 8)
            new = [r for a in agents for r in a.calls][-1]
            assert phones.wait(lambda: new.state == "CONFIRMED", 6)
            assert api_b.state()["state"] == "talking"
            # the customer's own leg answered too: hanging up before its 200 would be a CANCEL crossing it,
            # and a phone removed before it ACKs leaves the node re-sending the 200 for 32 s (and draining on stop)
            assert phones.wait(lambda: r2.state == "CONFIRMED", 6)
            r2.call.hangup(pjsua2.CallOpParam(True))
            assert phones.wait(lambda: new.ended_at is not None, 10)
        finally:
            phones.remove(cust2, unregister=False)
    finally:
        phones.remove(cust, unregister=False)
        for a in agents:
            phones.remove(a, unregister=False)
        for n in nodes:
            if n.proc.poll() is None:
                n.stop()


def test_node_keeps_serving_when_redis_goes_away(phones, tmp_path):
    import urllib.request
    with redis_server() as url:
        ctx = cc_node(tmp_path, node_id="solo", state=url, wrap_up="0s")
        nt, port, http = ctx.__enter__()
        agent = phones.account("70001", PASSWORDS["70001"], f"127.0.0.1:{port}", domain="cc.test")
        try:
            assert phones.wait(lambda: agent.registered, 5)
            api = Api(http)
            api.login("acme_alice")
            api.call("POST", "/api/agents/me/sign-in", expect=200)
        except BaseException:
            phones.remove(agent)
            ctx.__exit__(None, None, None)
            raise
    # Redis is gone now; the node still takes calls with what it knows
    cust = phones.account("5554005", "x", f"127.0.0.1:{port}", domain="cc.test", register=False, auto_answer=False)
    try:
        rec = cust.call(f"sip:4001@127.0.0.1:{port}")
        assert phones.wait(lambda: agent.calls and agent.calls[-1].state == "CONFIRMED", 10)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5).read().decode()
        assert "softswitch_pool_redis_up 0.0" in metrics
        rec.call.hangup(pjsua2.CallOpParam(True))
        assert phones.wait(lambda: agent.calls[-1].ended_at is not None, 5)
    finally:
        phones.remove(cust, unregister=False)
        phones.remove(agent, unregister=False)
        ctx.__exit__(None, None, None)


def test_three_nodes_show_the_pool_queue(redis_url, tmp_path):
    from tests.integration.test_dialogs import ack, answered, invite
    from tests.support.sipclient import UdpClient
    from tools.agents_load import register_agents
    from tests.conftest import free_port
    import contextlib
    import redis as redis_sync
    redis_sync.Redis.from_url(redis_url).flushdb()       # counters of earlier tests must not add up here
    with contextlib.ExitStack() as stack:
        nodes = []
        for name in ("p1", "p2", "p3"):
            (tmp_path / name).mkdir()
            nodes.append(stack.enter_context(cc_node(tmp_path / name, node_id=name, state=redis_url)))
        dead_end = free_port()
        for _, port, _ in nodes:                      # alice's phone registered to every node of the pool
            assert register_agents(port, [("70001", PASSWORDS["70001"])], "cc.test", dead_end) == 1
        api1 = Api(nodes[0][2])
        api1.login("acme_alice")
        api1.call("POST", "/api/agents/me/sign-in", expect=200)
        api1.call("POST", "/api/agents/me/state", {"state": "rest", "reason": "break"}, expect=200)
        apis = [Api(h) for _, _, h in nodes]
        for a in apis:
            a.login("acme_sam")
        assert wait_for(lambda: all(a.call("GET", "/api/agents/1001")[1]["state"] == "rest" for a in apis), 3)
        clients = []
        for i, (_, port, _) in enumerate(nodes):      # one caller waiting at each node
            c = UdpClient(("127.0.0.1", port))
            c.send(invite(port, c, f"pool-{i}"))
            ok = answered(c)
            assert ok.status == 200
            c.send(ack(port, c, f"pool-{i}", ok.to.tag))
            clients.append((c, port, ok.to.tag))
        def support(api):
            return api.call("GET", "/api/queues/support", expect=200)[1]
        assert wait_for(lambda: support(apis[1])["pool"]["waiting"] == 3, 3)
        view = support(apis[1])
        assert view["waiting"] == 1 and view["pool"]["entered"] == 3
        c, port, tag = clients[2]                     # the caller at node 3 gives up
        c.send((f"BYE sip:4001@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c.addr[1]};"
                f"branch=z9hG4bK-pool-bye;rport\r\nMax-Forwards: 70\r\nFrom: <sip:cust@x.test>;tag=ct\r\n"
                f"To: <sip:4001@cc.test>;tag={tag}\r\nCall-ID: pool-2\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n").encode())
        assert wait_for(lambda: support(apis[0])["pool"]["waiting"] == 2, 3)
        assert support(apis[0])["pool"]["abandoned"] == 1
        for c, _, _ in clients:
            c.close()


def test_node_recovers_when_redis_returns(tmp_path):
    import shutil
    import subprocess
    import urllib.request
    from tests.conftest import free_port
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path)]
    redis = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    assert wait_for(lambda: _accepts(port), 20)
    try:
        with cc_node(tmp_path, node_id="solo2", state=url) as (nt, sip, http):
            def up():
                text = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5).read().decode()
                return "softswitch_pool_redis_up 1.0" in text
            assert wait_for(up, 20)
            redis.terminate()
            redis.wait(5)
            assert wait_for(lambda: not up(), 30)         # says so, loudly
            redis = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert wait_for(up, 30)                       # and comes back by itself
    finally:
        redis.terminate()
        redis.wait(5)


def test_reservations_are_atomic_under_contention(redis_url):
    import asyncio
    from softswitch.pool.reservations import Pool

    async def scenario():
        loop = asyncio.get_running_loop()
        pools = [Pool(redis_url, f"race{i}", loop, prefix="race:") for i in range(4)]
        wins, fencing = [], []
        for round_ in range(100):
            agent = f"a{round_ % 5}"
            order = pools[round_ % 4:] + pools[:round_ % 4]      # who asks first changes every round
            results = await asyncio.gather(*(p.reserve(agent, f"c{round_}-{i}") for i, p in enumerate(order)))
            assert sum(results) == 1                      # exactly one node gets the agent
            winner = order[results.index(True)]
            wins.append(winner.node_id)
            tokens = [p.tokens.get(agent) for p in pools if agent in p.tokens]
            assert len(tokens) == 1
            fencing.append(tokens[0])
            await winner.release(agent)
        for p in pools:
            await p.stop()
        assert fencing == sorted(fencing) and len(set(fencing)) == len(fencing)    # fencing tokens only grow
        return wins
    wins = asyncio.run(scenario())
    assert len(wins) == 100 and len(set(wins)) > 1


def test_a_node_joining_later_learns_the_agents_states(redis_url, tmp_path):
    import redis as redis_sync
    from tools.agents_load import register_agents
    from tests.conftest import free_port
    (tmp_path / "j1").mkdir()
    (tmp_path / "j2").mkdir()
    with cc_node(tmp_path / "j1", node_id="j1", state=redis_url) as (n1, p1, h1):
        assert register_agents(p1, [("70002", PASSWORDS["70002"])], "cc.test", free_port()) == 1
        bob = Api(h1)
        bob.login("acme_bob")
        bob.call("POST", "/api/agents/me/sign-in", expect=200)
        bob.call("POST", "/api/agents/me/state", {"state": "rest", "reason": "lunch"}, expect=200)
        stored = redis_sync.Redis.from_url(redis_url, decode_responses=True)
        assert wait_for(lambda: stored.hget("ss:agent:1002", "reason") == "lunch", 20)     # node 1 stored it
        with cc_node(tmp_path / "j2", node_id="j2", state=redis_url) as (n2, p2, h2):
            assert register_agents(p2, [("70002", PASSWORDS["70002"])], "cc.test", free_port()) == 1
            late = Api(h2)
            late.login("acme_bob")
            assert wait_for(lambda: late.state()["state"] == "rest" and late.state()["reason"] == "lunch", 4)
