"""Pool hand-over timings on real `softswitch serve` processes and a real redis-server:

- hand-over: one agent registered to two nodes talks at node 1, a caller waits at node 2; node 1 is killed
  with SIGKILL; the time from the kill to node 2's offer reaching the agent's phone (the liveness key's
  LIVE_TTL bounds it: the dead node's reservation is taken over, not waited out);
- next-call gap: one node in pool mode, one agent with a 1 s wrap-up, callers waiting: the time from the
  agent's hang-up to the next offer (wrap-up included).

Each figure is the median of --runs runs (three by default); --quick runs each once.
Usage: python benchmarks/pool_bench.py [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tools.pool_scenarios import handover, next_call  # noqa: E402
from tools.redisserver import redis_server  # noqa: E402

FIGURE_LINE = r"^pool: hand-over after kill -9 \d+ ms .*next-call gap \d+ ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--wrap-up", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="each measurement once")
    args = ap.parse_args()
    runs = 1 if args.quick else args.runs
    handovers, gaps, problems = [], [], []
    with tempfile.TemporaryDirectory() as tmp, redis_server() as url:
        for i in range(runs):
            r = handover(url, os.path.join(tmp, f"h{i}"), nodes=2)
            handovers.append(r["handover_s"])
            if r["max_live"] != 1:
                problems.append(f"run {i}: {r['max_live']} calls at once to the agent")
            print(f"run {i}: hand-over {r['handover_s'] * 1000:.0f} ms (taken over: {r['taken_over']})", flush=True)
            n = next_call(url, os.path.join(tmp, f"n{i}"), wrap_up=args.wrap_up)
            gaps += n["gaps_s"]
            if n["reserved_elsewhere"]:
                problems.append(f"run {i}: the node found its own agent reserved {n['reserved_elsewhere']} times")
            print(f"run {i}: next-call gaps {[round(g * 1000) for g in n['gaps_s']]} ms", flush=True)
    for p in problems:
        print("PROBLEM", p)
    h, g = statistics.median(handovers), statistics.median(gaps)
    print(f"pool: hand-over after kill -9 {h * 1000:.0f} ms (median of {runs}), next-call gap {g * 1000:.0f} ms "
          f"after a {args.wrap_up:g} s wrap-up ({g * 1000 - args.wrap_up * 1000:.0f} ms beyond it; median of "
          f"{len(gaps)})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
