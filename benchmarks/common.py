"""Helpers for benchmarks: start `softswitch serve` on a tenant, run SIPp, read its statistics."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(config: str, workdir: str, profile: str | None = None,
          timeout: float = 120.0) -> tuple[subprocess.Popen, float]:
    """Start `softswitch serve --config CONFIG` as a user does; returns it once it says it listens on HTTP,
    with the seconds that took. The node runs from `workdir`, so PYTHONPATH picks the code under test (this
    tree when unset)."""
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", ROOT)
    cmd = [PY, *(["-m", "cProfile", "-o", profile] if profile else []), "-m", "softswitch.cli", "serve",
           "--config", config]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=workdir,
                            env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise RuntimeError(f"softswitch serve exited with {proc.wait()} before listening")
        if line.startswith("listening http"):
            return proc, time.perf_counter() - t0
    proc.kill()
    raise RuntimeError("softswitch serve did not listen in time")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


def sipp(scenario: str, port: int, calls: int, rate: int, workdir: str, extra: list[str] = (),
         timeout: int = 60) -> dict:
    stat = os.path.join(workdir, f"stat-{time.time_ns()}.csv")
    cmd = ["sipp", f"127.0.0.1:{port}", "-sf", os.path.join(ROOT, "tools", "sipp", scenario), "-m", str(calls),
           "-r", str(rate), "-i", "127.0.0.1", "-p", "0", "-nostdin", "-trace_stat", "-stf", stat, "-fd", "1",
           "-timeout", f"{timeout}s", "-l", str(max(100, rate * 2)), "-max_recv_loops", "10000",
           "-max_sched_loops", "10000", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    elapsed = time.perf_counter() - t0
    stats = {}
    if os.path.exists(stat):
        with open(stat, newline="") as f:
            rows = list(csv.reader(f, delimiter=";"))
        if len(rows) >= 2:
            stats = dict(zip(rows[0], rows[-1]))
    return {"rc": proc.returncode, "elapsed": elapsed, "stats": stats,
            "ok": int(stats.get("SuccessfulCall(C)", 0)), "failed": int(stats.get("FailedCall(C)", 0)),
            "retrans": int(stats.get("Retransmissions(C)", 0)), "stderr": proc.stderr[-500:]}
