"""Registrations past capacity: goodput during a REGISTER storm at each of FACTORS x capacity and how fast the
node serves everyone again once it ends. Measured as users run it: `softswitch serve --config` on a generated
tenant (benchmarks/tenant.py, the load generator's address exempt from the per-source limit, as for an SBC),
SIPp REGISTER/401/REGISTER/200 on the same machine.

    .venv/bin/python benchmarks/overload_bench.py [--agents 10000] [--capacity N] [--factors 1,1.5,2]
        [--seconds 10] [--code DIR --code DIR2 ...] [--quick]

Capacity: the highest rate of `--rates` with no failed registration, under 1% retransmissions and at least 95% of
the rate achieved (past some rate SIPp, on the same machine, cannot offer it), measured on
the first --code (or given with --capacity); every code then gets the same storms, one per factor, a few
seconds apart. After each storm, 0.5 x capacity of fresh registrations for `--after` seconds shows recovery:
the first second from which every registration offered succeeds (and they keep succeeding).
Prints per second: registrations completed (storm + after), failures and retransmissions; per storm the
median goodput as a share of capacity and the node's CPU per registration beside the 1x storm's (the machine
is shared: CPU per registration is the steadier measure of what shedding costs); then one figure line per
code.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^overload .+: goodput at"


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
from benchmarks.common import KEEPALIVES, SIPP_BUFFER, cpu_seconds  # noqa: E402
from benchmarks.tenant import write_tenant, write_users_csv  # noqa: E402

SCENARIO = os.path.join(ROOT, "tools", "sipp", "register_auth.xml")
TRACE_ERRORS = False      # --errors: SIPp logs every failed call (costly for SIPp, which shares the CPU)


def serve(code: str, config: str, log_path: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": code, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "softswitch.cli", "serve", "--config", config],
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=code)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("listening http") or line.startswith("listening sip tcp"):
            time.sleep(0.5)
            return proc
    proc.kill()
    raise RuntimeError(f"node from {code} did not start; see {log_path}")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sipp(port: int, rate: float, calls: int, users: str, workdir: str, name: str) -> tuple[subprocess.Popen, str]:
    stat = os.path.join(workdir, f"{name}.csv")
    if os.path.exists(stat):
        os.remove(stat)
    cmd = ["sipp", f"127.0.0.1:{port}", "-sf", SCENARIO, "-oocsf", KEEPALIVES, "-inf", users,
           "-m", str(calls), "-r", str(int(rate)),
           "-i", "127.0.0.1", "-p", "0", "-nostdin", "-trace_stat", "-stf", stat, "-fd", "1",
           "-l", str(max(1000, int(rate * 40))), "-timeout", "60s", "-max_recv_loops", "10000",
           "-max_sched_loops", "10000", *SIPP_BUFFER, "-default_behaviors", "abortunexp",  # no BYE after a refusal
           *(["-trace_err", "-error_file", os.path.join(workdir, f"{name}-errors.log")] if TRACE_ERRORS else [])]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir), stat


def rows(stat: str) -> list[dict]:
    if not os.path.exists(stat):
        return []
    with open(stat, newline="") as f:
        data = list(csv.reader(f, delimiter=";"))
    if len(data) < 2:
        return []
    out = []
    for r in data[1:]:
        d = dict(zip(data[0], r))
        d["t"] = float(d["CurrentTime"].split("\t")[-1])
        out.append(d)
    return out


def totals(stat: str) -> tuple[int, int, int]:
    r = rows(stat)
    if not r:
        return 0, 0, 0
    last = r[-1]
    return int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"]), int(last["Retransmissions(C)"])


def per_second(stats: list[str], start: float, seconds: int) -> list[list[int]]:
    """[ok, failed, retransmissions] for each second since `start`, summed over SIPp runs (their periodic
    rows are one second apart; a row's counts belong to the second in which it was written)."""
    out = [[0, 0, 0] for _ in range(seconds)]
    for stat in stats:
        for r in rows(stat):
            i = int(r["t"] - start - 0.5)
            if 0 <= i < seconds:
                out[i][0] += int(r["SuccessfulCall(P)"])
                out[i][1] += int(r["FailedCall(P)"])
                out[i][2] += int(r["Retransmissions(P)"])
    return out


def find_capacity(port: int, users: str, workdir: str, rates: list[int], seconds: float) -> int:
    best = rates[0]
    for rate in rates:
        t0 = time.monotonic()
        proc, stat = sipp(port, rate, int(rate * seconds), users, workdir, f"cap-{rate}")
        proc.wait()
        ok, failed, retrans = totals(stat)
        ok_rate = ok / max(1e-6, time.monotonic() - t0)
        held = ok_rate >= 0.95 * rate       # SIPp shares the machine: past some rate it cannot offer it
        clean = failed == 0 and ok == int(rate * seconds) and retrans < 0.01 * 2 * ok and held
        print(f"  capacity probe {rate:6d}/s: ok {ok:6d} failed {failed:6d} retrans {retrans:6d} "
              f"achieved {ok_rate:6.0f}/s{'  clean' if clean else ''}", flush=True)
        if clean:
            best = rate
        elif failed > 0.05 * rate * seconds:
            break
        time.sleep(1.0)
    return best


def storm(node: subprocess.Popen, port: int, users: str, workdir: str, capacity: int, factor: float,
          seconds: int, after: int, tag: str) -> dict:
    rate = capacity * factor
    t0 = time.time()
    cpu0 = cpu_seconds(node.pid)
    a, a_stat = sipp(port, rate, int(rate * seconds), users, workdir, f"{tag}-storm")
    time.sleep(seconds)
    cpu = cpu_seconds(node.pid) - cpu0
    b_rate = max(1, capacity // 2)
    b, b_stat = sipp(port, b_rate, int(b_rate * after), users, workdir, f"{tag}-after")
    b.wait()
    a.wait()
    span = seconds + after + 2
    both = per_second([a_stat, b_stat], t0, span)
    after_only = per_second([b_stat], t0, span)
    ok_a, failed_a, retrans_a = totals(a_stat)
    ok_b, failed_b, retrans_b = totals(b_stat)
    during = [both[i][0] for i in range(1, seconds)]          # the first second ramps up
    # recovery: first second after the storm from which the fresh registrations all succeed at the offered rate
    recovery = None
    for i in range(seconds, seconds + after - 1):
        tail = after_only[i:seconds + after - 1]
        if tail and all(f == 0 for _, f, _ in tail) and all(ok >= 0.9 * b_rate for ok, _, _ in tail):
            recovery = i - seconds
            break
    ok_window = sum(both[i][0] for i in range(seconds))
    return {"per_second": both, "during": during, "median": statistics.median(during) if during else 0,
            "min": min(during) if during else 0, "recovery": recovery, "storm": (ok_a, failed_a, retrans_a),
            "after": (ok_b, failed_b, retrans_b), "offered": int(rate * seconds), "rate": rate, "factor": factor,
            "cpu_per_ok": cpu / max(1, ok_window)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--code", action="append", help="source tree to run the node from (repeat to compare)")
    ap.add_argument("--agents", type=int, default=10000)
    ap.add_argument("--capacity", type=int, help="registrations/s the node serves clean (skips the probe)")
    ap.add_argument("--rates", default="1000,1500,2000,2500,3000,3500,4000,4500,5000")
    ap.add_argument("--factors", default="1,1.5,2", help="storms, as multiples of capacity")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--after", type=int, default=6)
    ap.add_argument("--errors", action="store_true", help="keep SIPp's log of failed calls (RUN-errors.log)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 200 agents, capacity 200/s, one 2 s storm")
    args = ap.parse_args()
    global TRACE_ERRORS
    TRACE_ERRORS = args.errors
    if shutil.which("sipp") is None:
        sys.exit("sipp is not installed")
    factors = [float(f) for f in args.factors.split(",")]
    if args.quick:
        args.agents, args.seconds, args.after, factors = 200, 2, 3, [2.0]
        args.capacity = args.capacity or 200
    codes = [os.path.abspath(c) for c in (args.code or [ROOT])]
    work = tempfile.mkdtemp(prefix="overload-")
    results: list[list[dict]] = []
    capacity = args.capacity
    for n, code in enumerate(codes):
        d = os.path.join(work, f"code{n}")
        os.makedirs(d)
        tenant = write_tenant(os.path.join(d, "tenant.yaml"), agents=args.agents, queues=4, workdir=d)
        users = write_users_csv(os.path.join(d, "users.csv"), tenant)
        node = serve(code, tenant.path, os.path.join(d, "node.log"))
        runs = []
        try:
            if capacity is None:
                print(f"finding capacity on {code}", flush=True)
                capacity = find_capacity(tenant.sip_port, users, d, [int(r) for r in args.rates.split(",")], 3.0)
                print(f"capacity: {capacity}/s", flush=True)
                time.sleep(2.0)
            for k, factor in enumerate(factors):
                if k:
                    time.sleep(3.0)
                r = storm(node, tenant.sip_port, users, d, capacity, factor, args.seconds, args.after, f"run{k}")
                r["code"] = code
                runs.append(r)
        finally:
            stop(node)
        results.append(runs)
    print(f"\nstorms of {args.seconds} s at {', '.join(f'{f:g}' for f in factors)} x {capacity}/s, each followed by "
          f"{max(1, capacity // 2)}/s fresh for {args.after} s ({args.agents}-agent tenant)")
    flat = [r for runs in results for r in runs]
    print("second " + "".join(f"| {(os.path.basename(r['code']) or r['code'])[:15]:>15} {r['factor']:>5g}x "
                              for r in flat))
    print("       " + "".join(f"| {'ok':>6} {'failed':>6} {'retrans':>8} " for _ in flat))
    for i in range(args.seconds + args.after):
        mark = "*" if i < args.seconds else " "
        print(f"{i:5d}{mark} " + "".join(f"| {r['per_second'][i][0]:6d} {r['per_second'][i][1]:6d} "
                                        f"{r['per_second'][i][2]:8d} " for r in flat))
    for runs in results:
        base = runs[0]["cpu_per_ok"]
        parts, recs = [], []
        for r in runs:
            ok, failed, retrans = r["storm"]
            rec = f"{r['recovery']} s" if r["recovery"] is not None else f">{args.after - 1} s"
            recs.append(rec)
            print(f"  {r['factor']:g}x: median {r['median']:.0f}/s ({100 * r['median'] / capacity:.0f}%), worst "
                  f"second {r['min']}/s, ok {ok} failed {failed} retransmissions {retrans}, node CPU "
                  f"{1e6 * r['cpu_per_ok']:.0f} us per registration ({r['cpu_per_ok'] / base:.2f} x the first "
                  f"storm's), recovery {rec}, after: ok {r['after'][0]} failed {r['after'][1]}")
            parts.append(f"{r['factor']:g}x {100 * r['median'] / capacity:.0f}%")
        print(f"overload {runs[0]['code']}: goodput at {', '.join(parts)} of capacity {capacity}/s; "
              f"recovery {', '.join(recs)}", flush=True)


if __name__ == "__main__":
    main()
