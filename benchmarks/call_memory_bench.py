"""Memory per concurrent call: RSS growth of `softswitch serve` while N customer calls are up with N agents.

    .venv/bin/python benchmarks/call_memory_bench.py [--calls 2000] [--rate 200] [--direct-media]
    .venv/bin/python benchmarks/call_memory_bench.py --quick          (20 calls, a smoke run)
SIPp customers dial the queue's access code and stay; as many auto-answering SIPp agent phones take them. The
node's RSS is read once the agents are registered and signed in, and again once every call is talking to an
agent; the difference over the number of calls up is the cost of one call (signalling, ACD, and with media
anchored, the two RTP streams). The node runs as `softswitch serve` on a tenant from benchmarks/tenant.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^memory per call: \d+(\.\d+)? KB"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import SIPP_BUFFER, free_port, rss_kb, serve, stop  # noqa: E402
from benchmarks.tenant import write_tenant  # noqa: E402
from tools.agents_load import api, register_agents, sign_in_all  # noqa: E402


def health(http_port: int) -> dict:
    return api(f"http://127.0.0.1:{http_port}", "GET", "/health")


def settle_rss(pid: int, seconds: float = 2.0) -> int:
    """RSS once it stops moving (the node's own start-up allocations and the sign-ins done)."""
    last, t_end = rss_kb(pid), time.monotonic() + seconds
    while time.monotonic() < t_end:
        time.sleep(0.5)
        now = rss_kb(pid)
        if abs(now - last) > 256:
            t_end = time.monotonic() + seconds
        last = now
    return last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rate", type=int, default=200, help="new calls per second while building up")
    ap.add_argument("--direct-media", action="store_true",
                    help="signalling only: server.media.anchor false, customers re-INVITEd to the agent")
    ap.add_argument("--quick", action="store_true", help="20 calls (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.calls, args.rate = 20, 20
    work = tempfile.mkdtemp(prefix="callmem-")
    uas_port = free_port()
    tenant = write_tenant(os.path.join(work, "tenant.yaml"), args.calls, queues=1, anchor=not args.direct_media,
                          max_calls=args.calls * 2, wrap_up="0s", ring_timeout="20s")
    node, started = serve(tenant.path, work)
    uas = customers = None
    build_up = args.calls / args.rate
    hold_ms = int((build_up + 30) * 1000)
    try:
        uas = subprocess.Popen(["sipp", "-sf", os.path.join(ROOT, "tools", "sipp", "agent_uas.xml"), "-i", "127.0.0.1",
                                "-p", str(uas_port), "-nostdin", "-max_recv_loops", "10000", "-aa", *SIPP_BUFFER], cwd=work,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert register_agents(tenant.sip_port, tenant.phones, tenant.realm, uas_port) == len(tenant.phones)
        signed = sign_in_all(tenant.http_port, *tenant.supervisor, tenant.agent_ids)
        before = settle_rss(node.pid)
        scenario = "customer_call_direct.xml" if args.direct_media else "customer_call.xml"
        customers = subprocess.Popen(
            ["sipp", f"127.0.0.1:{tenant.sip_port}", "-sf", os.path.join(ROOT, "tools", "sipp", scenario),
             "-s", "4001", "-m", str(args.calls), "-r", str(args.rate), "-l", str(args.calls), "-d", str(hold_ms),
             "-i", "127.0.0.1", "-p", str(free_port()), "-nostdin", "-max_recv_loops", "10000", "-max_sched_loops", "10000",
             "-timeout", f"{int(build_up + 90)}s"], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        h0 = health(tenant.http_port)["call_stats"]["answered_by_agent"]
        deadline = time.monotonic() + build_up + 25
        up = by_agent = 0
        while time.monotonic() < deadline:
            time.sleep(0.5)
            h = health(tenant.http_port)
            up, by_agent = h["calls"], h["call_stats"]["answered_by_agent"] - h0
            if by_agent >= args.calls:
                break
        during = settle_rss(node.pid)
        h = health(tenant.http_port)
        up = h["calls"]
        mode = "direct media" if args.direct_media else "media anchored by the switch"
        print(f"softswitch serve listening after {started:.1f} s; {len(tenant.phones)} agents registered, {signed} "
              f"signed in; RSS {before / 1024:.1f} MB before the calls, {during / 1024:.1f} MB with {up} calls up "
              f"({by_agent} answered by agents)")
        per_call = (during - before) / up if up else 0.0
        print(f"memory per call: {per_call:.1f} KB ({up} concurrent calls, {mode})")
    finally:
        for p in (customers, uas):
            if p is not None:
                p.kill()
        stop(node)


if __name__ == "__main__":
    main()
