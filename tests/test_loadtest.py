"""tools/loadtest.py end to end: a short `calls` run (SIPp customers, a SIPp agent UAS with two real agents signed
in through the API) and a short `register` run against a real node; reports and plots are written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.cc import ACCOUNTS, PASSWORDS, Api, cc_node
from tests.sipp import ROOT

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed")
pytest.importorskip("matplotlib")

TOOL = os.path.join(ROOT, "tools", "loadtest.py")


def run_tool(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def check_plots(out) -> None:
    for name in ("rate.png", "latency.png"):
        path = out / name
        assert path.exists() and path.stat().st_size > 5000, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loadtest_calls_and_register(tmp_path):
    with cc_node(tmp_path, wrap_up="0s") as (nt, sip_port, http_port):
        out = tmp_path / "calls"
        res = run_tool("calls", "--target", f"127.0.0.1:{sip_port}", "--rate", "5", "--duration", "4",
                       "--http", f"127.0.0.1:{http_port}", "--account", "acme_sam", "--password", ACCOUNTS["acme_sam"],
                       "--realm", "cc.test", "--number", "4001", "--hold", "1.5s", "--agent-delay", "0.5s",
                       "--agent", f"1001:70001:{PASSWORDS['70001']}",
                       "--agent", f"70002:{PASSWORDS['70002']}",          # agent id looked up through /api/agents
                       "--out", str(out))
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        assert "successful" in res.stdout and "rate" in res.stdout       # progress lines
        report = json.loads((out / "report.json").read_text())
        assert report["calls"] == 20 and report["successful"] == 20
        assert report["failed"] == 0 and report["failures_by_kind"] == {} and report["status_503"] == 0
        assert report["achieved_rate"] > 0
        assert report["latency_ms"]["count"] == 20 and report["latency_ms"]["p99"] is not None
        assert report["agents"]["ids"] == ["1001", "1002"]
        assert report["agents"]["uas"]["failed"] == 0
        support = report["node"]["queues"]["support"]
        assert support["delta"]["entered"] == 20
        assert support["delta"]["answered"] >= 2
        assert support["delta"]["answered"] + support["delta"]["abandoned"] == 20
        assert support["after"]["waiting"] == 0 and "average_speed_of_answer" in support["after"]
        assert report["node"]["overloaded_503"] == 0
        md = (out / "report.md").read_text()
        assert "## Queues" in md and "| support |" in md and "p99" in md
        check_plots(out)
        api = Api(http_port)                                       # the agents were signed out again
        api.login("acme_sam")
        states = {a["id"]: a["state"] for a in api.call("GET", "/api/agents", expect=200)[1]}
        assert states["1001"] == "offline" and states["1002"] == "offline", states

        out = tmp_path / "register"
        res = run_tool("register", "--target", f"127.0.0.1:{sip_port}", "--rate", "4", "--duration", "2",
                       "--realm", "cc.test", "--user", f"70003:{PASSWORDS['70003']}",
                       "--user", f"70004:{PASSWORDS['70004']}", "--out", str(out))
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        report = json.loads((out / "report.json").read_text())
        assert report["successful"] == 8 and report["failed"] == 0 and report["achieved_rate"] > 0
        assert report["latency_ms"]["rtd"] == 2 and report["latency_ms"]["by_rtd"]["1"]["count"] == 8
        assert (out / "users.csv").read_text().splitlines()[1].startswith("70003;cc.test;[authentication")
        check_plots(out)
