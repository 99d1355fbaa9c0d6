"""Trunks over TLS against Kamailio as the carrier (its tls module, a certificate this test makes): the trunk
registers over TLS with digest and is pinged with OPTIONS on the same one connection, and the carrier's requests
for the registered contact come back on that connection (the node has no TLS listener of its own); a carrier whose
certificate does not verify (another CA, another name, not the pinned one) is refused before anything is sent,
and a pinned one is taken; an agent's outbound call leaves through the TLS trunk and the called party's hang-up
comes back on the same connection, after a first trunk whose certificate does not verify was given up at once.
Waits are for conditions; their deadlines only bound a hang."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import uuid

import pytest

from tests.conftest import free_port
from tests.integration.test_trunk_outbound import agent_phone, signed_in
from softswitch.node.compose import Node, credentials_from_config, options_from_config
from softswitch.settings import load_config
from tests.conftest import NodeThread
from tests.integration.test_trunks_kamailio import metrics, node_config, node_yaml, start_node, wait_for
from tests.support.cc import cc_node
from tests.support.cc import wait_for as wait_phones
from tests.support.certs import Ca
from softswitch.records.store import RecordStore
from tests.support.kamailio_tls import TlsCarrier
from tests.support.sipp import SIPP
from tools.kamailioserver import MODULES, kamailio_binary, request

pytestmark = pytest.mark.skipif(kamailio_binary() is None or not os.path.exists(MODULES + "tls.so"),
                                reason="kamailio or its tls module missing: run tools/install-sysdeps.sh")
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "sipp")


@pytest.fixture(scope="module")
def phones():
    from tools.softphone import Softphones      # pjsua2 starts only for the test that has phones
    return Softphones.get()


@pytest.fixture
def pki(tmp_path):
    ca = Ca(tmp_path / "pki")
    return ca, ca.issue("carrier", ["carrier.test"], ["127.0.0.1"]), Ca(tmp_path / "pki", "Someone Else")


def test_registers_and_is_pinged_over_one_verified_tls_connection_that_the_carrier_uses_back(tmp_path, pki):
    ca, cert, _ = pki
    tls_port = free_port()
    kam = TlsCarrier(tmp_path, free_port(), [tls_port], cert.cert, cert.key)
    kam.start()
    http = free_port()
    cfg = node_config(tmp_path, free_port(), http, f"""\
trunks:
  - name: carrier
    proxy: 127.0.0.1:{tls_port}
    transport: tls
    tls: {{ca_file: "{ca.pem}", server_name: carrier.test}}
    options: {{interval: 300ms, threshold: 2, timeout: 2s}}
    register: {{registrar: "sip:127.0.0.1:{tls_port}", username: trunk1, password: S3cret-Trunk}}
