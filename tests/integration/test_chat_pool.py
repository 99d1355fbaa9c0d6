"""Web chat in pool mode on a real redis-server: a visitor on one node, served by an agent whose chat panel is on
the other (the chat waits pool-wide, the agent's node takes it, Redis pub/sub carries the frames both ways); the
serving node writes the record; a pool-wide chat whose visitor leaves is taken back and recorded where it began."""

from __future__ import annotations

import asyncio
import json
from contextlib import contextmanager

import aiohttp
import pytest
import redis

from softswitch.records.store import RecordStore
from tests.conftest import free_port
from tests.support.cc import _node_thread, _rtp_lo, config_text, wait_for
from tests.support.chat_site import chat_edits, ready_agent
from tools.redisserver import redis_server

SITE_PORT = free_port()
SITE = f"http://localhost:{SITE_PORT}"


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        yield url


@contextmanager
def pool_node(tmp_path, node_id: str, redis_url: str):
    tmp_path.mkdir(exist_ok=True)

    def make_text():
        sip, http = free_port(), free_port()
        text = config_text(sip, http, str(tmp_path / "cc.db"), _rtp_lo(sip), node_id=node_id, state=redis_url)
        for old, new in chat_edits(SITE_PORT):
            assert text.count(old) == 1, old
            text = text.replace(old, new)
        return text, (sip, http)
    with _node_thread(tmp_path, make_text) as (nt, (sip, http)):
        yield sip, http


async def _until(ws, pred, timeout: float = 15.0) -> dict:
    """The next frame pred() accepts (others are skipped); the timeout bounds a hang."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            f = json.loads(msg.data)
            if pred(f):
                return f


def _chats(path) -> list[dict]:
    store = RecordStore(f"sqlite:///{path}")
    try:
        return store.chats()
    finally:
        store.close()


def test_visitor_on_one_node_agent_on_the_other(tmp_path, redis_url):
    with pool_node(tmp_path / "a", "n1", redis_url) as (sip1, http1), \
            pool_node(tmp_path / "b", "n2", redis_url) as (sip2, http2):
        alice = ready_agent(sip2, http2, "acme_alice", "70001")

        async def scenario():
            async with aiohttp.ClientSession() as s:
                agent = await s.ws_connect(f"ws://127.0.0.1:{http2}/api/chat/agent?token={alice.token}",
                                           origin=f"http://127.0.0.1:{http2}")
                await _until(agent, lambda f: f["type"] == "hello")
                v = await s.ws_connect(f"ws://127.0.0.1:{http1}/chat/ws?queue=web", origin=SITE)
                welcome = await _until(v, lambda f: f["type"] == "welcome")
                await v.send_str(json.dumps({"type": "message", "text": "hello over the pool"}))
                assert (await _until(v, lambda f: f["type"] == "agent"))["name"] == "Alice"
                # the agent gets the chat, and the visitor's message, whether it came before or after the handover
                got = await _until(agent, lambda f: (f["type"] == "chat" and f["messages"]) or f["type"] == "message")
                text = got["messages"][0]["text"] if got["type"] == "chat" else got["text"]
                assert text == "hello over the pool" and got["chat"] == welcome["chat"]
                await agent.send_str(json.dumps({"type": "message", "chat": welcome["chat"], "text": "Alice on n2"}))
                reply = await _until(v, lambda f: f["type"] == "message" and f["from"] == "agent")
                assert reply["text"] == "Alice on n2"
                await v.send_str(json.dumps({"type": "read", "upto": reply["seq"]}))
                assert (await _until(agent, lambda f: f["type"] == "read"))["upto"] == reply["seq"]
                await v.send_str(json.dumps({"type": "typing", "on": True}))
                assert (await _until(agent, lambda f: f["type"] == "typing"))["on"] is True
                await v.close()                 # the tab closes at n1: the chat ends at n2
                ended = await _until(agent, lambda f: f["type"] == "ended")
                assert ended == {"type": "ended", "chat": welcome["chat"], "reason": "visitor left"}

                # no agent with room anywhere (Alice's panel closed): a chat waits pool-wide, its visitor leaves
                await agent.close()
                v2 = await s.ws_connect(f"ws://127.0.0.1:{http1}/chat/ws?queue=web", origin=SITE)
                w2 = await _until(v2, lambda f: f["type"] == "welcome")
                r = redis.Redis.from_url(redis_url)
                try:
                    assert await asyncio.to_thread(wait_for, lambda: r.zcard("ss:chat:waiting:web") == 1, 10)
                    await v2.close()
                    assert await asyncio.to_thread(wait_for, lambda: r.zcard("ss:chat:waiting:web") == 0, 10)
                finally:
                    r.close()
                return welcome["chat"], w2["chat"]
        served, left = asyncio.run(scenario())
        assert wait_for(lambda: len(_chats(tmp_path / "a" / "cc.db")) == 1, 10)
        assert wait_for(lambda: len(_chats(tmp_path / "b" / "cc.db")) == 1, 10)
    (b,) = _chats(tmp_path / "b" / "cc.db")        # the serving node keeps the transcript
    assert (b["chat_id"], b["node"], b["agent_id"], b["outcome"], b["end_reason"]) == \
        (served, "n2", "1001", "answered", "visitor left")
    assert b["origin"] == SITE and [m["text"] for m in b["transcript"]] == ["hello over the pool", "Alice on n2"]
    assert b["transcript"][1]["read_at"] is not None
    (a,) = _chats(tmp_path / "a" / "cc.db")
    assert (a["chat_id"], a["node"], a["outcome"], a["agent_id"]) == (left, "n1", "abandoned", None)
