"""Records under SIGKILL: a node is killed within 0-20 ms of call ends, --rounds times (tools/crash_calls.py),
restarting on the same database each time; every call whose end a phone saw must have its CDR and closing
queue-log line, and after the last restart every call that entered the queue exactly one of each.

Usage: python benchmarks/crash_bench.py [--rounds 1000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tools.crash_calls import run_crashes  # noqa: E402

FIGURE_LINE = r"^crash: \d+ kills, \d+ call ends seen, \d+ lost or doubled"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--quick", action="store_true", help="20 kills")
    args = ap.parse_args()
    rounds = 20 if args.quick else args.rounds
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        stats = run_crashes(tmp, rounds, args.seed, report=lambda s: print(s, flush=True))
    for p in stats["problems"][:20]:
        print("PROBLEM", p)
    took = time.monotonic() - t0
    lat = sorted(stats["bye_to_200"])
    if lat:
        print(f"BYE -> 200 (the call's records committed first): median {statistics.median(lat) * 1000:.1f} ms, "
              f"p95 {lat[int(len(lat) * 0.95)] * 1000:.1f} ms over {len(lat)} hang-ups")
    print(f"crash: {stats['rounds']} kills, {stats['seen_ends']} call ends seen, {len(stats['problems'])} lost or "
          f"doubled ({stats['cdrs']} CDRs, {stats['interrupted']} interrupted, seed {args.seed}, {took:.0f} s)")
    return 1 if stats["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
