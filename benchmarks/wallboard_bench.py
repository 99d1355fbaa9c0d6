"""What supervisors' wallboards cost the node: `softswitch serve` on a generated tenant (default 20,000 agents,
some registered and signed in), V supervisors each refreshing their board once a second as the page does; prints
the node's CPU per refresh and the bytes each one downloads, how long SIP OPTIONS waits meanwhile, and the CPU of
a /metrics scrape.

    .venv/bin/python benchmarks/wallboard_bench.py [--agents 20000] [--signed-in 200] [--viewers 5] [--seconds 5]

A refresh is what the page fetches each time: GET /api/wallboard and, where the node has it, the agent panel's
page GET /api/wallboard/agents (a node without it sends every agent in the board). Run it with
PYTHONPATH=<tree> to measure that tree's code; CPU is the node's own (user + system), less its idle rate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.common import Pinger, cpu_seconds, free_port, serve, stop  # noqa: E402
from benchmarks.tenant import FIRST_ID, TENANT_PASSWORD, write_tenant  # noqa: E402
from tools.agents_load import register_agents  # noqa: E402

FIGURE_LINE = r"^wallboard: \d+ agents, \d+ viewers: [\d.]+ ms node CPU per refresh"


def call(base: str, path: str, token: str | None = None, body=None) -> tuple[int, bytes]:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def login(base: str, account: str) -> str:
    status, body = call(base, "/api/login", body={"account": account, "password": TENANT_PASSWORD})
    assert status == 200, body
    return json.loads(body)["token"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=20000)
    ap.add_argument("--signed-in", type=int, default=200, help="agents registered and signed in")
    ap.add_argument("--viewers", type=int, default=5, help="supervisors refreshing once a second each")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--quick", action="store_true", help="300 agents, 10 signed in, 2 viewers, 2 s")
    a = ap.parse_args(argv)
    if a.quick:
        a.agents, a.signed_in, a.viewers, a.seconds = 300, 10, 2, 2.0
    work = tempfile.mkdtemp(prefix="wallboard-bench-")
    t = write_tenant(os.path.join(work, "tenant.yaml"), agents=a.agents, queues=20)
    proc, took = serve(t.path, work, timeout=300)
    base = f"http://127.0.0.1:{t.http_port}"
    try:
        n = min(a.signed_in, a.agents)
        registered = register_agents(t.sip_port, t.phones[:n], t.realm, free_port())
        sup = login(base, t.supervisor[0])
        signed = sum(call(base, f"/api/agents/{FIRST_ID + i}/sign-in", sup, {})[0] == 200 for i in range(n))
        tokens = [login(base, t.supervisor[0]) for _ in range(a.viewers)]
        paged = call(base, "/api/wallboard/agents?limit=1", sup)[0] == 200
        paths = ["/api/wallboard"] + (["/api/wallboard/agents?state=signed_in&limit=50"] if paged else [])
        for path in paths:                      # warm: the first answer builds caches (name order, imports)
            assert call(base, path, sup)[0] == 200
        time.sleep(1.0)

        pid = proc.pid
        c0, w0 = cpu_seconds(pid), time.perf_counter()
        time.sleep(min(2.0, a.seconds))         # the node's idle rate (keepalives, samplers), taken off below
        idle_rate = (cpu_seconds(pid) - c0) / (time.perf_counter() - w0)

        pinger, stop_ping = Pinger(t.sip_port), threading.Event()

        def ping() -> None:
            while not stop_ping.is_set():
                pinger.ping()
                time.sleep(0.05)
        pinging = threading.Thread(target=ping, daemon=True)
        pinging.start()
        refreshes, sizes, failures = 0, [], 0
        c0, w0 = cpu_seconds(pid), time.perf_counter()
        while time.perf_counter() - w0 < a.seconds:
            round_start = time.perf_counter()
            for token in tokens:                # each viewer's refresh: all the page fetches
                size = 0
                for path in paths:
                    status, body = call(base, path, token)
                    failures += status != 200
                    size += len(body)
                sizes.append(size)
                refreshes += 1
            time.sleep(max(0.0, 1.0 - (time.perf_counter() - round_start)))
        wall = time.perf_counter() - w0
        cpu = cpu_seconds(pid) - c0 - idle_rate * wall
        stop_ping.set()
        pinging.join(10)

        # a Prometheus scrape: what it costs, alone
        c0, scrapes, scraped = cpu_seconds(pid), 0, 0
        w0 = time.perf_counter()
        while scrapes < 20:
            status, body = call(base, "/metrics")
            failures += status != 200
            scrapes, scraped = scrapes + 1, len(body)
        metrics_ms = 1000 * max(0.0, cpu_seconds(pid) - c0 - idle_rate * (time.perf_counter() - w0)) / scrapes
    finally:
        stop(proc)
    per = 1000 * max(0.0, cpu) / max(1, refreshes)
    print(f"tenant: {a.agents} agents ({registered} registered, {signed} signed in), node up in {took:.1f} s; "
          f"refresh = {' + '.join(paths)}")
    print(f"wallboard: {a.agents} agents, {a.viewers} viewers: {per:.1f} ms node CPU per refresh, "
          f"{sum(sizes) / max(1, len(sizes)) / 1024:.1f} KB per refresh, {refreshes} refreshes in {wall:.1f} s "
          f"({failures} failed); {pinger.summary()}")
    print(f"metrics: {metrics_ms:.1f} ms node CPU per scrape of /metrics, {scraped / 1024:.1f} KB")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