""")
    nt = start_node(cfg)
    try:
        reg = nt.call(lambda: nt.node.trunks.registrations["carrier"])
        pinger = nt.call(lambda: nt.node.trunks.pingers["carrier"])
        wait_for(lambda: nt.call(lambda: reg.state) == "registered", "registered over TLS")
        pings = lambda: [rx for rx in kam.received("OPTIONS") if f"to port {tls_port} " in rx]    # noqa: E731
        wait_for(lambda: len(pings()) >= 3, "three pings")
        assert nt.call(lambda: pinger.state) == "up"
        (line,) = [line for line in kam.lines if "REGISTERED" in line]
        assert "transport=tls" in line and f"over tls port {tls_port}" in line
        for rx in kam.received("REGISTER") + pings():
            assert " over tls " in rx and re.search(r"via=<SIP/2\.0/TLS 127\.0\.0\.1:\d+;rport;alias;", rx), rx
        # the carrier's request for the registered user reaches the node on the connection the node opened: the
        # node listens on UDP and TCP only, so there is no other way in over TLS
        status, text = request(kam.port, "trunk1")
        assert status == 200 and "Server: softswitch" in text
        stats = nt.call(lambda: dict(nt.node.endpoint.connector.stats))
        assert stats["opened"] == 1 and stats["failed"] == 0
        assert 'softswitch_trunk_registered{trunk="carrier"} 1.0' in metrics(http)
        # the carrier restarts: the connection closes, and the trunk opens a new one and registers again
        kam.restart()
        wait_for(lambda: kam.registered() >= 1, "a registration over a new TLS connection")
        wait_for(lambda: nt.call(lambda: reg.state) == "registered", "registered again")
        wait_for(lambda: request(kam.port, "trunk1", timeout=1)[0] == 200, "the carrier's requests reaching the node")
        assert nt.call(lambda: nt.node.endpoint.connector.stats["opened"]) >= 2
    finally:
        nt.stop()
        kam.stop()


def test_a_carrier_whose_certificate_does_not_verify_is_refused_and_a_pinned_one_taken(tmp_path, pki):
    ca, cert, other = pki
    ports = [free_port() for _ in range(4)]
    kam = TlsCarrier(tmp_path, free_port(), ports, cert.cert, cert.key)
    kam.start()
    wrong_pin = "AB:" * 31 + "AB"
    trunks = "trunks:\n"
    for name, port, tls in [("pinned", ports[0], f'pin_sha256: ["{cert.sha256}"]'),
                            ("other_ca", ports[1], f'ca_file: "{other.pem}", server_name: carrier.test'),
                            ("other_name", ports[2], f'ca_file: "{ca.pem}", server_name: sbc.elsewhere.test'),
                            ("wrong_pin", ports[3], f'pin_sha256: ["{wrong_pin}"]')]:
        trunks += f"""\
  - name: {name}
    transport: tls
    tls: {{{tls}}}
    register: {{registrar: "sip:127.0.0.1:{port};transport=tls", username: trunk1, password: S3cret-Trunk,
               retry: 200ms, retry_max: 1s}}
"""
    http = free_port()
    nt = start_node(node_config(tmp_path, free_port(), http, trunks))
    try:
        regs = nt.call(lambda: dict(nt.node.trunks.registrations))
        wait_for(lambda: nt.call(lambda: regs["pinned"].state) == "registered", "the pinned carrier's registration")
        for name in ("other_ca", "other_name", "wrong_pin"):
            wait_for(lambda: nt.call(lambda: regs[name].machine.stats["failures"]) >= 2, f"{name} failing twice")
            assert nt.call(lambda: regs[name].state) != "registered"
        errors = nt.call(lambda: dict(nt.node.endpoint.connector.last_error))
        assert "certificate verify failed: unable to get local issuer certificate" in errors[("tls", "127.0.0.1",
                                                                                              ports[1])]
        assert "certificate verify failed" in errors[("tls", "127.0.0.1", ports[2])]
        assert "sbc.elsewhere.test" in errors[("tls", "127.0.0.1", ports[2])]
        assert "certificate not pinned" in errors[("tls", "127.0.0.1", ports[3])]
        # nothing was sent on the refused connections: the carrier saw REGISTERs on the pinned port only
        assert kam.registered() >= 1
        assert all(f"to port {ports[0]} " in rx for rx in kam.received("REGISTER"))
        text = metrics(http)
        assert 'softswitch_trunk_registered{trunk="pinned"} 1.0' in text
        assert 'softswitch_trunk_registered{trunk="other_ca"} 0.0' in text
        opened = re.search(r'softswitch_sip_client_connections_total\{kind="opened"\} ([0-9.]+)', text)
        failed = re.search(r'softswitch_sip_client_connections_total\{kind="failed"\} ([0-9.]+)', text)
        assert opened and float(opened.group(1)) >= 1          # the pinned carrier's connection
        assert failed and float(failed.group(1)) >= 6          # three carriers refused, twice each at least
    finally:
        nt.stop()
        kam.stop()


@pytest.mark.skipif(SIPP is None, reason="sipp missing: run tools/install-sysdeps.sh")
def test_an_agents_call_fails_over_from_an_unverified_carrier_to_a_verified_one_and_the_hang_up_comes_back_on_it(
        phones, tmp_path, pki):
    ca, cert, other = pki
    tls_port, bad_port, callee_port = free_port(), free_port(), free_port()
    callee_dir = tmp_path / "callee"
    callee_dir.mkdir()
    callee = subprocess.Popen(
        [SIPP, "-sf", os.path.join(DATA, "callee_hangs_up.xml"), "-i", "127.0.0.1", "-p", str(callee_port),
         "-m", "1", "-nostdin", "-trace_msg", "-message_file", str(callee_dir / "messages.log"),
         "-trace_err", "-error_file", str(callee_dir / "errors.log")],
        cwd=callee_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kam = TlsCarrier(tmp_path, free_port(), [tls_port, bad_port], cert.cert, cert.key, callee=callee_port)
    kam.start()
    trunks = f"""
