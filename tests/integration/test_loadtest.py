"""tools/loadtest.py end to end against `softswitch serve` on the shipped example (the README's demo tenant):
SIPp customers, a SIPp agent UAS with the demo agents signed in through the API, and a register run. The report
says what the queue says (answered, abandoned), PASS only when agents answered every call; no password lands in
any file the tool writes; agents are signed out and their bindings removed, also when the run is interrupted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest

from tests.support.cc import Api, wait_for
from tests.support.serve import Served, example_on_free_ports
from tests.support.sipp import ROOT

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed")

TOOL = os.path.join(ROOT, "tools", "loadtest.py")
SECRETS = {"acme_sam": "Sam-Demo4!", "70001": "Phone-70001!", "70002": "Phone-70002!", "70003": "Phone-70003!",
           "70004": "Phone-70004!"}


def run_tool(*args: str, timeout: float = 90, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=env)


def http_port(config) -> int:
    return int(config.read_text().split("http: {listen: 127.0.0.1:")[1].split("}")[0])


@pytest.fixture
def demo(tmp_path):
    config, sip_port = example_on_free_ports(tmp_path)
    served = Served(config)
    try:
        api = Api(http_port(config))
        api.token = api.call("POST", "/api/login", {"account": "acme_sam", "password": SECRETS["acme_sam"]},
                             expect=200)[1]["token"]
        yield sip_port, http_port(config), api
    finally:
        served.stop()


def support(api: Api) -> dict:
    return api.call("GET", "/api/queues/support_voice", expect=200)[1]


def bindings(api: Api) -> int:
    return api.call("GET", "/health", expect=200)[1]["bindings"]


def states(api: Api) -> dict:
    return {a["id"]: a["state"] for a in api.call("GET", "/api/agents", expect=200)[1]}


def assert_no_secrets(out) -> None:
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in SECRETS.values():
                assert secret.encode() not in data, f"{secret} in {path.name}"


def check_plots(out) -> None:
    for name in ("rate.png", "latency.png"):
        path = out / name
        assert path.exists() and path.stat().st_size > 5000, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calls_pass_only_when_agents_answer_and_the_report_says_what_the_queue_says(demo, tmp_path):
    pytest.importorskip("matplotlib")
    sip_port, http, api = demo
    common = ("calls", "--target", f"127.0.0.1:{sip_port}", "--http", f"127.0.0.1:{http}",
              "--account", "acme_sam", "--password", SECRETS["acme_sam"])

    # the README's shape: --agents N found through the API, demo passwords, the default hold (prompt + auto-answer
    # + talk): two calls for three agents are all answered
    before = support(api)
    out = tmp_path / "pass"
    res = run_tool(*common, "--rate", "0.5", "--duration", "4", "--agents", "3", "--out", str(out))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    after = support(api)
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "PASS" and report["ok"] is True
    assert report["hold_s"] == 10 and "--prompt" in report["hold_from"]
    assert report["agents"]["ids"] == ["1001", "1002", "1003"]
    o = report["outcome"]
    assert o["offered"] == 2 and o["answered"] == after["answered"] - before["answered"] == 2
    assert o["abandoned"] == after["abandoned"] - before["abandoned"] == 0
    assert "calls: PASS (2 offered, 2 answered by agents, 0 abandoned, 0 overflowed" in res.stdout
    md = (out / "report.md").read_text()
    assert "**PASS** (2 offered, 2 answered by agents, 0 abandoned" in md and "| support_voice | +2 | +2 | +0 |" in md
    assert "INVITE to 200 OK" in md                          # the latency measure is named
    check_plots(out)
    assert_no_secrets(out)
    assert "--password ***" in (out / "command.txt").read_text()
    assert bindings(api) == 0 and set(states(api).values()) == {"offline"}

    # customers who hang up after 3 s never reach an agent: the demo's welcome prompt (2.7 s) plus the 2 s
    # auto-answer is longer. Explicit agents, one with its id looked up.
    before = support(api)
    out = tmp_path / "fail"
    res = run_tool(*common, "--rate", "1", "--duration", "2", "--hold", "3s",
                   "--agent", f"1001:70001:{SECRETS['70001']}", "--agent", f"70002:{SECRETS['70002']}",
                   "--out", str(out))
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-2000:]
    after = support(api)
    report = json.loads((out / "report.json").read_text())
    o = report["outcome"]
    assert report["verdict"] == "FAIL" and report["agents"]["ids"] == ["1001", "1002"]
    assert o["offered"] == 2 and o["answered"] == 0 == after["answered"] - before["answered"]
    assert o["abandoned"] == after["abandoned"] - before["abandoned"]
    assert any("not answered by an agent" in w for w in report["why"])
    assert "calls: FAIL (2 offered, 0 answered by agents" in res.stdout
    md = (out / "report.md").read_text()
    assert f"**FAIL** (2 offered, 0 answered by agents, {o['abandoned']} abandoned" in md
    assert_no_secrets(out)
    assert bindings(api) == 0 and set(states(api).values()) == {"offline"}

    # more agents than the tenant has: said before anything is registered
    res = run_tool(*common, "--rate", "1", "--duration", "1", "--agents", "20", "--out", str(tmp_path / "many"))
    assert res.returncode == 2 and "the node has 3 agent(s) in skill queues" in res.stderr, res.stderr
    assert bindings(api) == 0 and set(states(api).values()) == {"offline"}

    # a registration storm on demo softphones: the users' CSV with their passwords is not left in the report
    out = tmp_path / "register"
    res = run_tool("register", "--target", f"127.0.0.1:{sip_port}", "--rate", "4", "--duration", "1",
                   "--user", f"70003:{SECRETS['70003']}", "--user", f"70004:{SECRETS['70004']}", "--out", str(out))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["successful"] == 4 and report["verdict"] == "PASS"
    assert report["latency_ms"]["measure"].startswith("REGISTER to 200 OK")
    assert not (out / "users.csv").exists()
    assert_no_secrets(out)


def test_interrupted_run_signs_out_and_unregisters(demo, tmp_path):
    sip_port, http, api = demo
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, TOOL, "calls", "--target", f"127.0.0.1:{sip_port}", "--rate", "1",
                             "--duration", "20", "--agents", "2", "--http", f"127.0.0.1:{http}", "--account",
                             "acme_sam", "--password", SECRETS["acme_sam"], "--no-plots", "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        assert wait_for(lambda: any("signed in idle" in line for line in lines), 20), lines
        assert wait_for(lambda: states(api)["1001"] == "idle" and bindings(api) == 2, 5)
        proc.send_signal(signal.SIGINT)                        # Ctrl-C
        # the clean-up is bounded by its own waits (SIPp's quit, 5 s per unanswered REGISTER): 90 s bounds a hang
        try:
            code = proc.wait(90)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the interrupted run did not end; it printed: {lines}") from None
        assert code == 130, lines
        assert "agents signed out and unregistered" in proc.stderr.read()
        assert bindings(api) == 0 and states(api)["1001"] == states(api)["1002"] == "offline"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_missing_matplotlib_is_said_before_anything_starts(demo, tmp_path):
    sip_port, http, api = demo
    # a Python without matplotlib, as a plain system python3 may be
    blocker = tmp_path / "no-matplotlib" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError(\"No module named 'matplotlib'\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "plain"
    args = ("calls", "--target", f"127.0.0.1:{sip_port}", "--rate", "1", "--duration", "1", "--agents", "1",
            "--http", f"127.0.0.1:{http}", "--account", "acme_sam", "--password", SECRETS["acme_sam"])
    res = run_tool(*args, "--out", str(out), env=env)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "matplotlib" in res.stderr and ".venv/bin/python" in res.stderr and "--no-plots" in res.stderr
    assert not out.exists() and bindings(api) == 0 and set(states(api).values()) == {"offline"}
    # without plots the same Python runs it to the end
    res = run_tool(*args, "--no-plots", "--out", str(out), env=env)
    assert res.returncode in (0, 1), res.stdout[-2000:] + res.stderr[-2000:]
    assert (out / "report.md").exists() and not (out / "rate.png").exists()
    assert bindings(api) == 0


def test_command_line_is_stored_without_passwords():
    sys.path.insert(0, ROOT)
    from tools.loadtest_run import redact_argv
    argv = ["loadtest.py", "calls", "--password", "S3cret!", "--agent", "1001:70001:Pa:ss", "--agent=70002:Pw2",
            "--user", "70003:Pw3", "--agent-password-format=Phone-{user}!", "--number", "4001"]
    assert redact_argv(argv) == ["loadtest.py", "calls", "--password", "***", "--agent", "1001:70001:***",
                                 "--agent=70002:***", "--user", "70003:***", "--agent-password-format=***",
                                 "--number", "4001"]
