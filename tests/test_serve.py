"""The whole program: `softswitch serve` starts, answers SIP, and stops cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve import Served, example_on_free_ports
from tests.sipclient import UdpClient, options_request

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_and_stops_cleanly(tmp_path, sig):
    config, port = example_on_free_ports(tmp_path)
    node = Served(config)
    try:
        assert f"listening sip udp:127.0.0.1:{port}" in node.lines
        client = UdpClient(("127.0.0.1", port))
        client.send(options_request(port))
        resp = client.recv(5)
        assert resp is not None and resp.status == 200
        assert "REGISTER" in resp.get("Allow") and "INVITE" in resp.get("Allow")
    finally:
        code = node.stop(sig)
    assert code == 0
    assert "stopped" in node.proc.stderr.read()


def test_serve_refuses_bad_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  sip: {listen: [udp:127.0.0.1:5999], domain: x.test, colour: blue}\n")
    res = subprocess.run([sys.executable, "-m", "softswitch.cli", "serve", "--config", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert f"{bad}:2: server.sip.colour: unknown key" in res.stderr


PURE = ["softswitch/sip", "acd", "media"]
IO_MODULES = {"asyncio", "socket", "time", "random", "selectors", "threading", "uvloop"}
KERNEL_EXEMPT = {"media/engine.py"}     # the media engine is the media side's only I/O


def test_pure_packages_import_no_io():
    offenders = []
    for pkg in PURE:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if rel in KERNEL_EXEMPT:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module.split(".")[0]]
                offenders += [f"{rel}: {n}" for n in names if n in IO_MODULES]
    assert offenders == []
