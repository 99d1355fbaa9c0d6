"""Pool mode on a real redis-server: two nodes, one agent registered to both, never two calls at once."""

from __future__ import annotations

import time

import pjsua2
import pytest

from tests.cc import PASSWORDS, Api, cc_node, wait_for
from tools.redisserver import redis_server


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
            end = time.monotonic() + 6
            while time.monotonic() < end:
                phones.pump(0.05)
                peak = max(peak, active())
                if any(rec.state == "CONFIRMED" for a in agents for rec in a.calls):
                    break
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
            end = time.monotonic() + 8
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
    from tests.cc import config_text
    from tests.conftest import free_port
    from tests.serve import Served
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
        t0 = time.monotonic()
        assert wait_for(lambda: api_b.state()["elsewhere"] is False, 15, phones)   # its reservation expired
        freed_after = time.monotonic() - t0
        cust2 = phones.account("5554004", "x", f"127.0.0.1:{pb}", domain="cc.test", register=False,
                               auto_answer=False)
        try:
            before = sum(len(a.calls) for a in agents)
            r2 = cust2.call(f"sip:4001@127.0.0.1:{pb}")
            assert phones.wait(lambda: sum(len(a.calls) for a in agents) > before, 8)
            new = [r for a in agents for r in a.calls][-1]
            assert phones.wait(lambda: new.state == "CONFIRMED", 6)
            assert api_b.state()["state"] == "talking"
            r2.call.hangup(pjsua2.CallOpParam(True))
            phones.wait(lambda: new.ended_at is not None, 5)
        finally:
            phones.remove(cust2, unregister=False)
        assert freed_after < 12
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
