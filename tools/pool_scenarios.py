"""Pool scenarios on real `softswitch serve` processes sharing a real redis-server, played with raw UDP phones
(tools/crash_calls.py): the behaviour tests (tests/integration/test_pool_handover.py) check what happens, the benchmark
(benchmarks/pool_bench.py) reports how long it takes.

- handover: one agent registered to N nodes is talking at node 1; a caller waits at every other node; node 1
  is killed with SIGKILL. Some survivor must offer the agent its waiting call (the hand-over time is from the
  kill to that offer), never two survivors at once; when that call ends the next waiting one is offered.
- next_call: one node in pool mode, one agent, two callers: the second call must be offered right after the
  first call's wrap-up (the gap is from the end of the first call to the offer of the second).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from benchmarks.tenant import SUPERVISOR, TENANT_PASSWORD, write_tenant  # noqa: E402
from tools.agents_load import api, register_agents, sign_in_all  # noqa: E402
from tools.crash_calls import Calls, Phone  # noqa: E402


class ServedNode:
    """`softswitch serve` on a config; its log (stderr) kept in memory for the checks."""

    def __init__(self, config: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "softswitch.cli", "serve", "--config", config],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=str(ROOT))
        self.log: list[str] = []
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("records "):
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()
                return
        self.proc.kill()
        raise RuntimeError(f"node {config} did not start")

    def logged(self, text: str) -> int:
        return sum(1 for line in list(self.log) if text in line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(0.5)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)     # the second cuts the drain of calls still up short
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def pool_tenant(workdir: str, name: str, redis_url: str, wrap_up: str = "0s"):
    """A one-queue tenant for node `name` of the pool on `redis_url`, with one agent."""
    os.makedirs(os.path.join(workdir, name), exist_ok=True)
    rtp = 30000 + random.randrange(150) * 200
    t = write_tenant(os.path.join(workdir, name, "node.yaml"), agents=1, queues=1, wrap_up=wrap_up,
                     ring_timeout="10s", rtp_ports=f"{rtp}-{rtp + 199}", workdir=os.path.join(workdir, name))
    text = Path(t.path).read_text().replace("node_id: bench-1", f"node_id: {name}")
    text = re.sub(r"state: memory", f"state: \"{redis_url}\"", text)
    Path(t.path).write_text(text)
    return t


def _pump_until(calls: Calls, pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout             # bounds a hang
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        calls.pump(time.monotonic() + 0.01)


def _live(phone: Phone, exclude: set[str] = frozenset()) -> list[dict]:
    return [d for cid, d in phone.dialogs.items() if cid not in exclude and d["state"] in ("answered", "up")]


def _fresh(redis_url: str) -> None:
    """Each scenario on an empty database: no agent state or reservation of an earlier one."""
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    r.close()


def handover(redis_url: str, workdir: str, nodes: int = 2) -> dict:
    _fresh(redis_url)
    names = [f"h{i + 1}" for i in range(nodes)]
    tenants = [pool_tenant(workdir, n, redis_url) for n in names]
    served: list[ServedNode] = []
    agent = Phone(tenants[0].phones[0][0])
    try:
        for t in tenants:
            served.append(ServedNode(t.path))
            assert register_agents(t.sip_port, [t.phones[0]], t.realm, agent.port) == 1
        assert sign_in_all(tenants[0].http_port, SUPERVISOR, TENANT_PASSWORD, tenants[0].agent_ids) == 1
        agent_id = tenants[0].agent_ids[0]
        for t in tenants[1:]:                         # the sign-in reaches every node through Redis
            base = f"http://127.0.0.1:{t.http_port}"
            token = api(base, "POST", "/api/login", {"account": SUPERVISOR, "password": TENANT_PASSWORD})["token"]
            deadline = time.monotonic() + 20
            while api(base, "GET", f"/api/agents/{agent_id}", token=token)["state"] != "idle":
                assert time.monotonic() < deadline, "the sign-in did not reach every node"
                time.sleep(0.05)
        sip = [("127.0.0.1", t.sip_port) for t in tenants]
        calls = Calls(sip[0], [agent], random.Random(1), hang_up=False)
        first = calls.place("first", sip[0])
        _pump_until(calls, lambda: any(d["state"] == "up" for d in agent.dialogs.values()), 20, "first call")
        dead_dialogs = set(agent.dialogs)
        waiting = [calls.place(f"wait{i}", s) for i, s in enumerate(sip[1:], 2)]
        _pump_until(calls, lambda: all(calls.placed[c]["state"] == "up" for c in waiting), 20, "callers waiting")
        calls.pump(time.monotonic() + 0.3)               # they stay waiting: the agent is engaged at node 1
        assert len(agent.dialogs) == 1, "a waiting call was offered while the agent was talking"
        served[0].proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        served[0].proc.wait(10)
        max_live = 0

        def offered() -> bool:
            nonlocal max_live
            max_live = max(max_live, len(_live(agent, dead_dialogs)))
            return len(agent.dialogs) > len(dead_dialogs)
        _pump_until(calls, offered, 30, "the survivor offers the agent")
        new = [d for cid, d in agent.dialogs.items() if cid not in dead_dialogs]
        handover_s = new[0]["offered_at"] - killed
        by = [i for i, s in enumerate(sip) if new[0]["peer"][1] == s[1]]
        order = [by[0]]
        # while that call lasts no other node offers the agent; then the next waiting call comes
        for _ in range(len(waiting) - 1):
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                calls.pump(time.monotonic() + 0.01)
                max_live = max(max_live, len(_live(agent, dead_dialogs)))
            assert len(_live(agent, dead_dialogs)) == 1
            current = _live(agent, dead_dialogs)[0]
            current["state"] = "bye sent"
            agent.request("BYE", current)
            seen = set(agent.dialogs)
            _pump_until(calls, lambda: len(agent.dialogs) > len(seen), 30, "the next waiting call is offered")
            nxt = [d for cid, d in agent.dialogs.items() if cid not in seen][0]
            order.append([i for i, s in enumerate(sip) if nxt["peer"][1] == s[1]][0])
            max_live = max(max_live, len(_live(agent, dead_dialogs)))
        calls.pump(time.monotonic() + 0.2)
        max_live = max(max_live, len(_live(agent, dead_dialogs)))
        return {"handover_s": handover_s, "offered_by": [names[i] for i in order], "max_live": max_live,
                "first": first, "taken_over": sum(s.logged("pool_reservation_taken_over") for s in served[1:]),
                "expired": sum(s.logged("pool_reservation_expired") for s in served[1:])}
    finally:
        for s in served:
            s.stop()
        agent.sock.close()


def next_call(redis_url: str, workdir: str, wrap_up: float = 1.0) -> dict:
    _fresh(redis_url)
    t = pool_tenant(workdir, "solo", redis_url, wrap_up=f"{wrap_up}s")
    node = ServedNode(t.path)
    agent = Phone(t.phones[0][0])
    try:
        assert register_agents(t.sip_port, [t.phones[0]], t.realm, agent.port) == 1
        assert sign_in_all(t.http_port, SUPERVISOR, TENANT_PASSWORD, t.agent_ids) == 1
        sip = ("127.0.0.1", t.sip_port)
        calls = Calls(sip, [agent], random.Random(1), hang_up=False)
        gaps = []
        calls.place("c", sip)
        for _ in range(2):
            _pump_until(calls, lambda: any(d["state"] == "up" for d in agent.dialogs.values()), 20, "call offered")
            calls.place("c", sip)                        # the next caller waits for this call to end
            seen = set(agent.dialogs)
            current = next(d for d in agent.dialogs.values() if d["state"] == "up")
            current["state"] = "bye sent"
            agent.request("BYE", current)
            ended = time.monotonic()
            _pump_until(calls, lambda: len(agent.dialogs) > len(seen), 30, "the next call is offered")
            nxt = [d for cid, d in agent.dialogs.items() if cid not in seen][0]
            gaps.append(nxt["offered_at"] - ended)
        return {"gaps_s": gaps, "wrap_up_s": wrap_up, "reserved_elsewhere": node.logged("agent_reserved_elsewhere")}
    finally:
        node.stop()
        agent.sock.close()
