"""SIP trunks, both ways. Inbound, SIPp as the carrier: calls delivered over a trunk trusted by its address
(127.0.0.1) at --rate calls/s for --seconds into a skill queue of --agents auto-answering SIPp agent phones, the
DID in the carrier's format (0305554001, the trunk strips 030555), the caller's number only in
P-Asserted-Identity; then the same INVITEs from an address that is no trunk's (127.0.0.2), which must all be
challenged (407). Printed: calls offered and answered, failures, 503s, the node's CPU per call, how many CDRs
carry the caller's number from P-Asserted-Identity, and how many of the untrusted copies were challenged.

Then the trunk against Kamailio as its provider (started with a config written here, on free ports of
127.0.0.1): registration round trips (the first with its digest challenge, then refreshes), how long OPTIONS
pings take to find the provider down after it stops and up after it comes back, and when new outbound calls
move to the dial plan's next trunk (the backup) once it has stopped answering.

    .venv/bin/python benchmarks/trunk_bench.py [--rate 200] [--seconds 10] [--agents 600] [--hold-ms 1000]
                                               [--refreshes 200] [--cycles 5] [--interval 1s] [--threshold 3]
    .venv/bin/python benchmarks/trunk_bench.py --inbound-only   (the carrier's calls only)
    .venv/bin/python benchmarks/trunk_bench.py --quick          (10 calls/s for 1 s; 20 refreshes, one cycle)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^trunk inbound: \d+ calls/s offered, \d+ calls/s answered by agents, \d+ failed"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import SIPP_BUFFER, cpu_seconds, serve, sipp, stop  # noqa: E402
from benchmarks.common import free_port as free_sip_port  # noqa: E402
from benchmarks.tenant import write_tenant  # noqa: E402
from softswitch.node.compose import Node, credentials_from_config, new_loop, options_from_config  # noqa: E402
from softswitch.records.store import RecordStore  # noqa: E402
from softswitch.settings import parse_config  # noqa: E402
from tools.agents_load import api, register_agents, sign_in_all  # noqa: E402
from tools.kamailioserver import Kamailio, free_udp_port  # noqa: E402

DID = "0305554001"          # as the carrier sends it: the trunk strips 030555, 4001 is the tenant's first queue
PAI_CALLER = re.compile(r'^"Customer (\d+)" <sip:\+4930123\1@carrier\.test>$')


def inbound(rate: int, seconds: float, agents: int, hold_ms: int, work: str, untrusted: int | None = None,
            anchor: bool = True) -> dict:
    """The carrier's calls through a trunk trusted by address into a queue of SIPp agents (see the module's
    text); `untrusted` copies (default: as many as a second of the rate) then come from 127.0.0.2. Returns the
    figures; the tests read the same dict."""
    calls = int(rate * seconds)
    tenant = write_tenant(os.path.join(work, "tenant.yaml"), agents, queues=1, anchor=anchor, exempt=(),
                          max_calls=100000, wrap_up="0s", ring_timeout="10s")
    with open(tenant.path, "a") as f:       # the carrier: its own caps, not the per-source flood limit
        f.write("trunks:\n  - {name: carrier, addresses: [127.0.0.1], reach: [acd, ivr], "
                f"calls_per_second: {rate * 2}, burst: {rate}, max_calls: 100000,\n"
                '     numbers: {country_code: "49", strip: "030555"}}\n')
    node, _ = serve(tenant.path, work)
    uas_port = free_sip_port()
    uas = subprocess.Popen(["sipp", "-sf", os.path.join(ROOT, "tools", "sipp", "agent_uas.xml"), "-i", "127.0.0.1",
                            "-p", str(uas_port), "-nostdin", "-trace_err", "-max_recv_loops", "10000", "-aa", *SIPP_BUFFER],
                           cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{tenant.http_port}"
    try:
        assert register_agents(tenant.sip_port, tenant.phones, tenant.realm, uas_port) == agents
        assert sign_in_all(tenant.http_port, *tenant.supervisor, tenant.agent_ids) == agents
        h0, cpu0 = api(base, "GET", "/health")["call_stats"], cpu_seconds(node.pid)
        r = sipp("carrier_call.xml", tenant.sip_port, calls, rate, work,
                 ["-s", DID, "-d", str(hold_ms), "-timeout_error", "-trace_err"], timeout=int(seconds * 4 + 30))
        cpu = cpu_seconds(node.pid) - cpu0
        h1 = api(base, "GET", "/health")["call_stats"]
        n_untrusted = untrusted if untrusted is not None else max(1, min(rate, 100))
        u = sipp("carrier_challenged.xml", tenant.sip_port, n_untrusted, min(rate, 50), work,
                 ["-s", DID, "-i", "127.0.0.2", "-timeout_error", "-trace_err"], timeout=60)
        store = RecordStore(f"sqlite:///{os.path.join(work, 'cdr.db')}")
        deadline = time.monotonic() + 60           # the node writes its CDRs in batches, behind the calls
        rows = store.cdrs()
        while len(rows) < r["ok"] and time.monotonic() < deadline:
            time.sleep(0.5)
            rows = store.cdrs()
    finally:
        uas.kill()
        stop(node)
    return {"calls": calls, "ok": r["ok"], "failed": r["failed"], "elapsed": r["elapsed"],
            "overloaded": h1["overloaded"] - h0["overloaded"],
            "by_agent": h1["answered_by_agent"] - h0["answered_by_agent"], "cpu_ms_per_call": cpu * 1000 / max(1, calls),
            "cdrs": len(rows), "cdrs_with_pai": sum(1 for row in rows if PAI_CALLER.match(row["caller"] or "")),
            "untrusted": n_untrusted, "challenged": u["ok"], "untrusted_failed": u["failed"]}


def print_inbound(rate: int, seconds: float, agents: int, hold_ms: int, f: dict) -> None:
    # the sending window: SIPp's run less the last calls' hold (and never under the offered duration)
    achieved = f["by_agent"] / max(seconds, f["elapsed"] - hold_ms / 1000)
    print(f"carrier over a trunk trusted by address: {f['calls']} calls at {rate} calls/s for {seconds:g} s, "
          f"{agents} agents, hold {hold_ms} ms: {f['ok']} ok, {f['failed']} failed, {f['overloaded']} refused 503, "
          f"{f['by_agent']} answered by agents; node CPU {f['cpu_ms_per_call']:.2f} ms per call")
    print(f"CDRs: {f['cdrs']}, with the caller's number from P-Asserted-Identity: {f['cdrs_with_pai']}")
    print(f"the same INVITEs from 127.0.0.2 (no trunk's): {f['challenged']} of {f['untrusted']} challenged 407, "
          f"{f['untrusted_failed']} answered otherwise")
    print(f"trunk inbound: {rate} calls/s offered, {achieved:.0f} calls/s answered by agents, {f['failed']} failed")


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


async def provider(args, tmp: Path, kam: Kamailio) -> None:
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
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--agents", type=int, default=600)
    ap.add_argument("--hold-ms", type=int, default=1000)
    ap.add_argument("--inbound-only", action="store_true", help="the carrier's calls only (no Kamailio part)")
    ap.add_argument("--refreshes", type=int, default=200)
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--threshold", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=0.5)
    ap.add_argument("--quick", action="store_true", help="10 calls/s for 1 s to 20 agents; 20 refreshes, one "
                    "down/up cycle, pings every 200 ms")
    args = ap.parse_args()
    if args.quick:
        args.rate, args.seconds, args.agents, args.hold_ms = 10, 1.0, 20, 200
        args.refreshes, args.cycles, args.interval, args.threshold, args.timeout = 20, 1, 0.2, 2, 0.2
    with tempfile.TemporaryDirectory() as work:
        f = inbound(args.rate, args.seconds, args.agents, args.hold_ms, work)
        print_inbound(args.rate, args.seconds, args.agents, args.hold_ms, f)
    if args.inbound_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        kam = Kamailio(Path(tmp), free_udp_port())
        kam.start()
        loop = new_loop()
        try:
            loop.run_until_complete(provider(args, Path(tmp), kam))
        finally:
            loop.close()
            kam.stop()


if __name__ == "__main__":
    main()
