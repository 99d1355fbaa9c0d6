"""Hostile chat peers over real sockets: an agent panel that floods is told and closed (1008), panels per agent
are capped before the WebSocket opens (429), invalid UTF-8, deep nesting and oversized frames are answered and
leave nothing behind, pings cost the budget like frames, and the chat settings reload (POST /api/admin/reload) changes the limits in place."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct

import aiohttp

from tests.conftest import free_port
from tests.integration.test_chat_node import _status, _until
from tests.support.cc import Api, ws_node
from tests.support.chat_site import chat_edits, ready_agent

SITE_PORT = free_port()
SITE = f"http://localhost:{SITE_PORT}"
LIMITS = "  agent_panels: 1\n  agent_rate: {messages: 5, burst: 5}\n  cut_off_after: 5\n"


def _edits():
    return chat_edits(SITE_PORT, LIMITS) + (("role: supervisor", "role: admin"),)


async def raw_ws(port: int, path: str, origin: str):
    """A WebSocket by hand, to send what a client library will not (a text frame that is not UTF-8)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_frames(reader) -> list[tuple[int, bytes]]:
    """Server frames up to and with its close frame (the timeout bounds a hang)."""
    out = []
    async with asyncio.timeout(10):
        while True:
            b0, b1 = await reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await reader.readexactly(8))[0]
            out.append((b0 & 0x0F, await reader.readexactly(n)))
            if b0 & 0x0F == 8:
                return out


def kpis(api: Api) -> dict:
    return api.call("GET", "/api/chat", expect=200)[1]


def test_hostile_chat_peers_and_reloaded_limits(tmp_path):
    with ws_node(tmp_path, _edits()) as (nt, sip_port, http_port, ws_port):
        alice = ready_agent(sip_port, http_port, "acme_alice", "70001")
        sam = Api(http_port)
        sam.login("acme_sam")
        ws_base = f"ws://127.0.0.1:{http_port}"
        panel_url = f"{ws_base}/api/chat/agent?token={alice.token}"
        visit = f"{ws_base}/chat/ws?queue=web"

        async def hostile():
            async with aiohttp.ClientSession() as s:
                panel = await s.ws_connect(panel_url)
                await _until(panel, "hello")
                assert await _status(s, panel_url) == 429                  # one panel per agent here
                v = await s.ws_connect(visit, origin=SITE)
                chat = (await _until(panel, "chat"))["chat"]
                # adversarial JSON from the agent: each answered, the panel goes on
                for data in ("[" * 8000, '{"a":' * 1600, "9" * 8000, '{"type":"message","chat":"' + chat
                             + '","text":"\\ud800"}'):
                    await panel.send_str(data)
                    assert (await _until(panel, "error"))["error"]
                    await asyncio.sleep(0.25)                              # inside the budget (5/s)
                # a visitor text frame that is not UTF-8: the connection is closed as the protocol says
                reader, writer = await raw_ws(http_port, "/chat/ws?queue=web", SITE)
                writer.write(frame(1, b'{"type":"message","text":"\xff\xfe"}'))
                got = await read_frames(reader)
                close = [p for op, p in got if op == 8][0]
                assert struct.unpack("!H", close[:2])[0] == 1007, got
                writer.close()
                # the agent floods: the budget's worth arrives, then error frames, then the panel is closed
                for i in range(40):
                    await panel.send_str(json.dumps({"type": "message", "chat": chat, "text": f"spam {i}"}))
                errors = []
                async with asyncio.timeout(10):
                    async for msg in panel:
                        if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data)["type"] == "error":
                            errors.append(json.loads(msg.data)["error"])
                assert panel.close_code == 1008 and errors[-1] == "too many frames: the chat panel is closed"
                assert errors.count("too many frames: slow down (dropped)") >= 4     # then 5 in a row: closed
                texts = []
                async with asyncio.timeout(10):
                    while True:
                        f = json.loads((await v.receive()).data)
                        if f["type"] == "message":
                            texts.append(f["text"])
                        if f["type"] == "queued":                          # the agent left: it waits again
                            break
                assert texts == [f"spam {i}" for i in range(len(texts))] and 1 <= len(texts) < 40
                # an oversized frame from the visitor: closed by the WebSocket layer, the chat ends with it
                await v.send_str("x" * 200_000)
                async with asyncio.timeout(10):
                    async for _ in v:
                        pass
                assert v.close_code == 1009
                # a ping flood: pings cost the budget like frames; the budget's worth is answered, then the chat
                # is cut off as a flood (and the address refused for a while)
                reader, writer = await raw_ws(http_port, "/chat/ws?queue=web", SITE)
                writer.write(b"".join(frame(9, b"p%d" % i) for i in range(200)))
                got = await read_frames(reader)
                writer.close()
                pongs = [p for op, p in got if op == 10]
                texts = [json.loads(p) for op, p in got if op == 1]
                assert 1 <= len(pongs) < 50 and pongs == [b"p%d" % i for i in range(len(pongs))]
                assert {"type": "ended", "reason": "flood"} in texts, texts
                assert await _status(s, visit, origin=SITE) == 429

        asyncio.run(hostile())
        k = kpis(sam)
        assert k["waiting"] == 0 and k["active"] == 0 and k["chats"] == [], k       # nothing left behind
        assert k["agent_cut_off"] == 1 and k["cut_off"] == 1 and k["agent_rate_limited"] >= 5 and k["bad_frames"] >= 4

        # reload: two panels per agent now
        path = tmp_path / "cc.yaml"
        path.write_text(path.read_text().replace("agent_panels: 1", "agent_panels: 2"))
        result = sam.call("POST", "/api/admin/reload", expect=200)[1]
        assert result["ok"] and result["changes"]["chat"] == ["settings"], result

        async def two_panels():
            async with aiohttp.ClientSession() as s:
                first = await s.ws_connect(panel_url)
                second = await s.ws_connect(panel_url)
                await _until(first, "hello")
                await _until(second, "hello")
                assert await _status(s, panel_url) == 429
                await first.close()
                await second.close()
        asyncio.run(two_panels())
        # a bad reload changes nothing and says where
        path.write_text(path.read_text().replace("agent_panels: 2", "agent_panels: 0"))
        status, bad = sam.call("POST", "/api/admin/reload")
        assert status == 422 and any("chat.agent_panels" in e for e in bad["errors"]), bad
