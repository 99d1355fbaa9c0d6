"""SIP over WebSocket (RFC 7118) with a real aiohttp WebSocket client against a real node."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
import uuid

import aiohttp
import pytest

from softswitch.sip.message import Response, make_response
from softswitch.sip.parser import parse_message
from softswitch.transport.ws import listen_ws
from tests.support.nodes import ACCOUNTS, REALM, authorize, registrar_node

INVALID = "df7jal23ls0d.invalid"       # what browser stacks put in Via / Contact (RFC 7118 s. 5.2)


@pytest.fixture(scope="module")
def ws_node():
    with registrar_node() as nt:
        srv = nt.call(listen_ws, nt.loop, nt.node.endpoint, "127.0.0.1", 0)
        nt.ws_url = f"ws://127.0.0.1:{srv.port}/"
        try:
            yield nt
        finally:
            nt.call(srv.stop)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def options(call_id: str | None = None, cseq: int = 1) -> bytes:
    call_id = call_id or uuid.uuid4().hex
    return (f"OPTIONS sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/WS {INVALID};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:70001@{REALM}>;tag=ws1\r\nTo: <sip:{REALM}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} OPTIONS\r\n\r\n").encode()       # no Content-Length: fine over WS


def register(user: str, cseq: int = 1, call_id: str = "ws-reg") -> bytes:
    return (f"REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/WS {INVALID};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{user}@{REALM}>;tag=r{cseq}\r\nTo: <sip:{user}@{REALM}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:{user}@{INVALID};transport=ws>;expires=300\r\nContent-Length: 0\r\n\r\n").encode()


async def receive(ws, timeout: float = 3.0):
    msg = await asyncio.wait_for(ws.receive(), timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return parse_message(msg.data.encode())


async def exchange(ws, data: bytes) -> Response:
    await ws.send_str(data.decode())
    resp = await receive(ws)
    assert isinstance(resp, Response)
    return resp


def ws_conns(nt):
    return nt.call(lambda: sorted((c.proto, c.peer) for c in nt.node.endpoint.connections if c.proto == "ws"))


def test_options_over_ws_is_answered_with_ws_via_and_received(ws_node):
    async def go():
        async with aiohttp.ClientSession() as s, s.ws_connect(ws_node.ws_url, protocols=("sip",)) as ws:
            assert ws.protocol == "sip"                    # Sec-WebSocket-Protocol: sip negotiated
            lhost, lport = ws.get_extra_info("sockname")[:2]
            resp = await exchange(ws, options())
            assert resp.status == 200
            via = resp.get("Via")
            assert via.startswith(f"SIP/2.0/WS {INVALID};")
            assert f"received={lhost}" in via and f"rport={lport}" in via
            assert ("ws", (lhost, lport)) in ws_conns(ws_node)
            # a binary frame is a SIP message too, and the "/ws" path works as well
        async with aiohttp.ClientSession() as s, s.ws_connect(ws_node.ws_url + "ws", protocols=("sip",)) as ws:
            await ws.send_bytes(options())
            assert (await receive(ws)).status == 200
    run(go())


def test_register_with_digest_over_ws_binds_a_ws_source(ws_node):
    async def go():
        async with aiohttp.ClientSession() as s, s.ws_connect(ws_node.ws_url, protocols=("sip",)) as ws:
            lhost, lport = ws.get_extra_info("sockname")[:2]
            raw = register("70001")
            challenge = await exchange(ws, raw)
            assert challenge.status == 401
            ok = await exchange(ws, authorize(raw, challenge, "70001", ACCOUNTS["70001"]))
            assert ok.status == 200
            assert "transport=ws" in ok.get("Contact")
            bindings = ws_node.call(ws_node.node.location.lookup, f"sip:70001@{REALM}", time.time())
            assert [b.source for b in bindings] == [("ws", lhost, lport)]
            # what the B2BUA would use to reach this phone: the same WebSocket
            target = ws_node.call(ws_node.node.calls.binding_target, bindings[0])
            assert target.proto == "ws" and target.conn is not None and target.conn.peer == (lhost, lport)
    run(go())


def test_handshake_without_sip_subprotocol_is_refused(ws_node):
    async def go():
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await s.ws_connect(ws_node.ws_url)
            assert err.value.status == 400
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await s.ws_connect(ws_node.ws_url, protocols=("chat", "xmpp"))
            assert err.value.status == 400
            async with s.get(ws_node.ws_url) as r:          # plain HTTP: not a WebSocket upgrade
                assert r.status == 426 and r.headers["Upgrade"] == "websocket"
    run(go())


def test_garbage_gets_400_and_the_connection_stays_usable(ws_node):
    async def go():
        async with aiohttp.ClientSession() as s, s.ws_connect(ws_node.ws_url, protocols=("sip",)) as ws:
            await ws.send_str("\r\n")                           # keepalive: ignored
            await ws.send_str("\r\n\r\n")                       # double-CRLF ping: CRLF pong
            pong = await asyncio.wait_for(ws.receive(), 3)
            assert pong.data == "\r\n"
            await ws.send_str("hello, this is not SIP at all\r\n\r\n")      # nothing to copy: no answer
            bad = options().replace(b"Max-Forwards: 70", b"this header line has no colon")
            await ws.send_str(bad.decode())
            resp = await asyncio.wait_for(ws.receive(), 3)
            assert resp.data.startswith("SIP/2.0 400 ")               # Via etc. copied (RFC 3261 s. 8.2.6.2)
            assert f"Via: SIP/2.0/WS {INVALID};" in resp.data
            assert (await exchange(ws, options())).status == 200
            assert not ws.closed
    run(go())


def test_too_large_message_closes_with_1009(ws_node):
    async def go():
        async with aiohttp.ClientSession() as s, s.ws_connect(ws_node.ws_url, protocols=("sip",)) as ws:
            big = options().replace(b"\r\n\r\n", b"\r\nX-Pad: " + b"a" * 70000 + b"\r\n\r\n")
            await ws.send_bytes(big)
            msg = await asyncio.wait_for(ws.receive(), 3)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1009
    run(go())


def test_closing_the_socket_removes_the_connection(ws_node):
    async def go():
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(ws_node.ws_url, protocols=("sip",))
            peer = ws.get_extra_info("sockname")[:2]
            assert (await exchange(ws, options())).status == 200
            assert ("ws", peer) in ws_conns(ws_node)
            await ws.close()
            for _ in range(100):
                if ("ws", peer) not in ws_conns(ws_node):
                    break
                await asyncio.sleep(0.02)
            assert ("ws", peer) not in ws_conns(ws_node)
            assert ws_node.call(ws_node.node.endpoint.find_connection, "ws", *peer) is None
    run(go())


def test_switch_sends_a_request_over_the_same_websocket(ws_node):
    nt = ws_node
    ep = nt.node.endpoint

    async def go():
        async with aiohttp.ClientSession() as s, s.ws_connect(nt.ws_url, protocols=("sip",)) as ws:
            host, port = ws.get_extra_info("sockname")[:2]
            assert (await exchange(ws, options())).status == 200       # the flow is known to the endpoint
            target = nt.call(lambda: ep.find_connection("ws", host, port).target)
            assert target.proto == "ws" and target.reliable
            branch = f"z9hG4bK-{uuid.uuid4().hex}"
            req = parse_message((
                f"OPTIONS sip:70001@{INVALID};transport=ws SIP/2.0\r\n"
                f"Via: SIP/2.0/WS 127.0.0.1:{nt.ws_url.split(':')[2].rstrip('/')};branch={branch};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:{REALM}>;tag=sw1\r\nTo: <sip:70001@{REALM}>\r\n"
                f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode())
            events = []
            nt.call(lambda: ep.send_request(req, target, lambda ev, tx, msg: events.append(msg)))
            got = await receive(ws)
            assert got.method == "OPTIONS" and got.top_via.branch == branch
            await ws.send_str(make_response(got, 200).serialize().decode())    # the phone answers
            for _ in range(100):
                if events:
                    break
                await asyncio.sleep(0.02)
            assert [m.status for m in events if isinstance(m, Response)] == [200]
    run(go())


def test_wss_with_a_certificate(tmp_path):
    cert, key = tmp_path / "ws.crt", tmp_path / "ws.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(str(cert), str(key))
    client_ctx = ssl.create_default_context(cafile=str(cert))
    with registrar_node() as nt:
        srv = nt.call(listen_ws, nt.loop, nt.node.endpoint, "127.0.0.1", 0, server_ctx)
        try:
            async def go():
                async with aiohttp.ClientSession() as s, \
                        s.ws_connect(f"wss://127.0.0.1:{srv.port}/", protocols=("sip",), ssl=client_ctx) as ws:
                    resp = await exchange(ws, options().replace(b"SIP/2.0/WS ", b"SIP/2.0/WSS "))
                    assert resp.status == 200 and resp.get("Via").startswith("SIP/2.0/WSS ")
                    assert nt.call(lambda: [c.proto for c in nt.node.endpoint.connections]) == ["wss"]
            run(go())
        finally:
            nt.call(srv.stop)
        assert not nt.node.endpoint.connections


def test_stopping_the_listener_closes_open_websockets_going_away():
    with registrar_node() as nt:
        srv = nt.call(listen_ws, nt.loop, nt.node.endpoint, "127.0.0.1", 0)

        async def shutdown():       # the order Node.stop uses: endpoint.stop() closes flows, then the servers
            for c in list(nt.node.endpoint.connections):
                c.close()
            srv.close()
            await srv.wait_closed()

        async def go():
            async with aiohttp.ClientSession() as s, \
                    s.ws_connect(f"ws://127.0.0.1:{srv.port}/", protocols=("sip",)) as ws:
                assert (await exchange(ws, options())).status == 200
                nt.call(shutdown)
                msg = await asyncio.wait_for(ws.receive(), 20)          # the bound is for a hang only
                assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001
            async with aiohttp.ClientSession() as s:
                with pytest.raises(aiohttp.ClientConnectionError):
                    await s.ws_connect(f"ws://127.0.0.1:{srv.port}/", protocols=("sip",))
        run(go())
        assert not nt.node.endpoint.connections