trunks:
  - name: unverified              # the same carrier, but its certificate is not from the CA this trunk trusts
    proxy: 127.0.0.1:{bad_port}
    transport: tls
    tls: {{ca_file: "{other.pem}", server_name: carrier.test}}
  - name: carrier
    proxy: 127.0.0.1:{tls_port}
    transport: tls
    tls: {{ca_file: "{ca.pem}", server_name: carrier.test}}
dial_plan:
  routes: [{{numbers: "+49*", trunks: [unverified, carrier]}}]
  caller_id: {{default: "+4930555000", queues: {{support: "+4930555100"}}}}
"""
    try:
        with cc_node(tmp_path, phones=trunks) as (nt, port, http):
            agent = agent_phone(phones, "70001", port)
            try:
                api = signed_in(http, "acme_alice")
                rec = agent.call(f"sip:+4930123456@127.0.0.1:{port}")
                assert phones.wait(lambda: rec.state == "CONFIRMED", 30), rec.states
                assert api.state()["state"] == "talking"
                # the unverified carrier's connection was refused before the INVITE was sent: the call went on
                # to the next trunk at once (a transport error, not the 4 s attempt timeout)
                (invite,) = kam.received("INVITE")
                m = metrics(http)
                assert 'softswitch_trunk_failures_total{kind="outbound",trunk="unverified"} 1.0' in m
                assert 'softswitch_trunk_outbound_attempts_total{trunk="carrier"} 1.0' in m
                assert " over tls " in invite and f"to port {tls_port} " in invite
                assert re.search(r"via=<SIP/2\.0/TLS 127\.0\.0\.1:\d+;rport;alias;branch=", invite), invite
                assert re.search(r"contact=<<sip:softswitch@127\.0\.0\.1:\d+;transport=tls>>", invite), invite
                # the called party hangs up: its BYE reaches the switch through the carrier on the connection the
                # switch opened (the node has no TLS listener), and the agent's call ends
                assert phones.wait(lambda: rec.ended_at is not None, 30), rec.states
                assert callee.wait(30) == 0, (callee_dir / "errors.log").read_text(errors="replace") \
                    if (callee_dir / "errors.log").exists() else "sipp failed"
                bye = [rx for rx in kam.received("BYE") if "from 127.0.0.1:" + str(callee_port) in rx]
                assert bye, kam.received("BYE")
                assert wait_phones(lambda: api.state()["state"] in ("wrap_up", "idle"), 10, phones)
                stats = nt.call(lambda: dict(nt.node.endpoint.connector.stats))
                assert stats["opened"] == 1 and stats["failed"] == 1
            finally:
                phones.remove(agent)
    finally:
        if callee.poll() is None:
            callee.kill()
        callee.wait(10)
        kam.stop()


def test_a_call_on_a_tls_registration_reaches_the_queue_over_the_connection_the_node_opened(tmp_path, pki):
    ca, cert, _ = pki
    tls_port = free_port()
    kam = TlsCarrier(tmp_path, free_port(), [tls_port], cert.cert, cert.key)
    kam.start()
    cfg = node_config(tmp_path, free_port(), free_port(), f"""\
