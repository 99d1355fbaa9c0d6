"""The endpoint over real sockets: UDP and TCP, received/rport, retransmissions, keepalives, SIPp pings."""

from __future__ import annotations


from softswitch.sip.parser import parse_message
from tests.conftest import running_node
from tests.support.nodes import ACCOUNTS, REALM, authorize, registrar_node
from tests.support.sipclient import TcpClient, UdpClient, options_request
from tests.support.sipp import run_sipp


def test_options_over_udp_gets_200_with_capabilities(sip_node):
    c = UdpClient(("127.0.0.1", sip_node.port))
    c.send(options_request(sip_node.port))
    r = c.recv()
    assert r.status == 200
    assert "OPTIONS" in r.values("Allow") and r.get("Accept") == "application/sdp"
    assert "path" in r.values("Supported")
    via = r.top_via
    assert via.param("rport") == str(c.addr[1]) and via.param("received") == "127.0.0.1"


def test_retransmission_gets_identical_response_and_no_new_transaction(sip_node):
    c = UdpClient(("127.0.0.1", sip_node.port))
    req = options_request(sip_node.port, call_id="retx", branch="z9hG4bK-retx")
    c.send(req)
    first = c.recv()
    c.send(req)
    second = c.recv()
    assert first.serialize() == second.serialize()
    assert sip_node.call(lambda: sip_node.node.endpoint.layer.stats["server_created"]) == 1


def test_rfc3261_response_routing_without_rport():
    """force_rport off: the answer goes to `received` and the Via port, as RFC 3261 s. 18.2.2 says."""
    with running_node(force_rport=False) as nt:
        listener = UdpClient(("127.0.0.1", nt.port), bind=("127.0.0.2", 0))
        sender = UdpClient(("127.0.0.1", nt.port))
        req = options_request(nt.port, via_host="192.0.2.9", via_port=listener.addr[1]).replace(b";rport", b"")
        sender.send(req)
        r = listener.recv()
        assert r is None  # goes to received=127.0.0.1 (the sender's address), not to 127.0.0.2
        r = sender.recv(0.5)
        assert r is None  # and not to the sender's ephemeral port either: to the Via port on 127.0.0.1
        via_listener = UdpClient(("127.0.0.1", nt.port))
        req2 = options_request(nt.port, call_id="x2", branch="z9hG4bK-x2", via_host="192.0.2.9",
                               via_port=via_listener.addr[1]).replace(b";rport", b"")
        via_listener.send(req2)
        r = via_listener.recv()
        assert r.status == 200 and r.top_via.param("received") == "127.0.0.1" and r.top_via.param("rport") is None


def test_tcp_options_split_writes_and_keepalive(sip_node):
    t = TcpClient(("127.0.0.1", sip_node.port))
    for i, chunk in enumerate((1, 7, None)):
        t.send(options_request(sip_node.port, call_id=f"tcp{i}", branch=f"z9hG4bK-tcp{i}", transport="TCP"),
               chunk=chunk)
        r = t.recv()
        assert r.status == 200 and r.call_id == f"tcp{i}"
    t.sock.sendall(b"\r\n\r\n")
    assert t.sock.recv(10) == b"\r\n"
    assert sip_node.call(lambda: len(sip_node.node.endpoint.layer.server)) == 0  # reliable: nothing lingers


def test_tcp_partial_message_is_closed_after_timeout(sip_node):
    t = TcpClient(("127.0.0.1", sip_node.port))
    t.send(options_request(sip_node.port, transport="TCP")[:50])
    assert t.closed_by_peer(timeout=20.0)      # after the node's 1 s partial timeout (the 20 s bound a hang)


def test_garbage_gets_400_or_silence_and_server_lives(sip_node):
    c = UdpClient(("127.0.0.1", sip_node.port))
    for junk in (b"\x00" * 100, b"HELLO\r\n\r\n", b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKj\r\n\r\n",
                 bytes(range(256))):
        c.send(junk)
    answers = []
    while (raw := c.recv_raw(0.3)) is not None:
        answers.append(raw)
    # only the request with a Via can be answered; it lacks Call-ID, so the answer carries what there was
    assert len(answers) == 1 and answers[0].startswith(b"SIP/2.0 400 ")
    assert b"branch=z9hG4bKj" in answers[0]
    c.send(options_request(sip_node.port, call_id="alive", branch="z9hG4bK-alive"))
    assert c.recv().status == 200


def test_sipp_options_pings(sip_node, tmp_path):
    res = run_sipp("options.xml", sip_node.port, calls=300, rate=300, workdir=str(tmp_path))
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.successful == 300 and res.failed == 0


def test_register_retransmission_gets_the_same_answer_without_a_transaction():
    """REGISTER is answered without a transaction object; its retransmissions still get the same answer for
    Timer J, and the registration is done once."""
    with registrar_node() as nt:
        c = UdpClient(("127.0.0.1", nt.port))
        first = (f"REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-rr1;rport\r\n"
                 f"From: <sip:70001@{REALM}>;tag=f1\r\nTo: <sip:70001@{REALM}>\r\nCall-ID: rr-1@test\r\n"
                 f"CSeq: 1 REGISTER\r\nContact: <sip:70001@127.0.0.1:6000>\r\nMax-Forwards: 70\r\n"
                 f"Expires: 600\r\nContent-Length: 0\r\n\r\n").encode()
        c.send(first)
        challenge = c.recv()
        assert challenge.status == 401
        second = authorize(first, challenge, "70001", ACCOUNTS["70001"]).replace(b"z9hG4bK-rr1", b"z9hG4bK-rr2")
        c.send(second)
        ok = c.recv()
        c.send(second)
        again = c.recv()
        assert ok.status == 200 and again.serialize() == ok.serialize()
        stats = nt.call(lambda: (nt.node.registrar.stats["registered"], dict(nt.node.endpoint.layer.stats),
                                 len(nt.node.endpoint.layer.server), len(nt.node.endpoint.answers)))
        assert stats[0] == 1
        assert stats[1]["server_created"] == 1 and stats[1]["server_resent"] == 1
        assert stats[2] == 0 and stats[3] == 1
