"""Start-up of a big tenant as a user meets it: `softswitch config check` and `softswitch serve` until it says it
listens, on a generated tenant (benchmarks/tenant.py), each timed in wall-clock seconds and in the process's
CPU seconds (on a shared machine the CPU figure is the one to compare). Then, right after the listen, SIPp
registers a batch of the tenant's phones (REGISTER/401/REGISTER/200) and another batch of other phones after
it: start-up work left for later would show in the first batch as more node CPU per registration, failures or
retransmissions (answers later than SIPp's 500 ms). Last the node is restarted on the same database, with
those phones' bindings to restore before it listens, and the first batch registers again.

    .venv/bin/python benchmarks/startup_bench.py [--agents 20000] [--runs 3] [--registrations 2000]
    .venv/bin/python benchmarks/startup_bench.py --quick          (300 agents, one run: a smoke run)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^startup: \d+ agents: config check [\d.]+ s \([\d.]+ s CPU\), serve listening after [\d.]+ s"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import PY, cpu_seconds, serve, sipp, stop  # noqa: E402
from benchmarks.tenant import write_tenant, write_users_csv  # noqa: E402


def timed_check(config: str, workdir: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of `softswitch config check CONFIG`, which must pass."""
    env = {**os.environ}
    env.setdefault("PYTHONPATH", ROOT)
    t0 = time.perf_counter()
    proc = subprocess.Popen([PY, "-m", "softswitch.cli", "config", "check", config], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or ": ok (" not in out:
        raise RuntimeError(f"config check failed ({proc.returncode}): {out[-500:]} {err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def register_batch(tenant, work: str, node_pid: int, users: str, count: int, rate: int) -> dict:
    cpu0 = cpu_seconds(node_pid)
    r = sipp("register_auth.xml", tenant.sip_port, count, rate, work,
             ["-inf", users, "-default_behaviors", "all,-bye"])      # no BYE after a refused REGISTER
    r["cpu_us"] = 1e6 * (cpu_seconds(node_pid) - cpu0) / max(1, r["ok"])
    return r


def one_run(agents: int, queues: int, registrations: int, rate: int) -> dict:
    work = tempfile.mkdtemp(prefix="startup-")
    tenant = write_tenant(os.path.join(work, "tenant.yaml"), agents, queues)
    count = min(registrations, agents // 2)
    first = write_users_csv(os.path.join(work, "first.csv"), tenant, count)
    with open(os.path.join(work, "second.csv"), "w") as f:     # other phones than the first batch's
        f.write("SEQUENTIAL\n")
        for number, password in tenant.phones[count:2 * count]:
            f.write(f"{number};{tenant.realm};[authentication username={number} password={password}]\n")
    check_wall, check_cpu = timed_check(tenant.path, work)
    node, listen_wall = serve(tenant.path, work)
    try:
        listen_cpu = cpu_seconds(node.pid)
        a = register_batch(tenant, work, node.pid, first, count, rate)
        b = register_batch(tenant, work, node.pid, os.path.join(work, "second.csv"), count, rate)
    finally:
        stop(node)
    # a restart: the same node on the same database, its phones' bindings to restore before it listens
    node, restart_wall = serve(tenant.path, work)
    try:
        restart_cpu = cpu_seconds(node.pid)
        c = register_batch(tenant, work, node.pid, first, count, rate)
    finally:
        stop(node)
    return {"check_wall": check_wall, "check_cpu": check_cpu, "listen_wall": listen_wall, "listen_cpu": listen_cpu,
            "first": a, "second": b, "count": count, "restart_wall": restart_wall, "restart_cpu": restart_cpu,
            "again": c}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=20000)
    ap.add_argument("--queues", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3, help="medians over this many runs")
    ap.add_argument("--registrations", type=int, default=2000, help="phones per batch after the listen")
    ap.add_argument("--rate", type=int, default=1000, help="registrations per second offered in each batch")
    ap.add_argument("--quick", action="store_true", help="300 agents, one run (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.agents, args.runs, args.registrations, args.rate = 300, 1, 100, 200
    runs = []
    for i in range(args.runs):
        r = one_run(args.agents, args.queues, args.registrations, args.rate)
        runs.append(r)
        print(f"run {i + 1}: config check {r['check_wall']:.2f} s ({r['check_cpu']:.2f} s CPU), listening after "
              f"{r['listen_wall']:.2f} s ({r['listen_cpu']:.2f} s CPU); registrations right after: "
              f"{r['first']['ok']} ok {r['first']['failed']} failed, {r['first']['cpu_us']:.0f} us CPU each, "
              f"{r['first']['retrans']} retransmissions; the next batch: {r['second']['ok']} ok "
              f"{r['second']['failed']} failed, "
              f"{r['second']['cpu_us']:.0f} us CPU each, {r['second']['retrans']} retransmissions; restarted with "
              f"{2 * r['count']} bindings: listening after {r['restart_wall']:.2f} s ({r['restart_cpu']:.2f} s CPU), "
              f"the first phones again: {r['again']['ok']} ok {r['again']['failed']} failed, "
              f"{r['again']['cpu_us']:.0f} us CPU each", flush=True)
    med = lambda key: statistics.median(r[key] for r in runs)
    med2 = lambda batch, key: statistics.median(r[batch][key] for r in runs)
    print(f"startup: {args.agents} agents: config check {med('check_wall'):.2f} s ({med('check_cpu'):.2f} s CPU), "
          f"serve listening after {med('listen_wall'):.2f} s ({med('listen_cpu'):.2f} s CPU); "
          f"node CPU per registration, first {runs[0]['count']} after the listen "
          f"{med2('first', 'cpu_us'):.0f} us, the next {runs[0]['count']} {med2('second', 'cpu_us'):.0f} us; "
          f"restart with {2 * runs[0]['count']} bindings listening after {med('restart_wall'):.2f} s "
          f"({med('restart_cpu'):.2f} s CPU) (medians of {len(runs)})")


if __name__ == "__main__":
    main()
