"""The web chat on a running node, with plain WebSocket clients (aiohttp): who may connect, the assets and page and
their headers, chats following the agent's ACD state (busy: none; ready again: the waiting chat), and the node
stopping with a chat open (its record is written)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import aiohttp

from softswitch.records.store import RecordStore
from tests.conftest import free_port
from tests.support.chat_site import chat_node, ready_agent
from tests.support.cc import Api

SITE_PORT = free_port()
SITE = f"http://localhost:{SITE_PORT}"


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


async def _status(session, url: str, **kw) -> int:
    try:
        ws = await session.ws_connect(url, **kw)
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 101


async def _until(ws, kind: str, timeout: float = 10.0) -> dict:
    """The next frame of this type (others are skipped); the timeout bounds a hang."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            f = json.loads(msg.data)
            if f["type"] == kind:
                return f


def test_who_may_connect_assets_and_acd_state(tmp_path):
    with chat_node(tmp_path, SITE_PORT) as (nt, sip_port, http_port, ws_port):
        base = f"http://127.0.0.1:{http_port}"
        status, headers, body = _get(base + "/chat/widget.js")
        assert status == 200 and headers["Content-Type"].startswith("text/javascript") and b"softswitchChat" in body
        assert headers["Cross-Origin-Resource-Policy"] == "cross-origin" and headers["X-Content-Type-Options"] == "nosniff"
        status, headers, body = _get(base + "/chat/?queue=web")
        csp = headers["Content-Security-Policy"]
        assert status == 200 and "script-src 'self'" in csp and f"frame-ancestors {SITE}" in csp, csp
        assert b'data-queue="web"' in body
        assert _get(base + "/chat/?queue=support")[0] == 404            # a voice queue takes no chats
        assert _get(base + "/chat/?queue=%3Cscript%3E")[0] == 404
        alice = ready_agent(sip_port, http_port, "acme_alice", "70001")
        carol = Api(http_port)
        carol.login("acme_carol")

        async def scenario():
            ws_base = f"ws://127.0.0.1:{http_port}"
            async with aiohttp.ClientSession() as s:
                visit = f"{ws_base}/chat/ws?queue=web"
                assert await _status(s, visit) == 403                                # no Origin: no browser page
                assert await _status(s, visit, origin="https://evil.example") == 403
                assert await _status(s, f"{ws_base}/chat/ws?queue=support", origin=SITE) == 404
                assert await _status(s, f"{ws_base}/api/chat/agent") == 401
                assert await _status(s, f"{ws_base}/api/chat/agent?token={carol.token}") == 403   # no multimedia queue
                assert await _status(s, f"{ws_base}/api/chat/agent?token={alice.token}",
                                     origin="https://evil.example") == 403

                agent = await s.ws_connect(f"{ws_base}/api/chat/agent?token={alice.token}", origin=base)
                hello = await _until(agent, "hello")
                assert (hello["capacity"], hello["max_chats"], hello["max_on_call"]) == (3, 3, 1)
                # on a break: no chat for her; the visitor waits
                alice.call("POST", "/api/agents/me/state", {"state": "busy", "reason": "lunch"}, expect=200)
                assert (await _until(agent, "capacity"))["capacity"] == 0
                v = await s.ws_connect(visit, origin=SITE)
                welcome = await _until(v, "welcome")
                assert welcome["position"] == 1
                await v.send_str(json.dumps({"type": "message", "text": "anyone there?"}))
                assert (await _until(v, "message"))["text"] == "anyone there?"
                # ready again: she gets it, with what the visitor wrote meanwhile, which is now delivered
                alice.call("POST", "/api/agents/me/state", {"state": "idle"}, expect=200)
                chat = await _until(agent, "chat")
                assert chat["chat"] == welcome["chat"] and [m["text"] for m in chat["messages"]] == ["anyone there?"]
                assert (await _until(v, "agent"))["name"] == "Alice"
                assert (await _until(v, "delivered"))["upto"] == 1
                return welcome["chat"]
        chat_id = asyncio.run(scenario())
        metrics = _get(base + "/metrics")[2].decode()
        assert 'softswitch_chat_answered_total{queue="web"} 1.0' in metrics, metrics[-3000:]
        assert 'softswitch_chat_events_total{kind="refused"} 3.0' in metrics
        # the node stops with the chat open (its WebSockets went with the client above: the visitor left)
    store = RecordStore(f"sqlite:///{tmp_path}/cc.db")
    try:
        rows = store.chats()
    finally:
        store.close()
    assert [(r["chat_id"], r["outcome"], r["agent_id"]) for r in rows] == [(chat_id, "answered", "1001")], rows
    assert rows[0]["wait_s"] > 0 and rows[0]["transcript"][0]["delivered_at"] >= rows[0]["answered_at"]


def test_node_stopping_ends_open_chats_with_a_record(tmp_path):
    async def open_chat(http_port: int):
        s = aiohttp.ClientSession()
        v = await s.ws_connect(f"ws://127.0.0.1:{http_port}/chat/ws?queue=web", origin=SITE)
        welcome = await _until(v, "welcome")
        return s, v, welcome["chat"]

    loop = asyncio.new_event_loop()
    try:
        with chat_node(tmp_path, SITE_PORT) as (nt, sip_port, http_port, ws_port):
            s, v, chat_id = loop.run_until_complete(open_chat(http_port))
        # the node is gone; the visitor was told why
        async def tail():
            got = []
            async with asyncio.timeout(10):
                async for msg in v:
                    got.append(json.loads(msg.data))
            await s.close()
            return got
        frames = loop.run_until_complete(tail())
    finally:
        loop.close()
    assert {"type": "ended", "reason": "the node is stopping"} in frames, frames
    store = RecordStore(f"sqlite:///{tmp_path}/cc.db")
    try:
        rows = store.chats()
    finally:
        store.close()
    assert [(r["chat_id"], r["outcome"], r["end_reason"]) for r in rows] == \
        [(chat_id, "abandoned", "the node is stopping")], rows
