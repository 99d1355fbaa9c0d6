"""UDP OPTIONS round trips with SIPp through `softswitch serve` on a generated tenant: the highest rate
answered completely, and SIPp's response times.

    .venv/bin/python benchmarks/options_bench.py [--agents 10000] [--rates 2000,4000,...] [--seconds 5]
    .venv/bin/python benchmarks/options_bench.py --quick         (100 agents, one short run)
Also prints the median and 99th percentile round trip of a lone ping-pong client (no load), for reference.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time

# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^highest OPTIONS rate answered with zero failures and <1% retransmissions: \d+/s"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import serve, sipp, stop  # noqa: E402
from benchmarks.tenant import write_tenant  # noqa: E402


def ping_pong(port: int, n: int = 2000) -> list[float]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    out = []
    for i in range(n):
        msg = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK-pp{i};rport\r\n"
               f"From: <sip:pp@127.0.0.1>;tag=pp\r\nTo: <sip:127.0.0.1>\r\nCall-ID: pp-{i}\r\nCSeq: 1 OPTIONS\r\n"
               "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
        t0 = time.perf_counter()
        s.sendto(msg, ("127.0.0.1", port))
        s.recvfrom(65535)
        out.append(time.perf_counter() - t0)
    return out


def ms(value: str) -> float:
    """SIPp writes response times as HH:MM:SS:uuuuuu (microseconds) or HH:MM:SS:mmm, depending on version."""
    parts = value.split(":")
    if len(parts) == 4:
        h, m, s, frac = parts
        sub = int(frac) / (1000.0 if len(frac) == 6 else 1.0)
        return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + sub
    return float(value or 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=10000)
    ap.add_argument("--rates", default="2000,4000,6000,8000,10000,12000,14000")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--pings", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="100 agents, 200 pings, 500/s for 1 s (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.agents, args.rates, args.seconds, args.pings = 100, "500", 1.0, 200
    work = tempfile.mkdtemp(prefix="optbench-")
    tenant = write_tenant(os.path.join(work, "tenant.yaml"), args.agents, anchor=False)
    port = tenant.sip_port
    node, _ = serve(tenant.path, work)
    best = 0
    try:
        rtts = sorted(ping_pong(port, args.pings))
        print(f"lone client round trip: median {1e6 * statistics.median(rtts):.0f} us, "
              f"p99 {1e6 * rtts[int(len(rtts) * 0.99)]:.0f} us over {len(rtts)} pings")
        print(f"{'rate/s':>7} {'ok':>7} {'failed':>7} {'retrans':>8} {'mean rtt ms':>12} {'achieved/s':>11}")
        for rate in [int(r) for r in args.rates.split(",")]:
            calls = int(rate * args.seconds)
            r = sipp("options.xml", port, calls, rate, work)
            rtt = ms(r["stats"].get("ResponseTime1(C)", "0"))
            achieved = r["ok"] / r["elapsed"] if r["elapsed"] else 0
            print(f"{rate:7d} {r['ok']:7d} {r['failed']:7d} {r['retrans']:8d} {rtt:12.2f} {achieved:11.0f}", flush=True)
            if r["failed"] == 0 and r["ok"] == calls and r["retrans"] < calls * 0.01:
                best = rate
            elif r["failed"] > calls * 0.05:
                break
    finally:
        stop(node)
    print(f"highest OPTIONS rate answered with zero failures and <1% retransmissions: {best}/s "
          f"({args.agents}-agent tenant)")


if __name__ == "__main__":
    main()
