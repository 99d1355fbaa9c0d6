"""`softswitch phone` as real processes against `softswitch serve` on the shipped example: an agent's phone that
registers and auto-answers, a customer's phone that calls 4001, tones both ways, DTMF, and the exit statuses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.cc import Api, wait_for
from tests.conftest import free_port
from tests.support.serve import Served, example_on_free_ports
from tests.integration.test_audio import segment

pytest.importorskip("pjsua2")

AGENT_HZ, CUSTOMER_HZ = 1000, 440
DEMO = {"acme_alice": "Alice-Demo1!", "acme_sam": "Sam-Demo4!", "70001": "Phone-70001!", "70002": "Phone-70002!"}


class PhoneProcess:
    """One `softswitch phone ...` process; its event lines are collected as they come."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "softswitch.cli", "phone", *args], cwd=cwd,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self.errors: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.errors), daemon=True).start()

    @staticmethod
    def _read(stream, into: list) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def events(self, kind: str) -> list[dict]:
        """The `kind key=value ...` lines said so far, as dicts."""
        out = []
        for line in list(self.lines):
            word, _, rest = line.partition(" ")
            if word == kind:
                out.append(dict(_fields(rest)))
        return out

    def said(self, kind: str, timeout: float) -> bool:
        return wait_for(lambda: bool(self.events(kind)), timeout)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"phone still running after {timeout} s: {self.tail()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self) -> str:
        return "\n".join(self.lines[-30:] + ["-- stderr --"] + self.errors[-15:])


def _fields(rest: str):
    """key=value pairs; a value with spaces is in double quotes."""
    i = 0
    while i < len(rest):
        key, _, tail = rest[i:].partition("=")
        if tail.startswith('"'):
            end = tail.index('"', 1)
            value, used = tail[1:end], end + 2
        else:
            value = tail.split(" ", 1)[0]
            used = len(value) + 1
        yield key.strip(), value
        i += len(key) + 1 + used


def http_port(config: Path) -> int:
    return int(config.read_text().split("http: {listen: 127.0.0.1:")[1].split("}")[0])


def logged_in(port: int, account: str) -> Api:
    api = Api(port)
    api.token = api.call("POST", "/api/login", {"account": account, "password": DEMO[account]}, expect=200)[1]["token"]
    return api


@pytest.fixture
def node(tmp_path):
    config, sip_port = example_on_free_ports(tmp_path)
    served = Served(config)
    try:
        yield config, sip_port, http_port(config), served
    finally:
        if served.proc.poll() is None:
            served.stop()


def test_agent_phone_answers_a_customer_phone_and_they_hear_each_other(node, tmp_path):
    config, sip_port, http, _ = node
    server = f"127.0.0.1:{sip_port}"
    agent = PhoneProcess("register", "70001", "--password", DEMO["70001"], "--server", server,
                         "--play-tone", str(AGENT_HZ), "--record", "agent.wav", "--hangup-after", "3", "--calls", "1",
                         cwd=tmp_path)
    customer = None
    try:
        assert agent.said("registered", 10), agent.tail()
        api = logged_in(http, "acme_alice")
        assert api.state()["registered"] is True
        assert api.call("POST", "/api/agents/me/sign-in", expect=200)[1]["state"] == "idle"
        # the README's customer: calls the support queue, sends a tone, records what it hears, stays until
        # the agent hangs up
        customer = PhoneProcess("call", "4001", "--server", server, "--play-tone", str(CUSTOMER_HZ),
                                "--record", "heard.wav", "--timeout", "20", cwd=tmp_path)
        assert customer.wait(40) == 0, customer.tail()
        assert agent.wait(15) == 0, agent.tail()

        (incoming,) = agent.events("incoming")
        assert incoming["answer_after"] == "2s"                  # the switch's auto-answer hint, obeyed
        assert agent.events("answered") and agent.events("connected")
        assert agent.events("ended")[0]["by"] == "here"
        assert agent.events("unregistered"), agent.tail()         # leaving unregisters the phone
        assert customer.events("connected") and customer.events("ended")[0]["by"] == "remote"
        assert customer.events("exit")[0]["status"] == "0"
        assert not api.state()["registered"]

        rms, freq = segment(str(tmp_path / "heard.wav"), -2.0, -0.2)
        assert rms > 300 and abs(freq - AGENT_HZ) < 30, (rms, freq)      # the customer heard the agent
        rms, freq = segment(str(tmp_path / "agent.wav"), 0.3, -0.2)
        assert rms > 300 and abs(freq - CUSTOMER_HZ) < 30, (rms, freq)   # the agent heard the customer
    finally:
        agent.kill()
        if customer is not None:
            customer.kill()


