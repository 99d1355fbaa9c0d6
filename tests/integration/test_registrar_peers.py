"""Registration with real peers against a running node: a pjsua2 softphone and SIPp storms."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from softswitch.registrar.credentials import Credentials, ha1_pair
from softswitch.registrar.registrar import RegistrarOptions
from tests.conftest import running_node
from tests.support.sipp import run_sipp
from tools.sipp.users_csv import write_users_csv

REALM = "cc.test"
PATIENT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "sipp", "register_auth_patient.xml")


@pytest.fixture(scope="module")
def phones():
    from tools.softphone import Softphones
    return Softphones.get()


def accounts_node(n: int = 0, extra: dict | None = None, **reg):
    users = {str(100000 + i): f"Pw-{100000 + i}!" for i in range(n)}
    users.update(extra or {})
    creds = Credentials(REALM, {u: ha1_pair(u, REALM, p) for u, p in users.items()})
    return running_node(credentials=creds, registrar=RegistrarOptions(realm=REALM, **reg))


def wait_until(pred, timeout: float) -> bool:
    """Poll until pred() holds; the timeout only bounds a hang."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


def bindings(nt, user):
    node = nt.node
    return nt.call(node.location.lookup, f"sip:{user}@{REALM}", time.time())


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_pjsua2_registers_reregisters_and_unregisters(phones, transport):
    with accounts_node(extra={"70001": "Agent-Pass-1!"}, min_expires=60) as nt:
        events = []
        nt.call(lambda: nt.node.registrar.listeners.append(lambda u, b, a: events.append((u, len(b), len(a)))))
        port = nt.node.port(transport)
        acc = phones.account("70001", "Agent-Pass-1!", f"127.0.0.1:{port}", transport=transport, expires=120,
                             domain=REALM)
        try:
            assert phones.wait(lambda: acc.registered, 5), acc.reg_codes
            assert acc.reg_codes[-1] == 200
            (b,) = bindings(nt, "70001")
            assert b.source[0] == transport and 100 <= b.expires_at - time.time() <= 120
            first_expiry = b.expires_at
            time.sleep(1.1)
            acc.setRegistration(True)           # re-register: the same binding, refreshed
            assert phones.wait(lambda: len(acc.reg_codes) >= 2 and acc.registered, 5)
            (b2,) = bindings(nt, "70001")
            assert b2.key == b.key and b2.expires_at > first_expiry
            acc.setRegistration(False)
            assert phones.wait(lambda: not acc.registered, 5)
            assert bindings(nt, "70001") == []
            assert events[0] == ("70001", 0, 1) and events[-1] == ("70001", 1, 0)
        finally:
            phones.remove(acc, unregister=False)


def test_pjsua2_wrong_password_is_refused(phones):
    with accounts_node(extra={"70001": "Agent-Pass-1!"}) as nt:
        acc = phones.account("70001", "Not-The-Pass-1!", f"127.0.0.1:{nt.node.port('udp')}", domain=REALM)
        try:
            assert phones.wait(lambda: 403 in acc.reg_codes, 5), acc.reg_codes
            assert not acc.registered and bindings(nt, "70001") == []
            assert nt.call(lambda: nt.node.registrar.stats["auth_failed"]) >= 1
        finally:
            phones.remove(acc, unregister=False)


def test_sipp_registers_thousands_and_counts_wrong_passwords(tmp_path):
    n = 3000
    with accounts_node(n) as nt:
        port = nt.node.port("udp")
        good = tmp_path / "good.csv"
        write_users_csv(str(good), [(str(100000 + i), f"Pw-{100000 + i}!") for i in range(n)], REALM)
        # (a node slower than SIPp's 500 ms re-send on a busy host challenges a copy of the first REGISTER too)
        res = run_sipp(PATIENT, port, calls=n, rate=600, workdir=str(tmp_path),
                       extra=["-inf", str(good)], timeout=60)
        assert (res.successful, res.failed) == (n, 0), res.stderr[-500:]
        assert nt.call(nt.node.location.count) == n
        bad = tmp_path / "bad.csv"
        write_users_csv(str(bad), [(str(100000 + i), "Wrong-Pass-1!") for i in range(200)]
                        + [(str(900000 + i), "Wrong-Pass-1!") for i in range(100)], REALM)
        res = run_sipp("register_auth.xml", port, calls=300, rate=300, workdir=str(tmp_path),
                       extra=["-inf", str(bad)], timeout=30)
        assert (res.successful, res.failed) == (0, 300)
        stats = nt.call(lambda: dict(nt.node.registrar.stats))
        assert stats["auth_failed"] == 300 and stats["registered"] == n
        # SIPp's REGISTERs took the plain-REGISTER lane, both halves (softswitch/registrar/lane.py)
        lane = nt.call(lambda: dict(nt.node.endpoint.register_lane.stats))
        assert lane["challenged"] >= n + 300 and lane["passed"] >= n + 300 and lane["declined"] == 0
        assert nt.call(nt.node.location.count) == n            # nobody lost a binding to a wrong password
        assert nt.call(lambda: nt.node.endpoint.layer.counts()["client"]) == 0


