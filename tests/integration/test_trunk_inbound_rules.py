"""A trunk's own rules on its inbound calls, with real sockets: a trunk known only by its credentials is routed
like one trusted by address once its digest is proven; the SDP the node answers a trunk with lists only the
trunk's codecs (none of them offered: 488); a call to an agent's own number rings that agent (SIPp as the
carrier and as the agent's phone), with the caller's number from P-Asserted-Identity in the CDR."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid

from softswitch.records.store import RecordStore
from softswitch.sip.digest import make_authorization
from tests.conftest import free_port
from tests.integration.test_trunk_inbound_sipp import DATA
from tests.support.cc import ACCOUNTS, PASSWORDS, _node_thread, _rtp_lo, config_text
from tests.support.sipp import SIPP, run_sipp
from tools.agents_load import register_agents, sign_in_all


def node_with(tmp_path, trunk: str):
    def make_text():
        sip_port, http_port = free_port(), free_port()
        text = config_text(sip_port, http_port, str(tmp_path / "cc.db"), _rtp_lo(sip_port), wrap_up="0s")
        return text + "trunks:\n  - " + trunk + "\n", (sip_port, http_port)
    return _node_thread(tmp_path, make_text)


def offer(codecs: str) -> str:
    rtpmap = {"0": "PCMU/8000", "8": "PCMA/8000", "18": "G729/8000", "101": "telephone-event/8000"}
    return ("v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio 4000 RTP/AVP {codecs}\r\n" + "".join(f"a=rtpmap:{c} {rtpmap[c]}\r\n" for c in codecs.split())
            + "a=sendrecv\r\n")


def invite(s, port: int, number: str, *, auth: str | None = None, sdp: str = "") -> tuple[int, str, str]:
    """(status, whole final response, its Proxy-Authenticate); the final response is ACKed."""
    me = s.getsockname()[1]
    call_id, branch = uuid.uuid4().hex, f"z9hG4bK{uuid.uuid4().hex}"
    head = (f"sip:{number}@127.0.0.1:{port}", f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch={branch};rport\r\n"
            f"From: <sip:anonymous@anonymous.invalid>;tag=a1\r\nCall-ID: {call_id}\r\nMax-Forwards: 70\r\n")
    msg = (f"INVITE {head[0]} SIP/2.0\r\n{head[1]}To: <sip:{number}@cc.test>\r\nCSeq: 1 INVITE\r\n"
           f"Contact: <sip:c@127.0.0.1:{me}>\r\nP-Asserted-Identity: <sip:+4930123@carrier.test>\r\n"
           + (f"Proxy-Authorization: {auth}\r\n" if auth else "")
           + ("Content-Type: application/sdp\r\n" if sdp else "") + f"Content-Length: {len(sdp)}\r\n\r\n" + sdp)
    s.sendto(msg.encode(), ("127.0.0.1", port))
    while True:
        text = s.recv(65535).decode()
        if not text.startswith("SIP/2.0 "):
            continue                  # the switch's BYE of a call already over
        status = int(text.split(" ", 2)[1])
        if status >= 200:
            break
    challenge = next((line.split(": ", 1)[1] for line in text.split("\r\n")
                      if line.startswith("Proxy-Authenticate: ")), "")
    to = next(line for line in text.split("\r\n") if line.startswith(("To: ", "t: ")))
    ack = f"ACK {head[0]} SIP/2.0\r\n{head[1]}{to}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    s.sendto(ack.encode(), ("127.0.0.1", port))
    return status, text, challenge


def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    return s


def test_a_trunk_known_only_by_its_credentials_is_routed_by_its_rules_after_the_challenge(tmp_path):
    trunk = ('{name: sbc, reach: [acd], numbers: {country_code: "49", strip: "030555"},\n'
             '     inbound_auth: {username: sbc-1, password: Trunk-Secret-1}}')
    with node_with(tmp_path, trunk) as (nt, (port, http)), udp() as s:
        # the DID as the carrier sends it is no called route: challenged, as anyone's call to it would be
        status, _, challenge = invite(s, port, "0305554001")
        assert status == 407
        good = make_authorization(challenge, "INVITE", f"sip:0305554001@127.0.0.1:{port}", "sbc-1",
                                  "Trunk-Secret-1")
        status, text, _ = invite(s, port, "0305554001", auth=good)
        assert status == 200, text.split("\r\n")[0]      # 030555 stripped: 4001, the support queue
        assert nt.call(lambda: dict(nt.node.trunks.stats["sbc"])) == {"calls": 1, "refused": 0}
        # its caps count it (it came from no trunk's address, so the endpoint's filter could not)
        assert nt.call(lambda: nt.node.trunks.caps["sbc"].stats["admitted"]) == 1
        status, _, challenge = invite(s, port, "0305554001")
        bad = make_authorization(challenge, "INVITE", f"sip:0305554001@127.0.0.1:{port}", "sbc-1", "guess")
        assert invite(s, port, "0305554001", auth=bad)[0] == 403
        # a wrong trunk password counts against its source, as an agent's does (the guard bans a guesser)
        assert nt.call(lambda: len(nt.node.guard.sources["127.0.0.1"].failures)) == 1
        nt.call(lambda: nt.node.records.flush(10))
    # no agent is signed in: the queue's overflow ends it, but it was the trunk's call, routed by its rules
    rows = RecordStore(f"sqlite:///{tmp_path}/cc.db").cdrs()
    assert [(r["called"], r["queue"], r["caller"]) for r in rows] == [("4001", "support", "<sip:+4930123@carrier.test>")]


def test_the_sdp_answered_to_a_trunk_lists_only_its_codecs_and_none_of_them_gets_488(tmp_path):
    trunk = "{name: carrier, addresses: [127.0.0.1], reach: [acd], codecs: [PCMA, PCMU]}"
    with node_with(tmp_path, trunk) as (nt, (port, http)), udp() as s:
        status, text, _ = invite(s, port, "4001", sdp=offer("18 101"))
        assert status == 488 and "PCMA, PCMU" in text
        status, text, _ = invite(s, port, "4001", sdp=offer("0 8 101"))
        assert status == 200
        body = text.split("\r\n\r\n", 1)[1]
        m = next(line for line in body.split("\r\n") if line.startswith("m=audio"))
        assert m.split(" ")[3:] == ["8"], body                 # the trunk's first choice; no telephone-event
        assert "telephone-event" not in body and "PCMU" not in body
        assert nt.call(lambda: nt.node.trunks.stats["carrier"]["refused"]) == 1


def test_a_trunks_call_to_an_agents_own_number_rings_that_agent(tmp_path):
    trunk = "{name: carrier, addresses: [127.0.0.1], reach: [all]}"
    with node_with(tmp_path, trunk) as (nt, (port, http)):
        uas_port = free_port()
        uas = subprocess.Popen([SIPP, "-sf", f"{DATA}/agent_hangs_up.xml", "-i", "127.0.0.1", "-p", str(uas_port),
                                "-nostdin", "-trace_err"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            assert register_agents(port, [("70001", PASSWORDS["70001"])], "cc.test", uas_port) == 1
            assert sign_in_all(http, "acme_sam", ACCOUNTS["acme_sam"], ["1001"]) == 1
            res = run_sipp(f"{DATA}/carrier_call.xml", port, calls=2, rate=1, workdir=str(tmp_path),
                           extra=["-s", "70001", "-l", "1"], timeout=60)
            assert (res.successful, res.failed) == (2, 0), res.stderr[-400:]
            with udp() as s:      # agent 1002's phone is not registered: not reachable
                assert invite(s, port, "70002", sdp=offer("0 101"))[0] == 480
            deadline = time.monotonic() + 30
            while nt.call(lambda: len(nt.node.calls.calls)) and time.monotonic() < deadline:
                time.sleep(0.1)
            nt.call(lambda: nt.node.records.flush(10))
            assert nt.call(lambda: nt.node.center.acd.agents["1001"].state) == "idle"
        finally:
            uas.kill()
    rows = RecordStore(f"sqlite:///{tmp_path}/cc.db").cdrs()
    assert len(rows) == 2
    assert {(r["called"], r["agent_id"]) for r in rows} == {("70001", "1001")}
    assert sorted(r["caller"] for r in rows) == ['"Customer 1" <sip:+49301231@carrier.test>',
                                                  '"Customer 2" <sip:+49301232@carrier.test>']
    assert all(r["connected_at"] for r in rows) and {r["outcome"] for r in rows} == {"answered"}
