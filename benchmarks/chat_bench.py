"""Web chat throughput of one node through real WebSockets: `softswitch serve` on the example tenant, its two chat
agents (Alice and Bob of the multimedia queue support_chat) signed in with their chat panels' WebSocket open,
--chats visitors from the allowed website, each sending --messages messages as fast as the node takes them.

Prints the messages per second the node carried from visitors to agents (and the agents' answers back), the
chats per agent, and the round-trip time of one message and its answer while the load runs.

    python benchmarks/chat_bench.py [--chats 20] [--messages 300] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
import urllib.request

import aiohttp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import example_config, free_port, internal_errors, serve, stop  # noqa: E402
from tools.agents_load import register_agents  # noqa: E402

FIGURE_LINE = r"^chat messages through one node: \d+/s"
ORIGIN = "http://localhost:8000"
AGENTS = (("acme_alice", "Alice-Demo1!", "70001", "Phone-70001!"), ("acme_bob", "Bob-Demo2!", "70002", "Phone-70002!"))


def tune(path: str, per_agent: int) -> tuple[int, int]:
    """The example's chat section with room for the load: every chat of one address (this machine) is let in,
    and the two agents may answer as fast as the load asks (the default budgets are for people typing)."""
    text = open(path).read()
    chat = (f"chat:\n  origins: [{ORIGIN}]\n  concurrency: {{chats: {per_agent}, while_on_call: 1}}\n"
            "  rate: {messages: 10000, burst: 100000}\n  address_rate: {messages: 10000, burst: 100000}\n"
            "  sessions_per_address: 10000\n  agent_rate: {messages: 10000, burst: 100000}\n"
            "  byte_rate: {bytes: 10000000, burst: 10000000}\n")
    text = re.sub(r"\nchat:\n(?:  .*\n)+", "\n" + chat, text, count=1)
    open(path, "w").write(text)
    http = int(re.search(r"http: \{listen: 127\.0\.0\.1:(\d+)\}", text).group(1))
    sip = int(re.search(r"udp:127\.0\.0\.1:(\d+)", text).group(1))
    return http, sip


def post(http: int, path: str, body: dict | None, token: str | None = None) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{http}{path}", data=json.dumps(body or {}).encode(),
                                 method="POST", headers={"Content-Type": "application/json",
                                                         **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


async def run(http: int, tokens: list[str], chats: int, messages: int) -> dict:
    base = f"ws://127.0.0.1:{http}"
    async with aiohttp.ClientSession() as session:
        agents = [await session.ws_connect(f"{base}/api/chat/agent?token={t}", origin=f"http://127.0.0.1:{http}")
                  for t in tokens]
        held: dict[int, set] = {i: set() for i in range(len(agents))}
        got = {"to_agents": 0, "answers": 0}
        done = asyncio.Event()
        total = chats * messages
        rtts: list[float] = []

        async def agent_loop(i: int, ws) -> None:
            async for msg in ws:
                f = json.loads(msg.data)
                if f["type"] == "chat":
                    held[i].add(f["chat"])
                elif f["type"] == "message" and f["from"] == "visitor":
                    got["to_agents"] += 1
                    # the agent answers each message (a chat is two ways): the node carries it back too
                    await ws.send_str(json.dumps({"type": "message", "chat": f["chat"], "text": "ok " + f["text"]}))
                    if got["to_agents"] >= total:
                        done.set()
        tasks = [asyncio.create_task(agent_loop(i, ws)) for i, ws in enumerate(agents)]
        visitors = []
        for _ in range(chats):
            v = await session.ws_connect(f"{base}/chat/ws?queue=support_chat", origin=ORIGIN)
            visitors.append(v)
        for v in visitors:             # every chat is with an agent before the clock starts
            while True:
                f = json.loads((await v.receive()).data)
                if f["type"] == "agent":
                    break
        answers = asyncio.Event()

        async def visitor_loop(v) -> None:
            n = 0
            async for msg in v:
                f = json.loads(msg.data)
                if f["type"] == "message" and f["from"] == "agent":
                    got["answers"] += 1
                    n += 1
                    if f["text"].startswith("ok probe "):
                        rtts.append(time.perf_counter() - float(f["text"][9:]))
                    if got["answers"] >= total:
                        answers.set()
        readers = [asyncio.create_task(visitor_loop(v)) for v in visitors]
        t0 = time.perf_counter()
        for k in range(messages):
            for j, v in enumerate(visitors):
                text = f"probe {time.perf_counter()!r}" if j == 0 and k % 10 == 0 else f"message {k}"
                await v.send_str(json.dumps({"type": "message", "text": text}))
            await asyncio.sleep(0)
        await asyncio.wait_for(done.wait(), 120)
        t_in = time.perf_counter() - t0
        await asyncio.wait_for(answers.wait(), 120)
        t_all = time.perf_counter() - t0
        for t in tasks + readers:
            t.cancel()
        for ws in visitors + agents:
            await ws.close()
        per_agent = sorted(len(h) for h in held.values())
    rtts.sort()
    return {"in_per_s": total / t_in, "both_per_s": 2 * total / t_all, "per_agent": per_agent,
            "rtt_p50_ms": 1000 * rtts[len(rtts) // 2] if rtts else float("nan"),
            "rtt_max_ms": 1000 * rtts[-1] if rtts else float("nan")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chats", type=int, default=20, help="visitors chatting at once")
    ap.add_argument("--messages", type=int, default=300, help="messages each visitor sends")
    ap.add_argument("--quick", action="store_true", help="a short run: 6 chats, 40 messages each")
    a = ap.parse_args()
    if a.quick:
        a.chats, a.messages = 6, 40
    per_agent = -(-a.chats // len(AGENTS))
    with tempfile.TemporaryDirectory() as work:
        config, _ = example_config(work)
        http, sip = tune(config, per_agent)
        proc, _ = serve(config, work)
        try:
            tokens = []
            assert register_agents(sip, [(p, pw) for _, _, p, pw in AGENTS], "cc.example.com", free_port()) == 2
            for account, password, _, _ in AGENTS:
                token = post(http, "/api/login", {"account": account, "password": password})["token"]
                post(http, "/api/agents/me/sign-in", None, token)
                tokens.append(token)
            r = asyncio.run(run(http, tokens, a.chats, a.messages))
            errors = internal_errors(work)
        finally:
            stop(proc)
    print(f"{a.chats} chats x {a.messages} messages, {len(AGENTS)} agents holding {r['per_agent']} chats; "
          f"each message answered by the agent")
    print(f"chat messages through one node: {r['in_per_s']:.0f}/s visitor to agent; "
          f"{r['both_per_s']:.0f}/s both ways with the answers")
    print(f"round trip (message, answer) under that load: p50 {r['rtt_p50_ms']:.1f} ms, max {r['rtt_max_ms']:.1f} ms")
    print(f"chats per agent: {max(r['per_agent'])} (cap {per_agent}); node internal errors: {errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
