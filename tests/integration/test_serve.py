"""The whole program: `softswitch serve` starts, answers SIP, and stops cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import ast
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.serve import Served, example_on_free_ports, wait_admitting
from tests.support.sipclient import UdpClient, options_request

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_and_stops_cleanly(tmp_path, sig):
    config, port = example_on_free_ports(tmp_path)
    node = Served(config)
    try:
        assert f"listening sip udp:127.0.0.1:{port}" in node.lines
        assert f"records {tmp_path / 'cdr.db'}" in node.lines          # absolute, wherever it was started
        assert f"recordings {tmp_path / 'recordings'}" in node.lines
        client = UdpClient(("127.0.0.1", port))
        client.send(options_request(port))
        resp = client.recv(5)
        assert resp is not None and resp.status == 200
        assert "REGISTER" in resp.get("Allow") and "INVITE" in resp.get("Allow")
    finally:
        code = node.stop(sig)
    assert code == 0
    assert "stopped" in node.stderr()


def test_serve_refuses_bad_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  sip: {listen: [udp:127.0.0.1:5999], domain: x.test, colour: blue}\n")
    res = subprocess.run([sys.executable, "-m", "softswitch.cli", "serve", "--config", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert f"{bad}:2: server.sip.colour: unknown key" in res.stderr


def test_serve_names_the_address_it_cannot_listen_on(tmp_path):
    import socket
    config, port = example_on_free_ports(tmp_path)
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", port))     # another program holds the SIP UDP port
    try:
        res = subprocess.run([sys.executable, "-m", "softswitch.cli", "serve", "--config", str(config)],
                             capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert res.returncode == 1
    assert f"cannot listen on udp:127.0.0.1:{port}: Address already in use" in res.stderr


PURE = ["softswitch/sip", "softswitch/calls", "acd", "media", "softswitch/security/lockout.py", "softswitch/security/authn.py",
        "softswitch/registrar/keepalive.py"]
IO_MODULES = {"asyncio", "socket", "time", "random", "selectors", "threading", "uvloop"}
# The media engine is the media side's only I/O; its tick stages, codec tables and recordings stay pure.
KERNEL_EXEMPT = {"media/engine/core.py", "media/engine/player.py", "media/engine/relay.py",
                 "media/engine/stream.py", "media/engine/ticker.py"}


def test_pure_packages_import_no_io():
    offenders = []
    for pkg in PURE:
        where = ROOT / pkg
        for path in [where] if where.is_file() else sorted(where.rglob("*.py")):
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


def test_sigterm_drains_calls_then_exits(tmp_path):
    from softswitch.records.store import RecordStore
    from tests.integration.test_dialogs import ack, answered, invite
    from tools.agents_load import api, register_agents
    from tests.conftest import free_port
    config, port = example_on_free_ports(tmp_path)
    config.write_text(config.read_text().replace("node_id: demo-1", "node_id: demo-1\n  drain_timeout: 20s"))
    http = int(config.read_text().split("http: {listen: 127.0.0.1:")[1].split("}")[0])
    node = Served(config)
    try:
        assert register_agents(port, [("70001", "Phone-70001!")], "cc.example.com", free_port()) == 1
        base = f"http://127.0.0.1:{http}"
        token = api(base, "POST", "/api/login", {"account": "acme_alice", "password": "Alice-Demo1!"})["token"]
        api(base, "POST", "/api/agents/me/sign-in", {}, token)
        api(base, "POST", "/api/agents/me/state", {"state": "rest", "reason": "break"}, token)
        client = UdpClient(("127.0.0.1", port))
        wait_admitting(http)
        client.send(invite(port, client, "drain-1"))
        ok = answered(client)
        assert ok.status == 200
        client.send(ack(port, client, "drain-1", ok.to.tag))
        node.proc.send_signal(signal.SIGTERM)
        node.wait_log('"event": "draining"')
        assert node.proc.poll() is None                       # still serving the call in progress
        client.send(invite(port, client, "drain-2"))
        refused = answered(client)
        assert refused.status == 503 and refused.get("Retry-After")
        try:        # a load balancer asking /health is told to send calls elsewhere
            urllib.request.urlopen(f"{base}/health", timeout=10)
            raise AssertionError("/health answered 200 while draining")
        except urllib.error.HTTPError as err:
            assert err.code == 503 and json.loads(err.read())["status"] == "draining"
        client.send((f"BYE sip:4001@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{client.addr[1]};"
                     f"branch=z9hG4bK-drain-bye;rport\r\nMax-Forwards: 70\r\nFrom: <sip:cust@x.test>;tag=ct\r\n"
                     f"To: <sip:4001@cc.test>;tag={ok.to.tag}\r\nCall-ID: drain-1\r\nCSeq: 2 BYE\r\n"
                     "Content-Length: 0\r\n\r\n").encode())
        assert node.proc.wait(10) == 0
        client.close()
    finally:
        if node.proc.poll() is None:
            node.proc.kill()
    store = RecordStore(f"sqlite:///{tmp_path}/cdr.db")
    assert [c["call_id"] for c in store.cdrs()] == ["drain-1"]
    store.close()
    # structured logs: JSON lines, and every line about a call or an agent names it
    log = node.stderr()
    assert "Task was destroyed" not in log            # a clean stop leaves no task pending
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    call_lines = [x for x in lines if x["event"].startswith(("call_", "acd_enqueue", "acd_abandon", "cdr"))]
    agent_lines = [x for x in lines if x["event"] == "acd_state"]
    assert call_lines and all(x.get("call_id") for x in call_lines)
    assert agent_lines and all(x.get("agent_id") for x in agent_lines)


def test_registrations_survive_a_restart(tmp_path):
    from tools.agents_load import api
    from tests.support.cc import wait_for
    from tests.integration.test_phones_presence import UdpPhone
    config, port = example_on_free_ports(tmp_path)
    http = int(config.read_text().split("http: {listen: 127.0.0.1:")[1].split("}")[0])
    node = Served(config)
    phone = UdpPhone(port, "70001", "Phone-70001!", "cc.example.com")     # answers keepalives
    try:
        assert phone.register(expires=600) == 200
    finally:
        assert node.stop() == 0
    node = Served(config)
    try:
        base = f"http://127.0.0.1:{http}"
        token = api(base, "POST", "/api/login", {"account": "acme_alice", "password": "Alice-Demo1!"})["token"]
        assert api(base, "GET", "/health")["bindings"] == 1
        # no REGISTER since the restart: the kept binding counts once the phone answers a keepalive
        assert wait_for(lambda: api(base, "GET", "/api/agents/me", None, token)["registered"], 20)
        assert api(base, "POST", "/api/agents/me/sign-in", {}, token)["state"] == "idle"
    finally:
        phone.close()
        assert node.stop() == 0


def test_sighup_reload_applies_new_routes_without_dropping_calls(tmp_path):
    import time as _time
    from tests.integration.test_dialogs import ack, answered, invite
    from tools.agents_load import api, register_agents
    from tests.conftest import free_port
    config, port = example_on_free_ports(tmp_path)
    http = int(config.read_text().split("http: {listen: 127.0.0.1:")[1].split("}")[0])
    node = Served(config)
    try:
        assert register_agents(port, [("70001", "Phone-70001!")], "cc.example.com", free_port()) == 1
        base = f"http://127.0.0.1:{http}"
        token = api(base, "POST", "/api/login", {"account": "acme_alice", "password": "Alice-Demo1!"})["token"]
        api(base, "POST", "/api/agents/me/sign-in", {}, token)
        api(base, "POST", "/api/agents/me/state", {"state": "rest", "reason": "break"}, token)
        client = UdpClient(("127.0.0.1", port))
        wait_admitting(http)
        client.send(invite(port, client, "rl-1"))
        ok = answered(client)
        assert ok.status == 200
        client.send(ack(port, client, "rl-1", ok.to.tag))
        # a broken file changes nothing and says why
        good = config.read_text()
        config.write_text(good.replace("max_calls: 100", "max_calls: lots"))
        node.proc.send_signal(signal.SIGHUP)
        seen = node.wait_log('"reload_rejected"')
        wait_admitting(http)
        def final(call_id):
            for _ in range(20):
                m = client.recv(3)
                if m is not None and getattr(m, "status", 0) >= 200 and m.call_id == call_id:
                    return m
            raise AssertionError(f"no final response for {call_id}")
        client.send(invite(port, client, "rl-2").replace(b"4001", b"4005"))
        assert final("rl-2").status == 407       # not a called route: only an authenticated agent goes on
        # a good file with a new called number for the same queue applies at once
        config.write_text(good.replace('  - {called: "4001", queue: support_voice}',
                                       '  - {called: "4001", queue: support_voice}\n'
                                       '  - {called: "4005", queue: support_voice}'))
        node.proc.send_signal(signal.SIGHUP)
        node.wait_log('"event": "reloaded"', after=seen)
        wait_admitting(http)
        client.send(invite(port, client, "rl-3").replace(b"4001", b"4005"))
        assert final("rl-3").status == 200
        deadline = _time.monotonic() + 30                         # after the welcome prompt they queue
        while api(base, "GET", "/api/queues/support_voice", None, token)["waiting"] < 2 and \
                _time.monotonic() < deadline:
            _time.sleep(0.2)
        assert api(base, "GET", "/api/queues/support_voice", None, token)["waiting"] == 2   # first call still there
        client.send((f"BYE sip:4001@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{client.addr[1]};"
                     f"branch=z9hG4bK-rl-bye;rport\r\nMax-Forwards: 70\r\nFrom: <sip:cust@x.test>;tag=ct\r\n"
                     f"To: <sip:4001@cc.test>;tag={ok.to.tag}\r\nCall-ID: rl-1\r\nCSeq: 2 BYE\r\n"
                     "Content-Length: 0\r\n\r\n").encode())
        bye_ok = [m for m in client.recv_until(lambda got: any(getattr(m, "status", 0) and m.cseq[1] == "BYE"
                                                              for m in got))
                  if getattr(m, "status", 0) and m.cseq[1] == "BYE"]
        assert bye_ok and bye_ok[0].status == 200
        client.close()
    finally:
        node.proc.send_signal(signal.SIGINT)          # drain: the queued call would keep it up to 30 s...
        node.wait_log('"event": "draining"')
        # ...a second signal cuts the drain short. Sent again until the node exits: one that lands before
        # the drain has started running on the loop is not seen (found when it was sent at once).
        for _ in range(20):
            node.proc.send_signal(signal.SIGINT)
            try:
                code = node.proc.wait(1)
                break
            except subprocess.TimeoutExpired:
                pass
        else:
            code = node.proc.wait(5)
    err = node.stderr()
    assert "reload_rejected" in err and "max_calls" in err
    assert '"event": "reloaded"' in err
    assert code == 0


def test_the_example_admin_reloads_through_the_api(tmp_path):
    from tools.agents_load import api
    config, _ = example_on_free_ports(tmp_path)
    http = int(config.read_text().split("http: {listen: 127.0.0.1:")[1].split("}")[0])
    base = f"http://127.0.0.1:{http}"
    node = Served(config)
    try:
        agent = api(base, "POST", "/api/login", {"account": "acme_alice", "password": "Alice-Demo1!"})["token"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            api(base, "POST", "/api/admin/reload", {}, agent)
        assert refused.value.code == 403
        # the account and password the example's comments give
        admin = api(base, "POST", "/api/login", {"account": "acme_dana", "password": "Dana-Admin5!"})["token"]
        assert api(base, "POST", "/api/admin/reload", {}, admin)["ok"] is True
        # security limits change in place, with nothing to restart
        text = config.read_text()
        assert "account_failures: 10," in text
        config.write_text(text.replace("account_failures: 10,", "account_failures: 3,"))
        changes = api(base, "POST", "/api/admin/reload", {}, admin)["changes"]
        assert changes["security"] == ["server.sip.security"] and "needs_restart" not in changes
    finally:
        assert node.stop() == 0
