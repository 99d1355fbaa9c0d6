"""Run SIPp as a real peer and read its statistics."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENARIOS = os.path.join(ROOT, "tools", "sipp")
SIPP = shutil.which("sipp")


@dataclass
class SippResult:
    returncode: int
    stats: dict
    stdout: str
    stderr: str

    @property
    def successful(self) -> int:
        return int(self.stats.get("SuccessfulCall(C)", 0))

    @property
    def failed(self) -> int:
        return int(self.stats.get("FailedCall(C)", 0))

    @property
    def retransmissions(self) -> int:
        return int(self.stats.get("Retransmissions(C)", 0))


def run_sipp(scenario: str, port: int, *, calls: int, rate: int = 100, transport: str = "u1",
             extra: list[str] | None = None, workdir: str, timeout: float = 120, host: str = "127.0.0.1") -> SippResult:
    """Run `calls` calls of a scenario from tools/sipp at `rate` calls/s; stops by itself."""
    assert SIPP, "sipp is not installed (make test installs the sip-tester package)"
    path = scenario if os.path.isabs(scenario) else os.path.join(SCENARIOS, scenario)
    stat_file = os.path.join(workdir, "stats.csv")
    cmd = [SIPP, f"{host}:{port}", "-sf", path, "-m", str(calls), "-r", str(rate), "-t", transport,
           "-i", "127.0.0.1", "-p", "0", "-bg" if False else "-nostdin", "-trace_stat", "-stf", stat_file,
           "-fd", "1", "-trace_err", "-error_file", os.path.join(workdir, "errors.log"),
           "-timeout", f"{int(timeout)}s", "-timeout_error", "-max_recv_loops", "1000"] + (extra or [])
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout + 30)
    stats = {}
    if os.path.exists(stat_file):
        with open(stat_file, newline="") as f:
            rows = list(csv.reader(f, delimiter=";"))
        if len(rows) >= 2:
            stats = dict(zip(rows[0], rows[-1]))
    return SippResult(proc.returncode, stats, proc.stdout, proc.stderr)