def test_sipp_registers_over_tcp(tmp_path):
    n = 300
    with accounts_node(n) as nt:
        csv_path = tmp_path / "u.csv"
        write_users_csv(str(csv_path), [(str(100000 + i), f"Pw-{100000 + i}!") for i in range(n)], REALM)
        res = run_sipp("register_auth.xml", nt.node.port("tcp"), calls=n, rate=200, transport="t1",
                       workdir=str(tmp_path), extra=["-inf", str(csv_path)], timeout=30)
        assert (res.successful, res.failed) == (n, 0), res.stderr[-500:]
        assert nt.call(lambda: nt.node.registrar.stats["registered"]) == n
        # SIPp has closed its connection on exit: the bindings registered over it went with it (RFC 5626 flows)
        assert wait_until(lambda: nt.call(nt.node.location.count) == 0, 10)
        assert nt.call(lambda: nt.node.phones.stats["bindings_dropped"]) == n


def _register_once(port: int, user: str, password: str, realm: str, call_id: str) -> int:
    from softswitch.sip.digest import make_authorization
    from tests.support.sipclient import UdpClient
    client = UdpClient(("127.0.0.1", port))

    def req(cseq: int, auth: str = "") -> bytes:
        return (f"REGISTER sip:{realm} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{client.addr[1]};branch=z9hG4bK-{call_id}"
                f"-{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{realm}>;tag=r{cseq}\r\n"
                f"To: <sip:{user}@{realm}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{user}@127.0.0.1:{client.addr[1]}>\r\nExpires: 300\r\n{auth}"
                f"Content-Length: 0\r\n\r\n").encode()
    try:
        client.send(req(1))
        ch = client.recv(5)
        value = make_authorization(ch.get_all("WWW-Authenticate")[0], "REGISTER", f"sip:{realm}", user, password)
        client.send(req(2, f"Authorization: {value}\r\n"))
        return client.recv(5).status
    finally:
        client.close()


def test_cli_password_reset_applies_to_running_node(tmp_path):
    from tests.support.serve import Served, example_on_free_ports
    config, port = example_on_free_ports(tmp_path)
    node = Served(config)
    try:
        realm = "cc.example.com"
        assert _register_once(port, "70001", "Phone-70001!", realm, "before") == 200
        res = subprocess.run([sys.executable, "-m", "softswitch.cli", "passwd", "--reset", "--config", str(config),
                              "--agent", "1001", "--stdin"], input="Fresh-Phone-1!\n", capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        deadline = time.monotonic() + 5
        while _register_once(port, "70001", "Fresh-Phone-1!", realm, f"after-{time.monotonic()}") != 200:
            assert time.monotonic() < deadline, "reset not applied"
            time.sleep(0.2)
        assert _register_once(port, "70001", "Phone-70001!", realm, "old") == 403
        weak = subprocess.run([sys.executable, "-m", "softswitch.cli", "passwd", "--reset", "--config", str(config),
                               "--agent", "1001", "--stdin"], input="weak\n", capture_output=True, text=True,
                              timeout=60)
        assert weak.returncode == 1 and "policy" in weak.stderr
    finally:
        assert node.stop() == 0


def test_pool_mode_one_account_registers_to_every_node(phones):
    """Pool mode: the same softphone account and password on two nodes; each node keeps its own binding."""
    with accounts_node(extra={"70001": "Agent-Pass-1!"}, node_id="n1") as a, \
            accounts_node(extra={"70001": "Agent-Pass-1!"}, node_id="n2") as b:
        accs = [phones.account("70001", "Agent-Pass-1!", f"127.0.0.1:{nt.node.port('udp')}", domain=REALM)
                for nt in (a, b)]
        try:
            assert phones.wait(lambda: all(x.registered for x in accs), 5), [x.reg_codes for x in accs]
            (ba,), (bb,) = bindings(a, "70001"), bindings(b, "70001")
            assert (ba.node, bb.node) == ("n1", "n2")
            accs[0].setRegistration(False)
            assert phones.wait(lambda: not accs[0].registered, 5)
            assert bindings(a, "70001") == [] and len(bindings(b, "70001")) == 1
        finally:
            for x in accs:
                phones.remove(x, unregister=False)
