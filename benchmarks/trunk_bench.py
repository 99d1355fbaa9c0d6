"""A trunk against Kamailio as its provider (started with a config written here, on free ports of 127.0.0.1):
registration round trips (the first with its digest challenge, then refreshes), how long OPTIONS pings take
to find the provider down after it stops and up after it comes back, and when new outbound calls move to the
dial plan's next trunk (the backup) once it has stopped answering.

    .venv/bin/python benchmarks/trunk_bench.py [--refreshes 200] [--cycles 5] [--interval 1s] [--threshold 3]
    .venv/bin/python benchmarks/trunk_bench.py --quick          (20 refreshes, one down/up cycle)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# the line the smoke run (tests/test_benchmarks_smoke.py) looks for
FIGURE_LINE = (r"^trunk: registration \d+\.\d+ ms \(challenged\), refresh median \d+\.\d+ ms; down after \d+\.\d+ s"
               r", failover after \d+\.\d+ s")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from softswitch.node import Node, credentials_from_config, new_loop, options_from_config  # noqa: E402
from softswitch.settings import parse_config  # noqa: E402
from tools.kamailioserver import Kamailio, free_udp_port  # noqa: E402


def config(tmp: Path, kport: int, interval: float, threshold: int, timeout: float):
    return parse_config(f"""\
server:
  sip: {{listen: [udp:127.0.0.1:{free_udp_port()}], domain: cc.bench}}
  media: {{anchor: false}}
  storage: {{cdr: "sqlite:///{tmp}/cdr.db"}}
trunks:
  - name: provider
    register: {{registrar: "sip:127.0.0.1:{kport}", username: trunk1, password: S3cret-Trunk, expires: 3600,
               retry: 100ms, retry_max: 1s}}
    proxy: 127.0.0.1:{kport}
    options: {{interval: {interval}, threshold: {threshold}, timeout: {timeout}}}
  - {{name: backup, proxy: "127.0.0.1:{free_udp_port()}"}}
dial_plan:
  routes: [{{numbers: "*", trunks: [provider, backup]}}]
""", str(tmp / "bench.yaml"))


async def until(cond, limit: float = 120.0) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > limit:
            raise SystemExit("timed out: the provider did not answer as expected")
        await asyncio.sleep(0.005)
    return time.monotonic() - t0


async def run(args, tmp: Path, kam: Kamailio) -> None:
    cfg = config(tmp, kam.port, args.interval, args.threshold, args.timeout)
    node = Node(options_from_config(cfg), cfg, asyncio.get_running_loop(), credentials_from_config(cfg))
    node.calls.max_loop_lag = node.calls.max_busy = node.calls.max_resend_ratio = float("inf")
    await node.start()
    try:
        reg = node.trunks.registrations["provider"]
        await until(lambda: reg.state == "registered")
        first = reg.round_trips[0]
        for i in range(args.refreshes):      # a refresh due now: same nonce, next nonce-count
            ok = reg.machine.stats["ok"]
            reg._timer()
            await until(lambda: reg.machine.stats["ok"] > ok)
        refresh = sorted(reg.round_trips[1:])
        pinger = node.trunks.pingers["provider"]
        await until(lambda: pinger.state == "up")
        downs, ups, failovers = [], [], []
        trunk_now = lambda: node.trunks.outbound("+4930555").first().trunk    # noqa: E731
        for _ in range(args.cycles):
            assert trunk_now() == "provider"
            kam.stop()
            t0 = time.monotonic()
            downs.append(await until(lambda: pinger.state == "down"))
            await until(lambda: trunk_now() == "backup")
            failovers.append(time.monotonic() - t0)
            kam.start()
            ups.append(await until(lambda: pinger.state == "up"))
        print(f"registration: {first * 1000:.2f} ms with its digest challenge (REGISTER, 401, REGISTER, 200)")
        print(f"refresh: {len(refresh)} round trips, median {statistics.median(refresh) * 1000:.2f} ms, "
              f"p99 {refresh[int(len(refresh) * 0.99) - 1] * 1000:.2f} ms")
        print(f"OPTIONS every {args.interval:g}s, down after {args.threshold} misses of {args.timeout:g}s: "
              f"down found in {statistics.median(downs):.2f} s (median of {len(downs)}; worst {max(downs):.2f}), "
              f"up again {statistics.median(ups):.2f} s after it answers again")
        print(f"failover: new outbound calls take the backup trunk {statistics.median(failovers):.2f} s after the "
              f"provider stops answering (dial plan [provider, backup])")
        print(f"trunk: registration {first * 1000:.2f} ms (challenged), refresh median "
              f"{statistics.median(refresh) * 1000:.2f} ms; down after {statistics.median(downs):.2f} s, "
              f"failover after {statistics.median(failovers):.2f} s, up after {statistics.median(ups):.2f} s")
    finally:
        await node.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--refreshes", type=int, default=200)
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--threshold", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=0.5)
    ap.add_argument("--quick", action="store_true", help="20 refreshes, one down/up cycle, pings every 200 ms")
    args = ap.parse_args()
    if args.quick:
        args.refreshes, args.cycles, args.interval, args.threshold, args.timeout = 20, 1, 0.2, 2, 0.2
    with tempfile.TemporaryDirectory() as tmp:
        kam = Kamailio(Path(tmp), free_udp_port())
        kam.start()
        loop = new_loop()
        try:
            loop.run_until_complete(run(args, Path(tmp), kam))
        finally:
            loop.close()
            kam.stop()


if __name__ == "__main__":
    main()
