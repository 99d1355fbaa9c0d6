"""Calls per second through the ACD: SIPp customers dial an access code, N auto-answering SIPp agent phones.

    .venv/bin/python benchmarks/call_bench.py [--agents 1000] [--rates 100,200,...] [--seconds 10] [--hold-ms 1000]
    .venv/bin/python benchmarks/call_bench.py --quick          (20 agents, 10 calls/s for 1 s)
For each rate: calls attempted, successful, failed, and how many the switch refused with 503 (overload).
Prints the highest rate with zero failed calls. The node runs as `softswitch serve` on a tenant from
benchmarks/tenant.py (one skill queue, every agent in it, no wrap-up); the agents' phones register from this
machine's address, which the tenant lists in `server.sip.security.exempt` as an operator lists an SBC.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^highest rate with zero failed calls, all answered by agents: \d+ calls/s"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import SIPP_BUFFER, cpu_seconds, free_port, serve, sipp, stop  # noqa: E402
from benchmarks.tenant import write_tenant  # noqa: E402
from tools.agents_load import api, register_agents, sign_in_all  # noqa: E402
from tools.sipp.talk_wav import NAME as TALK_WAV, write_talk_wav  # noqa: E402


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process (the node's event loop runs in its main thread, tid == pid)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:         # the thread ended meanwhile
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def log_counts(workdir: str) -> tuple[int, int]:
    """Offers declined and stuck calls repaired by the reconciler so far, from the node's log: both stay at 0
    while the node keeps up, and past capacity (calls refused with 503) too, unless it collapses."""
    declined = stuck = 0
    with open(os.path.join(workdir, "node.log"), errors="replace") as f:
        for line in f:
            declined += '"event": "acd_declined"' in line
            stuck += '"event": "reconcile_stuck_call"' in line
    return declined, stuck


def refusal_causes(before: dict, after: dict) -> str:
    """The node's 503s for overload between two /health answers, per measure past its ceiling ("-": none;
    a node older than the per-measure count says "?")."""
    if "refused_overloaded" not in after:
        return "?"
    a, b = before.get("refused_overloaded", {}), after["refused_overloaded"]
    return " ".join(f"{k}={b[k] - a.get(k, 0)}" for k in b if b[k] - a.get(k, 0)) or "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--rates", default="50,100,200,300,400,500,600,700,800")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--hold-ms", type=int, default=1000)
    ap.add_argument("--max-calls", type=int, default=5000)
    ap.add_argument("--direct-media", action="store_true",
                    help="signalling only: server.media.anchor false, customers re-INVITEd to the agent")
    ap.add_argument("--rtp", action="store_true",
                    help="the SIPp customers and agents talk: each streams PCMU for the whole call (anchored only)")
    ap.add_argument("--profile", metavar="FILE", help="run the node under cProfile, its stats written to FILE")
    ap.add_argument("--quick", action="store_true", help="20 agents, 10 calls/s for 1 s (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.agents, args.rates, args.seconds, args.hold_ms = 20, "10", 1.0, 200
    if args.rtp and args.direct_media:
        ap.error("--rtp measures the switch relaying the phones' audio: anchored media only")
    work = tempfile.mkdtemp(prefix="callbench-")
    if args.rtp:
        write_talk_wav(os.path.join(work, TALK_WAV))
    uas_port = free_port()
    tenant = write_tenant(os.path.join(work, "tenant.yaml"), args.agents, queues=1, anchor=not args.direct_media,
                          max_calls=args.max_calls, wrap_up="0s", ring_timeout="10s")
    phones, sip_port, http_port = tenant.phones, tenant.sip_port, tenant.http_port
    node, started = serve(tenant.path, work, profile=args.profile and os.path.abspath(args.profile))
    uas = None
    try:
        uas = subprocess.Popen(["sipp", "-sf", os.path.join(ROOT, "tools", "sipp",
                                                         "agent_uas_rtp.xml" if args.rtp else "agent_uas.xml"), "-i", "127.0.0.1",
                                "-p", str(uas_port), "-nostdin", "-trace_err", "-max_recv_loops", "10000", "-aa", *SIPP_BUFFER], cwd=work,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.perf_counter()
        assert register_agents(sip_port, phones, tenant.realm, uas_port) == len(phones)
        signed = sign_in_all(http_port, *tenant.supervisor, tenant.agent_ids)
        print(f"softswitch serve listening after {started:.1f} s; {len(phones)} agents registered and {signed} "
              f"signed in ({time.perf_counter() - t0:.1f} s)")
        print(f"{'rate/s':>7} {'calls':>7} {'ok':>7} {'failed':>7} {'503':>6} {'to agent':>9} {'achieved/s':>11} "
              f"{'node CPU us/call':>17} {'of which loop':>14} {'declined':>9} {'stuck':>6}  503 by measure")
        best = 0
        for rate in [int(r) for r in args.rates.split(",")]:
            calls = int(rate * args.seconds)
            health0 = api(f"http://127.0.0.1:{http_port}", "GET", "/health")
            h0 = health0["call_stats"]
            c0, t0, l0 = cpu_seconds(node.pid), thread_cpu(node.pid), log_counts(work)
            scenario = ("customer_call_direct.xml" if args.direct_media else
                        "customer_call_rtp.xml" if args.rtp else "customer_call.xml")
            r = sipp(scenario, sip_port, calls, rate, work,
                     ["-s", "4001", "-d", str(args.hold_ms), "-timeout_error", "-trace_err"], timeout=int(args.seconds * 4 + 30))
            # the node's CPU over the calls (set-up, media while held, tear-down): robust where wall-clock is not
            cpu_us = (cpu_seconds(node.pid) - c0) * 1e6 / max(1, r["ok"])
            t1 = thread_cpu(node.pid)
            loop_us = (t1[node.pid] - t0.get(node.pid, 0.0)) * 1e6 / max(1, r["ok"])
            l1 = log_counts(work)
            health1 = api(f"http://127.0.0.1:{http_port}", "GET", "/health")
            h1 = health1["call_stats"]
            why = refusal_causes(health0, health1)
            s503 = h1["overloaded"] - h0["overloaded"]
            by_agent = h1["answered_by_agent"] - h0["answered_by_agent"]
            achieved = r["ok"] / r["elapsed"] if r["elapsed"] else 0
            print(f"{rate:7d} {calls:7d} {r['ok']:7d} {r['failed']:7d} {s503:6d} {by_agent:9d} {achieved:11.0f} {cpu_us:17.0f} {loop_us:14.0f} {l1[0] - l0[0]:9d} {l1[1] - l0[1]:6d}  {why}",
                  flush=True)
            if r["failed"] == 0 and r["ok"] == calls and by_agent == calls:
                best = rate
            elif r["ok"] < calls * 0.5:
                break
            if rate != int(args.rates.split(",")[-1]):
                time.sleep(3)          # calls of this rate finish before the next
        mode = ("direct media" if args.direct_media else
                "media anchored by the switch" + (", both phones talking (PCMU both ways)" if args.rtp else
                                                  ", phones silent (hold music while queued)"))
        print(f"highest rate with zero failed calls, all answered by agents: {best} calls/s "
              f"({args.agents} agents, hold {args.hold_ms} ms, {mode})")
    finally:
        if uas is not None:
            uas.kill()
        stop(node)


if __name__ == "__main__":
    main()
