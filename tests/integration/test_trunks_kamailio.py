"""Trunks against Kamailio, the provider: a trunk registers with digest (MD5 over UDP, SHA-256 over TCP),
refreshes before expiry, registers again after Kamailio restarts (losing its registrations), and takes requests
and calls on that registration (routed by the DID in To); a trunk pinged with OPTIONS goes down when the peer
stops answering and up when it answers again, as /metrics shows.
Waits are for conditions; their deadlines only bound a hang."""

from __future__ import annotations

import socket
import time
import urllib.request
import uuid

import pytest

from softswitch.node import Node, credentials_from_config, options_from_config
from softswitch.records import RecordStore
from softswitch.settings import parse_config, softphone_hash
from tests.conftest import NodeThread, free_port
from tools.kamailioserver import Kamailio, kamailio_binary, request

pytestmark = pytest.mark.skipif(kamailio_binary() is None, reason="kamailio missing: run tools/install-sysdeps.sh")

SP = softphone_hash("70001", "cc.test", "Phone-Pass1!")


def node_yaml(tmp_path, sip_port: int, http_port: int, trunks: str) -> str:
    return f"""\
server:
  sip: {{listen: [udp:127.0.0.1:{sip_port}, tcp:127.0.0.1:{sip_port}], domain: cc.test,
        security: {{rate: 5, burst: 5}}}}
  http: {{listen: 127.0.0.1:{http_port}}}
  media: {{anchor: false}}
  storage: {{cdr: "sqlite:///{tmp_path}/cdr.db"}}
employees:
  - {{account: acme_alice, name: Alice, password: Alice-Pass1!}}
agents:
  - {{id: "1001", account: acme_alice, softphone: "70001", softphone_password_hash: "{SP}", queues: [q1]}}
skill_queues:
  - {{name: q1}}
called_routes:
  - {{called: "4001", queue: q1}}
{trunks}"""


def node_config(tmp_path, sip_port: int, http_port: int, trunks: str):
    return parse_config(node_yaml(tmp_path, sip_port, http_port, trunks), str(tmp_path / "node.yaml"))


def start_node(cfg):
    nt = NodeThread(lambda loop: Node(options_from_config(cfg), cfg, loop, credentials_from_config(cfg)))
    nt.start()
    return nt


