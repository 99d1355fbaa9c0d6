"""Helpers for benchmarks: start `softswitch serve` on a tenant (benchmarks/tenant.py) or on the shipped example,
run SIPp, read its statistics, and watch a node's answer time, CPU and memory."""

from __future__ import annotations

import csv
import os
import pathlib
import socket
import subprocess
import sys
import time

from tools.loadtest_sipp import SIPP_BUFFER

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
# Out-of-call scenario for SIPp phones: they answer the node's OPTIONS keepalives, as phones do (left silent, they
# would cost the node a re-sent probe each, and a tenant's worth of them grows with its size)
KEEPALIVES = os.path.join(ROOT, "tools", "sipp", "answer_options.xml")


def free_port() -> int:
    """A port of 127.0.0.1 free for both UDP and TCP (a node listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket(socket.AF_INET) as t:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


# --- `softswitch serve` on the shipped example config ------------------------------------------------------
def example_config(workdir: str, exempt: tuple[str, ...] = ("127.0.0.1",)) -> tuple[str, int]:
    """The shipped example moved to free ports and a private database (as the tests run it), with `exempt`
    left out of the per-source limiter (as an operator does for an SBC). Returns (config path, SIP port)."""
    # the tests' helper, imported here: it brings pytest, which only the example-based benchmarks need
    sys.path.insert(0, ROOT)
    from tests.support.serve import example_on_free_ports
    path, port = example_on_free_ports(pathlib.Path(workdir))
    if exempt:
        text = path.read_text()
        path.write_text(text.replace("    security: {", f"    security: {{exempt: [{', '.join(exempt)}], ", 1))
    return str(path), port


def serve(config: str, workdir: str, profile: str | None = None,
          timeout: float = 120.0) -> tuple[subprocess.Popen, float]:
    """Start `softswitch serve --config CONFIG` as a user does; returns it once it says it listens on HTTP,
    with the seconds that took. The node runs from `workdir` and logs to workdir/node.log (a pipe nobody
    reads would block it once full); PYTHONPATH picks the code under test (this tree when unset)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("PYTHONPATH", ROOT)
    cmd = [PY, *(["-m", "cProfile", "-o", profile] if profile else []), "-m", "softswitch.cli", "serve",
           "--config", config]
    t0 = time.perf_counter()
    with open(os.path.join(workdir, "node.log"), "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=workdir, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()          # start-up lines only: the log goes to node.log
        if not line:
            proc.kill()
            with open(os.path.join(workdir, "node.log")) as f:
                raise RuntimeError(f"softswitch serve exited with {proc.wait()} before listening: "
                                   f"{f.read()[-2000:]}")
        if line.startswith("listening http"):
            return proc, time.perf_counter() - t0
    proc.kill()
    raise RuntimeError("softswitch serve did not listen in time")


def internal_errors(workdir: str) -> int:
    """Lines of the node's log where one of its own handlers failed (a bug, whatever the input was)."""
    with open(os.path.join(workdir, "node.log"), errors="replace") as f:
        return sum(1 for line in f if "Traceback" in line or "_failed" in line and "handler" in line)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, with its live children's (the node's UDP front process)."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue                # gone meanwhile
        if int(name) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def options(port: int, i: int) -> bytes:
    return (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK-alive{i};rport\r\n"
            f"From: <sip:alive@127.0.0.1>;tag=alive\r\nTo: <sip:127.0.0.1>\r\nCall-ID: alive-{i}\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


class Pinger:
    """OPTIONS on a socket of its own: how long the node takes to answer, behind whatever it is busy with."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.port, self.timeout, self.n = port, timeout, 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.times: list[float] = []

    def ping(self) -> float | None:
        """Seconds until the answer to a fresh OPTIONS, None if none came within the timeout."""
        self.n += 1
        want = f"alive-{self.n}".encode()
        t0 = time.perf_counter()
        self.sock.sendto(options(self.port, self.n), ("127.0.0.1", self.port))
        while True:
            left = self.timeout - (time.perf_counter() - t0)
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            if b"\r\nCall-ID: " + want + b"\r\n" in data:
                rtt = time.perf_counter() - t0
                self.times.append(rtt)
                return rtt

    def summary(self) -> str:
        t = sorted(self.times) or [0.0]
        pick = lambda q: t[min(len(t) - 1, int(len(t) * q))] * 1000
        return f"OPTIONS answer p50 {pick(0.5):.1f} ms p99 {pick(0.99):.1f} ms max {t[-1] * 1000:.1f} ms ({len(self.times)} pings)"


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
           "-max_sched_loops", "10000", *SIPP_BUFFER, *extra]
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
