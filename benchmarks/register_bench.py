"""Authenticated registrations per second: SIPp REGISTER/401/REGISTER/200 at increasing rates.

Prints, per rate, successful and failed registrations and retransmissions, and the highest rate with zero
failures and under 1% retransmissions. The node runs in its own process; SIPp on the same machine.

    .venv/bin/python benchmarks/register_bench.py [--rates 1000,2000,...] [--seconds 5] [--profile FILE]
"""

from __future__ import annotations

import argparse
import os
import tempfile

from common import free_port, sipp, start_node, stop
from node_runner import REALM, users


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="1000,2000,3000,4000,4500,5000,5500,6000,7000")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--profile", help="cProfile dump of the node for the whole run")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="regbench-")
    csv_path = os.path.join(work, "users.csv")
    with open(csv_path, "w") as f:
        f.write("SEQUENTIAL\n")
        for u, p in users(args.users):
            f.write(f"{u};{REALM};[authentication username={u} password={p}]\n")
    port = free_port()
    node = start_node(args.users, port, args.profile)
    best = 0
    try:
        print(f"{'rate/s':>7} {'ok':>7} {'failed':>7} {'retrans':>8} {'retrans%':>9} {'achieved/s':>11}")
        for rate in [int(r) for r in args.rates.split(",")]:
            calls = int(rate * args.seconds)
            r = sipp("register_auth.xml", port, calls, rate, work, ["-inf", csv_path])
            pct = 100.0 * r["retrans"] / max(1, 2 * calls)
            achieved = r["ok"] / r["elapsed"] if r["elapsed"] else 0
            print(f"{rate:7d} {r['ok']:7d} {r['failed']:7d} {r['retrans']:8d} {pct:8.2f}% {achieved:11.0f}",
                  flush=True)
            if r["failed"] == 0 and r["ok"] == calls and pct < 1.0:
                best = max(best, rate)
            elif r["failed"] > calls * 0.05:
                break
    finally:
        stop(node)
    print(f"highest rate with zero failed registrations and <1% retransmissions: {best}/s")


if __name__ == "__main__":
    main()