def wait_for(cond, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def metrics(http_port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as r:
        return r.read().decode()


def test_registration_over_tcp_with_sha256_digest_and_again_when_the_connection_drops(tmp_path):
    kam = Kamailio(tmp_path, free_port(), algorithm="SHA-256")
    kam.start()
    cfg = node_config(tmp_path, free_port(), free_port(), f"""\
trunks:
  - name: provider
    transport: tcp
    register: {{registrar: "sip:127.0.0.1:{kam.port}", username: trunk1, password: S3cret-Trunk}}
""")
    nt = start_node(cfg)
    try:
        reg = nt.call(lambda: nt.node.trunks.registrations["provider"])
        wait_for(lambda: nt.call(lambda: reg.state) == "registered", "registered over TCP")
        assert nt.call(lambda: reg.target.proto) == "tcp"
        assert nt.call(lambda: reg.machine.challenge["algorithm"]) == "SHA-256"
        (line,) = [line for line in kam.lines if "REGISTERED" in line]
        assert "REGISTERED sip:trunk1@127.0.0.1 contact=<sip:trunk1@127.0.0.1:" in line and "transport=tcp" in line
        status, text = request(kam.port, "trunk1")          # relayed to the node over TCP
        assert status == 200 and "Server: softswitch" in text
        # the provider restarts: its TCP connection closes, and the trunk registers again at once (over a new
        # connection, after back-offs while it is refused), not at the refresh half an hour away
        kam.restart()
        wait_for(lambda: kam.registered() >= 1, "a registration over a new connection")
        wait_for(lambda: nt.call(lambda: reg.state) == "registered", "registered again")
        assert nt.call(lambda: reg.machine.stats["ok"]) >= 2
    finally:
        nt.stop()
        kam.stop()


@pytest.fixture
def kamailio(tmp_path):
    k = Kamailio(tmp_path, free_port())
    k.start()
    yield k
    k.stop()


def test_trunk_registers_refreshes_and_registers_again_after_the_provider_restarts(tmp_path, kamailio):
    http = free_port()
    cfg = node_config(tmp_path, free_port(), http, f"""\
trunks:
  - name: provider
    register: {{registrar: "sip:127.0.0.1:{kamailio.port}", username: trunk1, password: S3cret-Trunk,
               expires: 10, retry: 200ms, retry_max: 1s}}
""")
    nt = start_node(cfg)
    try:
        reg = nt.call(lambda: nt.node.trunks.registrations["provider"])
        wait_for(lambda: kamailio.registered() >= 1, "the first registration")
        wait_for(lambda: nt.call(lambda: reg.state) == "registered", "the node to see it registered")
        assert nt.call(lambda: reg.machine.stats["ok"]) == 1
        # the provider now sends requests for the trunk's user to the node, which answers them itself
        status, text = request(kamailio.port, "trunk1")
        assert status == 200 and "Server: softswitch" in text
        # refreshed before the 10 s expire (at half of it), again through a digest challenge
        wait_for(lambda: kamailio.registered() >= 2, "a refresh", timeout=30)
        wait_for(lambda: nt.call(lambda: reg.machine.stats["ok"]) >= 2, "the refresh answered")
        # the provider restarts and forgets every registration: the next refresh registers again
        kamailio.restart()
        assert request(kamailio.port, "trunk1")[0] == 404
        wait_for(lambda: kamailio.registered() >= 1, "a registration at the restarted provider", timeout=30)
        wait_for(lambda: request(kamailio.port, "trunk1", timeout=1)[0] == 200, "requests reaching the node again")
        assert nt.call(lambda: reg.state) == "registered"
        assert 'softswitch_trunk_registered{trunk="provider"} 1.0' in metrics(http)
    finally:
        nt.stop()
    # the node unregisters as it stops (Expires: 0, answered with the credentials it holds)
    wait_for(lambda: request(kamailio.port, "trunk1", timeout=1)[0] == 404, "the binding removed at the provider")


def test_wrong_password_backs_off_and_metrics_count_the_failures(tmp_path, kamailio):
    http = free_port()
    cfg = node_config(tmp_path, free_port(), http, f"""\
trunks:
  - name: provider
    register: {{registrar: "sip:127.0.0.1:{kamailio.port}", username: trunk1, password: wrong,
               expires: 60, retry: 100ms, retry_max: 400ms}}
""")
    nt = start_node(cfg)
    try:
        reg = nt.call(lambda: nt.node.trunks.registrations["provider"])
        wait_for(lambda: nt.call(lambda: reg.machine.stats["failures"]) >= 3, "three failed rounds")
        assert nt.call(lambda: reg.machine.backoff) == 0.4 and kamailio.registered() == 0
        text = metrics(http)
        assert 'softswitch_trunk_registered{trunk="provider"} 0.0' in text
        assert 'softswitch_trunk_failures_total{kind="registration",trunk="provider"}' in text
    finally:
        nt.stop()


def test_options_down_when_the_peer_stops_answering_and_up_when_it_answers(tmp_path, kamailio):
    http = free_port()
    cfg = node_config(tmp_path, free_port(), http, f"""\
trunks:
  - name: carrier
    proxy: 127.0.0.1:{kamailio.port}
    options: {{interval: 200ms, threshold: 2, timeout: 300ms}}
""")
    nt = start_node(cfg)
    try:
        pinger = nt.call(lambda: nt.node.trunks.pingers["carrier"])
        state = lambda: nt.call(lambda: pinger.state)      # noqa: E731
        wait_for(lambda: state() == "up", "the first answered ping")
        kamailio.stop()
        wait_for(lambda: state() == "down", "down after two missed pings")
        assert not nt.call(lambda: nt.node.trunks.usable("carrier"))
        assert 'softswitch_trunk_up{trunk="carrier"} 0.0' in metrics(http)
        kamailio.start()
        wait_for(lambda: state() == "up", "up on the first answer")
        assert nt.call(lambda: nt.node.trunks.usable("carrier"))
        text = metrics(http)
        assert 'softswitch_trunk_up{trunk="carrier"} 1.0' in text
        changes = nt.call(lambda: [c.state for c in pinger.changes])
        assert changes == ["down", "up"]
    finally:
        nt.stop()


def test_a_call_on_the_registration_is_routed_by_the_did_in_to(tmp_path, kamailio):
    cfg = node_config(tmp_path, free_port(), free_port(), f"""\
trunks:
  - name: provider
    register: {{registrar: "sip:127.0.0.1:{kamailio.port}", username: trunk1, password: S3cret-Trunk}}
""")
    nt = start_node(cfg)
    try:
        wait_for(lambda: kamailio.registered() >= 1, "the registration")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            me = s.getsockname()[1]
            sdp = (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                   f"m=audio {free_port()} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
            # the provider's call to the registered user, the DID in To, as carriers send on a registration
            msg = (f"INVITE sip:trunk1@127.0.0.1:{kamailio.port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{uuid.uuid4().hex};rport\r\nMax-Forwards: 70\r\n"
                   f"From: <sip:+4930999@provider.test>;tag=p1\r\nTo: <sip:4001@provider.test>\r\n"
                   f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.1:{me}>\r\n"
                   f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
            s.sendto(msg.encode(), ("127.0.0.1", kamailio.port))
            wait_for(lambda: nt.call(lambda: nt.node.trunks.stats["provider"]["calls"]) == 1, "the call at the node")
            # q1 has no agent signed in: the call is answered, queued, and overflows (hangs up) at once
            wait_for(lambda: not nt.call(lambda: len(nt.node.calls.calls)), "the call to end")
            nt.call(lambda: nt.node.records.flush(10))
        (cdr,) = RecordStore(f"sqlite:///{tmp_path}/cdr.db").cdrs()
        assert (cdr["called"], cdr["queue"], cdr["outcome"]) == ("4001", "q1", "overflowed")
        assert cdr["caller"] == "<sip:+4930999@provider.test>"
    finally:
        nt.stop()