def test_callback_digit_reaches_the_queue_as_dtmf(node, tmp_path):
    config, sip_port, http, served = node
    server = f"127.0.0.1:{sip_port}"
    agent = PhoneProcess("register", "70001", "--password", DEMO["70001"], "--server", server, cwd=tmp_path)
    customer = None
    try:
        assert agent.said("registered", 10), agent.tail()
        api = logged_in(http, "acme_alice")       # signed in but busy: the caller waits in the queue
        api.call("POST", "/api/agents/me/sign-in", expect=200)
        api.call("POST", "/api/agents/me/state", {"state": "busy", "reason": "meeting"}, expect=200)
        # after the welcome prompt the caller presses 9 to be called back
        customer = PhoneProcess("call", "4001", "--server", server, "--dtmf", "9", "--dtmf-after", "4",
                                "--timeout", "10", cwd=tmp_path)
        assert customer.wait(40) == 0, customer.tail()
        assert customer.events("dtmf_sent")[0]["digits"] == "9"
        assert customer.events("ended")[0]["by"] == "remote", customer.tail()   # confirmed, then hung up
        out = subprocess.run([sys.executable, "-m", "softswitch.cli", "records", "export", str(config),
                              "--kind", "queue_log", "--format", "json"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert '"event": "callback"' in out.stdout, out.stdout[-2000:]
        assert not agent.events("incoming")
        # the caller keeps a place in the queue: a stop would drain until server.drain_timeout, so kill
        served.proc.kill()
        served.proc.wait()
    finally:
        agent.kill()
        if customer is not None:
            customer.kill()


def test_exit_statuses_say_what_went_wrong(node, tmp_path):
    config, sip_port, http, _ = node
    server = f"127.0.0.1:{sip_port}"
    wrong = PhoneProcess("register", "70002", "--password", "Not-The-Password1!", "--server", server, cwd=tmp_path)
    assert wrong.wait(20) == 3, wrong.tail()                          # registration failed
    assert wrong.events("registration_failed")[0]["code"] == "403"
    direct = PhoneProcess("call", "70002", "--server", server, cwd=tmp_path)   # customers cannot call agents
    assert direct.wait(20) == 4, direct.tail()
    assert direct.events("failed")[0]["code"] == "403"

    sup = logged_in(http, "acme_sam")
    os.environ["SOFTSWITCH_PHONE_PASSWORD"] = DEMO["70002"]       # the password from the environment
    try:
        phone = PhoneProcess("register", "70002", "--server", server, "--transport", "tcp", cwd=tmp_path)
    finally:
        del os.environ["SOFTSWITCH_PHONE_PASSWORD"]
    try:
        assert phone.said("registered", 10), phone.tail()
        assert phone.events("registering")[0]["server"] == f"tcp:{server}"
        assert wait_for(lambda: sup.state("1002")["registered"], 5)
        phone.proc.send_signal(signal.SIGTERM)                       # stopped by a signal: unregisters, exits 0
        assert phone.wait(15) == 0, phone.tail()
        assert phone.events("stopping")[0]["signal"] == "SIGTERM" and phone.events("unregistered")
        assert not sup.state("1002")["registered"]
    finally:
        phone.kill()


def test_unanswered_call_times_out(tmp_path):
    # a port nobody answers on: the INVITE goes unanswered, the phone gives up after --timeout
    phone = PhoneProcess("call", "4001", "--server", f"127.0.0.1:{free_port()}", "--timeout", "2", cwd=tmp_path)
    assert phone.wait(30) == 6, phone.tail()
    assert phone.events("timeout")[0]["after"] == "2s"


BUSY_UAS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="a phone that is busy">
  <recv request="INVITE"/>
  <send>
    <![CDATA[

      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]busy[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"""


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed")
def test_busy_callee_gives_the_busy_status(tmp_path):
    # SIPp as the callee, answering 486 Busy Here: the switch itself never says busy to a customer
    port = free_port()
    (tmp_path / "busy.xml").write_text(BUSY_UAS)
    uas = subprocess.Popen(["sipp", "-sf", str(tmp_path / "busy.xml"), "-i", "127.0.0.1", "-p", str(port), "-m", "1",
                            "-nostdin", "-nd"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        phone = PhoneProcess("call", "4001", "--server", f"127.0.0.1:{port}", "--timeout", "10", cwd=tmp_path)
        assert phone.wait(30) == 5, phone.tail()
        assert phone.events("busy")[0]["code"] == "486"
    finally:
        uas.kill()
        uas.wait()