trunks:
  - name: provider
    tls: {{ca_file: "{ca.pem}", server_name: carrier.test}}
    register: {{registrar: "sips:127.0.0.1:{tls_port}", username: trunk1, password: S3cret-Trunk}}
""")
    nt = start_node(cfg)
    try:
        wait_for(lambda: kam.registered() >= 1, "the registration over TLS")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            me = s.getsockname()[1]
            sdp = (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                   f"m=audio {free_port()} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
            # the provider's call to the registered user (the DID in To), relayed by Kamailio over TLS to the node
            msg = (f"INVITE sip:trunk1@127.0.0.1:{kam.port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{uuid.uuid4().hex};rport\r\nMax-Forwards: 70\r\n"
                   f"From: <sip:+4930999@provider.test>;tag=p1\r\nTo: <sip:4001@provider.test>\r\n"
                   f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.1:{me}>\r\n"
                   f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
            s.sendto(msg.encode(), ("127.0.0.1", kam.port))
            wait_for(lambda: nt.call(lambda: nt.node.trunks.stats["provider"]["calls"]) == 1, "the call at the node")
            wait_for(lambda: not nt.call(lambda: len(nt.node.calls.calls)), "the call to end")
            nt.call(lambda: nt.node.records.flush(10))
        (cdr,) = RecordStore(f"sqlite:///{tmp_path}/cdr.db").cdrs()
        assert (cdr["called"], cdr["queue"], cdr["outcome"]) == ("4001", "q1", "overflowed")
        assert nt.call(lambda: nt.node.endpoint.connector.stats["opened"]) == 1
        assert nt.call(lambda: [c.proto for c in nt.node.endpoint.connections]) == ["tls"]
    finally:
        nt.stop()
        kam.stop()


def test_a_reload_that_changes_how_the_carrier_is_checked_drops_the_connection_checked_the_old_way(tmp_path, pki):
    ca, cert, _ = pki
    tls_port = free_port()
    kam = TlsCarrier(tmp_path, free_port(), [tls_port], cert.cert, cert.key)
    kam.start()
    path = tmp_path / "node.yaml"
    port, http = free_port(), free_port()

    def write(tls: str) -> None:
        path.write_text(node_yaml(tmp_path, port, http, f"""\
trunks:
  - name: carrier
    transport: tls
    tls: {{{tls}}}
    register: {{registrar: "sip:127.0.0.1:{tls_port}", username: trunk1, password: S3cret-Trunk,
               retry: 200ms, retry_max: 1s}}
"""))
    write(f'ca_file: "{ca.pem}", server_name: carrier.test')
    cfg = load_config(path)
    nt = NodeThread(lambda loop: Node(options_from_config(cfg), cfg, loop, credentials_from_config(cfg)))
    nt.start()
    connector = nt.call(lambda: nt.node.endpoint.connector)
    try:
        wait_for(lambda: nt.call(lambda: nt.node.trunks.registrations["carrier"].state) == "registered", "registered")
        # now pinned to a certificate the carrier does not have: the open connection goes, and no new one is taken
        write('pin_sha256: ["' + "CD:" * 31 + 'CD"]')
        assert nt.call(lambda: nt.node.reload(str(path)))["changes"]["trunks"] == ["carrier"]
        wait_for(lambda: nt.call(lambda: connector.stats["failed"]) >= 2, "the new check refusing the carrier")
        assert nt.call(lambda: len(nt.node.endpoint.connections)) == 0
        assert nt.call(lambda: nt.node.trunks.registrations["carrier"].state) != "registered"
        # pinned to the carrier's own certificate: taken again, on a new connection
        write(f'pin_sha256: ["{cert.sha256}"]')
        assert nt.call(lambda: nt.node.reload(str(path)))["ok"]
        wait_for(lambda: nt.call(lambda: nt.node.trunks.registrations["carrier"].state) == "registered",
                 "registered with the pin")
        assert nt.call(lambda: connector.stats["opened"]) == 2
    finally:
        nt.stop()
        kam.stop()
