"""Dialog behaviour of the switch toward customers: session timers end dead calls, hold re-INVITEs,
requests for dialogs that do not exist."""

from __future__ import annotations

import time

from tests.support.cc import agent_on_break, cc_node, wait_for
from tests.support.sipclient import UdpClient

SDP = ("v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na={dir}\r\n")


def invite(port: int, client: UdpClient, call_id: str, extra: str = "", cseq: int = 1, to_tag: str = "",
           direction: str = "sendrecv") -> bytes:
    body = SDP.format(dir=direction)
    to = f"<sip:4001@cc.test>" + (f";tag={to_tag}" if to_tag else "")
    return (f"INVITE sip:4001@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{client.addr[1]};"
            f"branch=z9hG4bK-{call_id}-{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:cust@x.test>;tag=ct\r\n"
            f"To: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\n"
            f"Contact: <sip:cust@127.0.0.1:{client.addr[1]}>\r\n{extra}Content-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def ack(port: int, client: UdpClient, call_id: str, to_tag: str, cseq: int = 1) -> bytes:
    return (f"ACK sip:4001@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{client.addr[1]};"
            f"branch=z9hG4bK-ack-{call_id}-{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:cust@x.test>;tag=ct\r\n"
            f"To: <sip:4001@cc.test>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} ACK\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def answered(client: UdpClient):
    for _ in range(10):
        m = client.recv(3)
        if m is not None and getattr(m, "status", 0) >= 200:
            return m
    raise AssertionError("no final response")


def setup_call(nt, port, client, call_id, extra=""):
    if not nt.call(lambda: nt.node.center.acd.agents["1001"].registered):
        agent_on_break(port, nt.node.api_port)
    client.send(invite(port, client, call_id, extra))
    ok = answered(client)
    assert ok.status == 200
    tag = ok.to.tag
    client.send(ack(port, client, call_id, tag))
    return ok, tag


def test_dead_call_ends_by_session_timer(tmp_path):
    with cc_node(tmp_path) as (nt, port, http):
        nt.call(lambda: setattr(nt.node.calls, "session_expires", 3))
        client = UdpClient(("127.0.0.1", port))
        if not nt.call(lambda: nt.node.center.acd.agents["1001"].registered):
            agent_on_break(port, nt.node.api_port)
        t0 = time.monotonic()                   # before the INVITE: the session cannot start earlier
        ok, tag = setup_call(nt, port, client, "st-1", "Supported: timer\r\nSession-Expires: 90\r\n")
        assert ok.get("Session-Expires") == "3;refresher=uac" and ok.get("Require") == "timer"
        bye = None
        while time.monotonic() - t0 < 30 and bye is None:       # 30 s bounds a hang; the 90 s asked is not used
            m = client.recv(0.5)
            if m is not None and getattr(m, "method", "") == "BYE":
                bye = m
        # the refresh never came: BYE before the session expires (RFC 4028: at 3 - min(32, 3 / 3) = 2 s)
        assert bye is not None and time.monotonic() - t0 >= 2 - 0.01
        assert wait_for(lambda: nt.call(lambda: len(nt.node.calls.calls)) == 0, 10)
        client.close()


def test_switch_refreshes_when_the_phone_cannot(tmp_path):
    with cc_node(tmp_path) as (nt, port, http):
        nt.call(lambda: setattr(nt.node.calls, "session_expires", 2))
        client = UdpClient(("127.0.0.1", port))
        ok, tag = setup_call(nt, port, client, "st-2")
        assert ok.get("Session-Expires") == "2;refresher=uas"
        reinvite = None
        deadline = time.monotonic() + 30                        # bounds a hang
        while reinvite is None and time.monotonic() < deadline:
            m = client.recv(0.5)
            if m is not None and getattr(m, "method", "") == "INVITE":
                reinvite = m
        assert reinvite is not None and reinvite.to.tag == "ct" and reinvite.body
        client.close()


def test_hold_reinvite_is_answered_with_the_mirrored_direction(tmp_path):
    with cc_node(tmp_path) as (nt, port, http):
        client = UdpClient(("127.0.0.1", port))
        ok, tag = setup_call(nt, port, client, "hold-1")
        assert b"a=sendrecv" in ok.body
        client.send(invite(port, client, "hold-1", cseq=2, to_tag=tag, direction="sendonly"))
        resp = answered(client)
        assert resp.status == 200 and b"a=recvonly" in resp.body
        client.send(ack(port, client, "hold-1", tag, cseq=2))
        client.send(invite(port, client, "hold-1", cseq=3, to_tag=tag, direction="sendrecv"))
        resp = answered(client)
        assert resp.status == 200 and b"a=sendrecv" in resp.body
        client.close()


def test_requests_for_unknown_dialogs_get_481(tmp_path):
    with cc_node(tmp_path) as (nt, port, http):
        client = UdpClient(("127.0.0.1", port))
        for method in ("BYE", "UPDATE", "INFO"):
            client.send((f"{method} sip:4001@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:"
                         f"{client.addr[1]};branch=z9hG4bK-u{method};rport\r\nMax-Forwards: 70\r\n"
                         f"From: <sip:c@x.test>;tag=a\r\nTo: <sip:4001@cc.test>;tag=nope\r\nCall-ID: none-{method}\r\n"
                         f"CSeq: 5 {method}\r\nContent-Length: 0\r\n\r\n").encode())
            assert client.recv(2).status == 481
        client.send(invite(port, client, "nodlg", cseq=2, to_tag="nope"))
        assert answered(client).status == 481
        client.close()


def test_reconciler_leaves_an_offer_still_being_set_up_alone(tmp_path):
    """Setting up an anchored offer awaits (a media stream; ICE for a WebRTC phone: long on a busy host):
    meanwhile the agent is ringing with no leg yet, which the reconciler must not take for a stuck call."""
    import asyncio
    with cc_node(tmp_path) as (nt, port, http):
        api = agent_on_break(port, http)
        media = nt.node.calls.media
        release = nt.call(asyncio.Event)
        real = media.offer_agent

        async def slow_offer(leg, offer):
            await release.wait()
            return await real(leg, offer)
        media.offer_agent = slow_offer
        client = UdpClient(("127.0.0.1", port))
        try:
            client.send(invite(port, client, "prep-1"))
            assert answered(client).status == 200            # queued
            api.call("POST", "/api/agents/me/state", {"state": "idle"}, expect=200)
            assert wait_for(lambda: api.state()["state"] == "ringing", 10)
            assert nt.call(nt.node.center.reconcile) == 0
            assert api.state()["state"] == "ringing"
            nt.call(release.set)
            assert wait_for(lambda: nt.call(lambda: "1001" in nt.node.calls.live_agent_calls()
                                            and not nt.node.calls.preparing), 10)
        finally:
            media.offer_agent = real
            client.close()
