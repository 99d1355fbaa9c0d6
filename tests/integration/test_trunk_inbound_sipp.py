"""SIPp as the carrier: calls delivered over a trunk trusted by address reach the queue's SIPp agents, routed
by the DID after the trunk's number handling, with the caller's number and name from P-Asserted-Identity in the
CDRs; the same INVITE from an address that is no trunk's is challenged like any unknown number."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid

from softswitch.records import RecordStore
from softswitch.sip.digest import make_authorization
from tests.conftest import free_port
from tests.support.cc import ACCOUNTS, PASSWORDS, _node_thread, _rtp_lo, config_text
from tests.support.sipp import SIPP, run_sipp
from tools.agents_load import register_agents, sign_in_all

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "sipp")


def trunk_node(tmp_path, addresses: str):
    def make_text():
        sip_port, http_port = free_port(), free_port()
        text = config_text(sip_port, http_port, str(tmp_path / "cc.db"), _rtp_lo(sip_port), wrap_up="0s")
        text += (f"trunks:\n  - {{name: carrier, addresses: [{addresses}], reach: [acd, ivr],\n"
                 "     numbers: {country_code: \"49\", strip: \"030555\"}, calls_per_second: 200, max_calls: 500}\n")
        return text, (sip_port, http_port)
    return _node_thread(tmp_path, make_text)


def test_carrier_calls_reach_agents_with_the_callers_number_from_pai(tmp_path):
    calls = 30
    with trunk_node(tmp_path, "127.0.0.1") as (nt, (port, http)):
        uas_port = free_port()
        uas = subprocess.Popen([SIPP, "-sf", f"{DATA}/agent_hangs_up.xml", "-i", "127.0.0.1", "-p", str(uas_port),
                                "-nostdin", "-trace_err"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            assert register_agents(port, [(u, PASSWORDS[u]) for u in ("70001", "70002")], "cc.test", uas_port) == 2
            assert sign_in_all(http, "acme_sam", ACCOUNTS["acme_sam"], ["1001", "1002"]) == 2
            # the DID as the carrier sends it: 0305554001, the trunk strips 030555, 4001 is the support queue
            res = run_sipp(f"{DATA}/carrier_call.xml", port, calls=calls, rate=10, workdir=str(tmp_path),
                           extra=["-s", "0305554001", "-l", "4"], timeout=90)
            assert (res.successful, res.failed) == (calls, 0), res.stderr[-400:]
            assert nt.call(lambda: dict(nt.node.trunks.stats["carrier"])) == {"calls": calls, "refused": 0}
            deadline = time.monotonic() + 30        # calls end just after SIPp's last BYE is answered
            while nt.call(lambda: len(nt.node.calls.calls)) and time.monotonic() < deadline:
                time.sleep(0.1)
            nt.call(lambda: nt.node.records.flush(10))
            # the trunk's count of calls at once follows the calls that ended (checked every second)
            deadline = time.monotonic() + 30
            while nt.call(lambda: len(nt.node.trunks.caps["carrier"].active)) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert nt.call(lambda: nt.node.trunks.caps["carrier"].stats["admitted"]) == calls
            assert nt.call(lambda: len(nt.node.trunks.caps["carrier"].active)) == 0
        finally:
            uas.kill()
    rows = RecordStore(f"sqlite:///{tmp_path}/cc.db").cdrs()
    assert len(rows) == calls
    assert {r["called"] for r in rows} == {"4001"} and {r["queue"] for r in rows} == {"support"}
    assert {r["outcome"] for r in rows} == {"answered"}
    assert sorted(r["caller"] for r in rows) == sorted(
        f'"Customer {i}" <sip:+4930123{i}@carrier.test>' for i in range(1, calls + 1))


def invite(port: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
        me = s.getsockname()[1]
        msg = (f"INVITE sip:0305554001@127.0.0.1:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{uuid.uuid4().hex};rport\r\nMax-Forwards: 70\r\n"
               "From: <sip:anonymous@anonymous.invalid>;tag=a1\r\nTo: <sip:0305554001@cc.test>\r\n"
               f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.1:{me}>\r\n"
               "P-Asserted-Identity: <sip:+4930123@carrier.test>\r\nContent-Length: 0\r\n\r\n")
        s.sendto(msg.encode(), ("127.0.0.1", port))
        while True:
            status = int(s.recv(65535).decode().split(" ", 2)[1])
            if status >= 200:
                return status


def test_the_same_invite_from_an_untrusted_address_is_challenged(tmp_path):
    with trunk_node(tmp_path, "192.0.2.0/24") as (nt, (port, http)):
        assert invite(port) == 407
        assert nt.call(lambda: dict(nt.node.trunks.stats["carrier"])) == {"calls": 0, "refused": 0}


def send_invite(s, port: int, number: str, auth: str | None = None) -> tuple[int, str, str]:
    me = s.getsockname()[1]
    msg = (f"INVITE sip:{number}@127.0.0.1:{port} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{uuid.uuid4().hex};rport\r\nMax-Forwards: 70\r\n"
           f"From: <sip:+4930123@carrier.test>;tag=a1\r\nTo: <sip:{number}@cc.test>\r\n"
           f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.1:{me}>\r\n"
           + (f"Proxy-Authorization: {auth}\r\n" if auth else "") + "Content-Length: 0\r\n\r\n")
    s.sendto(msg.encode(), ("127.0.0.1", port))
    while True:
        text = s.recv(65535).decode()
        status = int(text.split(" ", 2)[1])
        if status >= 200:
            challenge = next((line.split(": ", 1)[1] for line in text.split("\r\n")
                              if line.startswith("Proxy-Authenticate: ")), "")
            return status, text.split("\r\n")[0], challenge


def test_a_trunk_with_inbound_auth_is_challenged_with_its_own_credentials(tmp_path):
    def make_text():
        sip_port, http_port = free_port(), free_port()
        text = config_text(sip_port, http_port, str(tmp_path / "cc.db"), _rtp_lo(sip_port))
        text += ("trunks:\n  - {name: carrier, addresses: [127.0.0.1], reach: [acd],\n"
                 "     inbound_auth: {username: carrier-a, password: Trunk-Secret-1}}\n")
        return text, (sip_port, http_port)
    with _node_thread(tmp_path, make_text) as (nt, (port, http)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(5)
            status, _, challenge = send_invite(s, port, "70001")
            assert status == 407 and 'realm="cc.test"' in challenge
            good = make_authorization(challenge, "INVITE", f"sip:70001@127.0.0.1:{port}", "carrier-a",
                                      "Trunk-Secret-1")
            # past the challenge, the trunk's own rules answer: it may reach the ACD, not an agent's number
            assert send_invite(s, port, "70001", good)[1] == "SIP/2.0 403 Trunk may not reach agents"
            status, _, challenge = send_invite(s, port, "70001")
            bad = make_authorization(challenge, "INVITE", f"sip:70001@127.0.0.1:{port}", "carrier-a", "guess")
            assert send_invite(s, port, "70001", bad)[1] == "SIP/2.0 403 Forbidden"
        assert nt.call(lambda: nt.node.trunks.stats["carrier"]["refused"]) == 1
