"""The README's shell commands, run as written against `softswitch serve` on the shipped example.

Every ```sh block of README.md is claimed in BLOCKS by the test that runs it, or in NOT_RUN with the reason it
cannot be run; test_every_shell_block_is_run_or_said_why_not keeps the two lists and the README in step.

A block runs as a bash script (`bash -e -o pipefail`: any failing command fails it) in a scratch directory that
stands for the root of a fresh clone after `make run`: `.venv` is the virtualenv running the tests (so
`. .venv/bin/activate` and `.venv/bin/python` work), `tools` and `config` the repository's, and PATH starts with
the venv's bin as after `. .venv/bin/activate`. The node runs on free ports instead of the shipped ones, and
`rewrite` changes exactly this in a block, nothing else:
  - `localhost:8080` and `127.0.0.1:8080` become the node's HTTP address, `127.0.0.1:5060` its SIP address;
  - `softswitch phone register|call` gets `--server` with that SIP address (the phone's default is the shipped
    127.0.0.1:5060, which the README relies on);
  - `config/example.yaml` becomes the node's copy of it (free ports, its database in the test's directory).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.cc import wait_for
from tests.support.serve import Served, example_on_free_ports
from tests.integration.test_audio import segment

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
VENV = Path(sys.prefix)

LOGIN = "TOKEN=$(curl -s -X POST localhost:8080/api/login -d '{\"account\":"
ALICE_LOGIN, ADMIN_LOGIN = LOGIN + '"acme_alice"', LOGIN + '"acme_dana"'
# first line of a block -> the test that runs it
BLOCKS = {
    "softswitch phone register 70001": "test_trying_it",
    ALICE_LOGIN: "test_trying_it",
    "softswitch records export config/example.yaml": "test_trying_it",
    ". .venv/bin/activate": "test_command_line",
    ADMIN_LOGIN: "test_operations",
    ".venv/bin/python tools/loadtest.py calls": "test_load_test",
}
# first line of a block -> why it is not run as written
NOT_RUN = {
    "make run": "`make run` serves in the foreground until stopped and `make test` is this suite: "
                "test_make_targets checks, with `make -n`, the commands they run",
}


def shell_blocks(text: str = README) -> list[str]:
    """The ```sh blocks, indentation (a block inside a list item) removed."""
    out = []
    for m in re.finditer(r"^( *)```sh\n(.*?)^\1```", text, re.M | re.S):
        indent = len(m.group(1))
        out.append("".join(line[indent:] for line in m.group(2).splitlines(keepends=True)))
    return out


def block(first: str) -> str:
    assert first in BLOCKS, f"claim the block in BLOCKS first: {first!r}"
    (found,) = [b for b in shell_blocks() if b.startswith(first)]
    return found


def sample_output() -> list[str]:
    """The lines the README shows a `softswitch phone call` printing."""
    m = re.search(r"```\n(calling .*?)```", README, re.S)
    assert m, "the README no longer shows the phone's output"
    return m.group(1).splitlines()


def fields(line: str) -> tuple[str, dict[str, str]]:
    """`word key=value key="a value" ...` -> (word, {key: value})."""
    word, *pairs = shlex.split(line)
    return word, dict(p.partition("=")[::2] for p in pairs)


class Node:
    def __init__(self, tmp_path: Path) -> None:
        self.config, self.sip = example_on_free_ports(tmp_path)
        self.http = int(re.search(r"http: \{listen: 127\.0\.0\.1:(\d+)", self.config.read_text()).group(1))
        self.served = Served(self.config)

    def stop(self) -> None:
        if self.served.proc.poll() is None:
            self.served.stop()


@pytest.fixture
def node(tmp_path):
    n = Node(tmp_path)
    try:
        yield n
    finally:
        n.stop()


@pytest.fixture
def clone(tmp_path) -> Path:
    """A scratch directory standing for the root of a fresh clone after `make run`."""
    root = tmp_path / "clone"
    root.mkdir()
    (root / ".venv").symlink_to(VENV)
    (root / "tools").symlink_to(ROOT / "tools")
    (root / "config").symlink_to(ROOT / "config")
    return root


def rewrite(text: str, node: Node | None) -> str:
    """The block for the node on free ports; see the module's docstring for what changes and why."""
    if node is None:
        return text
    text = text.replace("localhost:8080", f"127.0.0.1:{node.http}").replace("127.0.0.1:8080", f"127.0.0.1:{node.http}")
    text = text.replace("127.0.0.1:5060", f"127.0.0.1:{node.sip}")
    text = re.sub(r"softswitch phone (register|call) ", rf"softswitch phone \1 --server 127.0.0.1:{node.sip} ", text)
    return text.replace("config/example.yaml", str(node.config))


def environment() -> dict[str, str]:
    return {**os.environ, "PATH": f"{VENV / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(VENV),
            "PYTHONUNBUFFERED": "1"}


def run(script: str, cwd: Path, node: Node | None, timeout: float) -> subprocess.CompletedProcess:
    """A block (or several) as a bash script; the timeout only bounds a hang."""
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", rewrite(script, node)], cwd=cwd,
                          env=environment(), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class Background:
    """A block left running, as in a second terminal; its output lines are collected as they come."""

    def __init__(self, script: str, cwd: Path, node: Node) -> None:
        self.proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", rewrite(script, node)], cwd=cwd,
                                     env=environment(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.lines: list[str] = []
        self.errors: list[str] = []
        for stream, into in ((self.proc.stdout, self.lines), (self.proc.stderr, self.errors)):
            threading.Thread(target=lambda s=stream, i=into: i.extend(line.rstrip("\n") for line in s),
                             daemon=True).start()

    def said(self, word: str) -> list[dict[str, str]]:
        return [f for w, f in map(fields, list(self.lines)) if w == word]

    def ctrl_c(self, timeout: float = 20) -> int:
        """What Ctrl-C in its terminal does: SIGINT to the foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def tail(self) -> str:
        return "\n".join(self.lines[-20:] + ["-- stderr --"] + self.errors[-10:])


def test_every_shell_block_is_run_or_said_why_not():
    blocks = shell_blocks()
    claims = list(BLOCKS) + list(NOT_RUN)
    for b in blocks:
        owners = [c for c in claims if b.startswith(c)]
        assert len(owners) == 1, f"README block claimed {len(owners)} times (BLOCKS / NOT_RUN):\n{b}"
    for c in claims:
        assert any(b.startswith(c) for b in blocks), f"no README block starts with {c!r} any more"
    assert len(NOT_RUN) <= 2, "the README is meant to be run: keep the allow-list short"


def test_make_targets():
    # `make run` and `make test` as a new user types them; -n prints what they would do and does nothing
    (b,) = [b for b in shell_blocks() if b.startswith("make run")]
    assert [c for c in (line.split("#")[0].strip() for line in b.splitlines()) if c] == ["make run", "make test"]
    # as typed in a shell: not as a sub-make of `make test` (which would print its Entering/Leaving lines)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    out = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == ".venv/bin/softswitch serve --config config/example.yaml"
    out = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == '.venv/bin/python -m pytest -q -m "not slow"'


def test_command_line(clone):
    out = run(block(". .venv/bin/activate"), clone, None, 60)
    assert out.returncode == 0, out.stderr
    version, check, route = out.stdout.splitlines()
    assert re.fullmatch(r"softswitch \d+\.\d+\S*", version), version
    assert check.startswith("config/example.yaml: ok (") and "4 agents" in check, check
    assert route.startswith("4001: skill queue support_voice (type voice"), route


def test_trying_it(node, clone):
    alice = Background(block("softswitch phone register 70001"), clone, node)
    try:
        assert wait_for(lambda: alice.said("registered"), 20), alice.tail()
        # the customer's block, then the sign-out the paragraph after it gives
        sign_out = re.search(r"Sign Alice out with `([^`]*)`", README).group(1)
        customer = block(ALICE_LOGIN)
        out = run(customer + sign_out + "\n", clone, node, 120)
        assert out.returncode == 0, out.stdout + out.stderr
        signed_in, *printed, signed_out = out.stdout.splitlines()
        assert json.loads(signed_in)["state"] == "idle" and json.loads(signed_out)["state"] == "offline"

        # the phone's lines have the README's shape: the same events with the same keys, in the same order
        got, want = [fields(line) for line in printed], [fields(line) for line in sample_output()]
        assert [(w, sorted(f)) for w, f in got] == [(w, sorted(f)) for w, f in want], "\n".join(printed)
        said = dict(got)
        assert said["calling"]["from"] == "5550100" and said["connected"]["remote"] == "sip:4001@cc.example.com"
        assert said["recording"]["file"] == str(clone / "heard.wav") and said["playing"]["tone"] == "440Hz"
        assert said["hangup"]["after"] == "10s" and said["exit"]["status"] == "0"
        assert (said["ended"]["code"], said["ended"]["by"]) == ("200", "here")

        # Alice's phone answered by itself when the switch's hint said, two seconds after ringing
        (incoming,) = alice.said("incoming")
        assert incoming["answer_after"] == "2s" and alice.said("answered")[0]["after"] == "2.0s"
        assert alice.ctrl_c() == 0, alice.tail()                        # Ctrl-C unregisters it and quits
        assert alice.said("unregistered"), alice.tail()
        assert alice.errors == [] and out.stderr == "", (alice.errors, out.stderr)   # nothing but those lines
    finally:
        alice.kill()
    rms, freq = segment(str(clone / "heard.wav"), -2.0, -0.2)           # heard.wav ends with her 1000 Hz
    assert rms > 300 and abs(freq - 1000) < 30, (rms, freq)
    rms, freq = segment(str(clone / "alice.wav"), 0.3, -0.2)            # alice.wav holds the customer's 440 Hz
    assert rms > 300 and abs(freq - 440) < 30, (rms, freq)

    # Records: the call's CDR and its queue-log rows, exported as the README shows, say the same wait and talk
    records = block("softswitch records export config/example.yaml")

    def exported() -> bool:
        out = run(records, clone, node, 60)
        assert out.returncode == 0, out.stderr
        return len(list(csv.DictReader((clone / "cdr.csv").open()))) == 1
    assert wait_for(exported, 30), "the call's CDR was never written"
    (cdr,) = csv.DictReader((clone / "cdr.csv").open())
    assert (cdr["caller_number"], cdr["caller_uri"]) == ("5550100", "sip:5550100@cc.example.com")
    assert (cdr["called"], cdr["queue"], cdr["agent_id"], cdr["outcome"]) == ("4001", "support_voice", "1001",
                                                                               "answered")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", cdr["started_at"]), cdr["started_at"]
    log = {r["event"]: r for r in json.loads((clone / "queue_log.json").read_text())
           if r["call_id"] == cdr["call_id"]}
    assert float(cdr["wait_s"]) == log["answer"]["wait_s"] == log["complete"]["wait_s"]
    assert float(cdr["talk_s"]) == log["complete"]["talk_s"] > 0
    assert log["answer"]["wait_s"] >= 2.0                  # queued before the phone's two-second auto-answer
    # the welcome prompt plays before the call enters the queue: that time is not a wait
    assert datetime.fromisoformat(log["enqueue"]["at"]) > datetime.fromisoformat(cdr["started_at"])


def test_operations(node, clone):
    out = run(block(ADMIN_LOGIN), clone, node, 60)
    assert out.returncode == 0, out.stdout + out.stderr
    reloaded, health = map(json.loads, out.stdout.splitlines())
    assert reloaded["ok"] is True, reloaded
    assert health["status"] == "ok" and health["node_id"] == "demo-1"


def test_load_test(node, clone):
    # "On the demo tenant, its agents signed out and their phones quit": the node as it starts
    out = run(block(".venv/bin/python tools/loadtest.py calls"), clone, node, 300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # PASS means every call was answered by an agent; the console counts what happened to them
    m = re.search(r"calls: PASS \((\d+) offered, (\d+) answered by agents, 0 abandoned, 0 overflowed, "
                  r"0 refused 503, 0 failed\)", out.stdout)
    assert m and int(m.group(1)) == int(m.group(2)) >= 4, out.stdout[-2000:]    # 0.25/s for 20 s
    report = clone / "report"
    assert "**PASS**" in (report / "report.md").read_text()
    for name in ("rate.png", "latency.png", "report.json"):
        assert (report / name).stat().st_size > 0, name
    assert "***" in (report / "command.txt").read_text()
    for f in report.iterdir():                   # no secrets in its files: the supervisor's, the agents' phones'
        text = f.read_bytes()
        assert b"Sam-Demo4!" not in text and b"Phone-7000" not in text, f.name


def test_files_the_readme_names_exist_and_every_benchmark_is_named():
    named = set(re.findall(r"[\w./-]*\w\.(?:py|sh|yaml)\b", README))
    benchmarks = {p.name for p in (ROOT / "benchmarks").glob("*.py") if "__main__" in p.read_text()}
    for name in named:
        where = ROOT / name if "/" in name else ROOT / "benchmarks" / name   # the Benchmarks section's bare names
        assert where.exists(), f"the README names {name}, which does not exist"
    assert not benchmarks - {Path(n).name for n in named}, "benchmarks the README does not name"
