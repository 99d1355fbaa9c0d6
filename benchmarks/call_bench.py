"""Calls per second through the ACD: SIPp customers dial an access code, N auto-answering SIPp agent phones.

    .venv/bin/python benchmarks/call_bench.py [--agents 600] [--rates 100,200,...] [--seconds 10] [--hold-ms 500]
For each rate: calls attempted, successful, failed, and how many the switch refused with 503 (overload).
Prints the highest rate with zero failed calls. The node runs as `softswitch serve` in its own process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import free_port, sipp  # noqa: E402
from tools.agents_load import api, register_agents, sign_in_all  # noqa: E402

REALM = "bench.test"


def write_config(path: str, sip_port: int, http_port: int, n: int, db: str, max_calls: int,
                 anchor: bool) -> list[tuple[str, str]]:
    phones = [(str(80000 + i), f"Bench-Pass-{i}!") for i in range(n)]
    lines = ["server:", f"  sip: {{listen: [udp:127.0.0.1:{sip_port}], domain: {REALM}, max_calls: {max_calls}}}",
             f"  http: {{listen: 127.0.0.1:{http_port}}}", f"  storage: {{cdr: \"sqlite:///{db}\"}}",
             f"  media: {{anchor: {str(anchor).lower()}}}",
             "employees:", "  - {account: bench_sup, name: Sup, role: supervisor, password: Bench-Sup-1!}"]
    lines += [f"  - {{account: bench_a{i}, name: A{i}, password: Bench-Acct-{i}!}}" for i in range(n)]
    lines.append("agents:")
    lines += [f"  - {{id: \"{10000 + i}\", account: bench_a{i}, softphone: \"{u}\", softphone_password: \"{p}\", "
              f"queues: [bench]}}" for i, (u, p) in enumerate(phones)]
    lines += ["skill_queues:", "  - {name: bench, strategy: longest_idle, wrap_up: 0s, ring_timeout: 10s, "
              "max_wait: 30s, max_calls: 100000}", "called_routes:", "  - {called: \"4001\", queue: bench}"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return phones


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=600)
    ap.add_argument("--rates", default="50,100,200,300,400,500,600,700")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--hold-ms", type=int, default=500)
    ap.add_argument("--max-calls", type=int, default=3000)
    ap.add_argument("--direct-media", action="store_true",
                    help="signalling only: server.media.anchor false, customers re-INVITEd to the agent")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="callbench-")
    sip_port, http_port, uas_port = free_port(), free_port(), free_port()
    cfg = os.path.join(work, "bench.yaml")
    phones = write_config(cfg, sip_port, http_port, args.agents, os.path.join(work, "cdr.db"), args.max_calls,
                          not args.direct_media)
    node = subprocess.Popen([sys.executable, "-m", "softswitch.cli", "serve", "--config", cfg], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    uas = None
    try:
        while not (node.stdout.readline() or "listening http").startswith("listening http"):
            pass
        uas = subprocess.Popen(["sipp", "-sf", os.path.join(ROOT, "tools", "sipp", "agent_uas.xml"), "-i", "127.0.0.1",
                                "-p", str(uas_port), "-nostdin", "-bg" if False else "-trace_err",
                                "-max_recv_loops", "10000"], cwd=work, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        t0 = time.perf_counter()
        assert register_agents(sip_port, phones, REALM, uas_port) == len(phones)
        signed = sign_in_all(http_port, "bench_sup", "Bench-Sup-1!", [str(10000 + i) for i in range(len(phones))])
        print(f"{len(phones)} agents registered and {signed} signed in ({time.perf_counter() - t0:.1f} s)")
        print(f"{'rate/s':>7} {'calls':>7} {'ok':>7} {'failed':>7} {'503':>6} {'to agent':>9} {'achieved/s':>11}")
        best = 0
        for rate in [int(r) for r in args.rates.split(",")]:
            calls = int(rate * args.seconds)
            h0 = api(f"http://127.0.0.1:{http_port}", "GET", "/health")["call_stats"]
            r = sipp("customer_call_direct.xml" if args.direct_media else "customer_call.xml", sip_port, calls, rate, work,
                     ["-s", "4001", "-d", str(args.hold_ms), "-timeout_error", "-trace_err"], timeout=int(args.seconds * 4 + 30))
            h1 = api(f"http://127.0.0.1:{http_port}", "GET", "/health")["call_stats"]
            s503 = h1["overloaded"] - h0["overloaded"]
            by_agent = h1["answered_by_agent"] - h0["answered_by_agent"]
            achieved = r["ok"] / r["elapsed"] if r["elapsed"] else 0
            print(f"{rate:7d} {calls:7d} {r['ok']:7d} {r['failed']:7d} {s503:6d} {by_agent:9d} {achieved:11.0f}",
                  flush=True)
            if r["failed"] == 0 and r["ok"] == calls and by_agent == calls:
                best = rate
            elif r["ok"] < calls * 0.5:
                break
            time.sleep(3)
        mode = "direct media" if args.direct_media else "media anchored by the switch"
        print(f"highest rate with zero failed calls, all answered by agents: {best} calls/s "
              f"({args.agents} agents, hold {args.hold_ms} ms, {mode})")
    finally:
        if uas is not None:
            uas.kill()
        node.terminate()
        node.wait(20)


if __name__ == "__main__":
    main()
