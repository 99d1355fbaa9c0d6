"""The web chat on the node's HTTP listener: the thin aiohttp shell around ChatHub.

    GET /chat/widget.js, /chat/widget.css   the widget a website embeds (<script src=... data-queue=NAME>)
    GET /chat/?queue=NAME                   a page of its own with the widget (strict CSP), to link to
    GET /chat/ws?queue=NAME                 the visitor's WebSocket; refused (403/404/429) before it opens when
                                            the page's Origin is not in chat.origins (or this node), the queue
                                            is no multimedia queue, or the address is over its limits
    GET /api/chat/agent                     an agent's chat panel (WebSocket, bearer token as ?token=)
    GET /api/chat                           KPIs: waiting chats, ASA, concurrency per queue and in all

Wiring, in make_app():  setup(app, NODE, SESSION_OF)
"""

from __future__ import annotations

import asyncio
import html
import json
import random
import time
from pathlib import Path

from aiohttp import WSMsgType, web

from acd.chat_router import ChatRouter

from ..log import get as get_logger
from .config import add_roles, chat_roles
from .hub import ChatHub
from .pool import ChatPool

STATIC = Path(__file__).parent / "static"
HUB = web.AppKey("chat_hub", ChatHub)
OUTBOX = 500                 # frames queued for one slow connection before it is closed
ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache",
                 "Cross-Origin-Resource-Policy": "cross-origin"}     # other websites load the widget


class WsConn:
    """One WebSocket as ChatHub sees it: send() never waits (a writer task drains an outbox in order)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.closed = False
        self.task = asyncio.get_running_loop().create_task(self._write())

    def send(self, frame: dict) -> None:
        if self.closed:
            return
        if self.outbox.qsize() >= OUTBOX:
            self.close(1008, "not reading")
            return
        self.outbox.put_nowait(json.dumps(frame))

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed:
            self.closed = True
            self.outbox.put_nowait((code, reason))

    async def _write(self) -> None:
        try:
            while True:
                item = await self.outbox.get()
                if isinstance(item, tuple):
                    await self.ws.close(code=item[0], message=item[1].encode())
                    return
                await self.ws.send_str(item)
        except (ConnectionError, RuntimeError):
            self.closed = True


def build_hub(node) -> ChatHub:
    cfg = node.config
    clock = time.time
    router = ChatRouter(clock, random.Random())
    queues, agents, names = chat_roles(cfg)
    add_roles(router, queues, agents)
    acd = node.center.acd

    def state_of(agent_id: str) -> str:
        try:
            return acd.agent(agent_id).state
        except Exception:          # an agent the ACD does not know (config reloaded): no chats
            return "offline"
    return ChatHub(cfg.chat, router, clock, cfg.server.node_id, node.records, names, state_of)


def _websocket(hub: ChatHub) -> web.WebSocketResponse:
    # pings come to the handler (autoping off), which answers them within the connection's budget: a ping is
    # a frame too; any frame received keeps the heartbeat alive
    return web.WebSocketResponse(heartbeat=30, autoping=False, max_msg_size=max(65536, 4 * hub.settings.max_frame))


async def _pong(ws: web.WebSocketResponse, data: bytes) -> None:
    try:
        await ws.pong(data)
    except ConnectionError:         # the peer went; the read loop ends with it
        pass


def _own_origins(request: web.Request) -> tuple[str, ...]:
    return (f"{request.scheme}://{request.host}",)


def setup(app: web.Application, node_key: web.AppKey, session_key: web.RequestKey) -> None:
    log = get_logger("chat")
    running: list = []          # the ACD follower task, its event queue and the timer, while the app runs

    async def start(app: web.Application) -> None:
        node = app[node_key]
        hub = app[HUB] = build_hub(node)
        node.chat = hub
        loop = asyncio.get_running_loop()
        timer: list = [None]

        def rearm() -> None:
            if timer[0] is not None:
                timer[0].cancel()
                timer[0] = None
            due = hub.next_deadline()
            if due is not None:
                timer[0] = loop.call_later(max(0.0, due - time.time()) + 0.005, fire)

        def fire() -> None:
            timer[0] = None
            hub.tick()          # tick's effects call on_change, which re-arms
        hub.on_change = rearm
        events: asyncio.Queue = asyncio.Queue()
        node.center.subscribers.add(events)

        async def follow_acd() -> None:
            while True:
                ev = await events.get()
                if ev.get("type") == "state" and ev.get("agent_id"):
                    try:
                        hub.acd_state(ev["agent_id"], ev["new"])
                    except Exception:
                        log.exception("chat_state_failed", agent_id=ev["agent_id"])
        pool = None
        if getattr(node, "pool", None) is not None:     # pool mode: chats may be served at other nodes
            pool = ChatPool(node.config.server.storage.state, node.config.server.node_id, hub)
            pool.start()
        running[:] = [loop.create_task(follow_acd()), events, timer, pool]

    async def stop(app: web.Application) -> None:
        hub = app.get(HUB)
        if hub is None or not running:
            return
        task, events, timer, pool = running
        running.clear()
        task.cancel()
        app[node_key].center.subscribers.discard(events)
        hub.on_change = lambda: None
        if timer[0] is not None:
            timer[0].cancel()
        hub.shutdown("the node is stopping")
        if pool is not None:            # what the other nodes must hear of it goes out first (bounded)
            for _ in range(200):
                if pool.outbox.empty():
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)   # the last one taken off the outbox is on its way
            await pool.stop()

    def asset(name: str, ctype: str):
        async def handler(request: web.Request) -> web.FileResponse:
            return web.FileResponse(STATIC / name, headers={**ASSET_HEADERS, "Content-Type": ctype})
        return handler

    async def page(request: web.Request) -> web.Response:
        hub = request.app[HUB]
        queue = request.query.get("queue", "")
        if queue not in hub.accepting:
            return web.json_response({"error": "no such chat queue: ?queue=NAME of a multimedia queue"},
                                     status=404)
        ws = ("wss" if request.scheme == "https" else "ws") + "://" + request.host
        ancestors = " ".join(hub.settings.origins) or "'none'"
        body = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>Chat</title>'
                f'<link rel="icon" href="data:,"></head>\n<body class="ssw-chat-page">'
                f'<script src="/chat/widget.js" data-queue="{html.escape(queue)}" data-open="true" defer></script>'
                f'</body></html>\n')
        csp = (f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               f"connect-src 'self' {ws}; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}")
        return web.Response(text=body, content_type="text/html", headers={
            "Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache"})

    async def visitor_ws(request: web.Request) -> web.StreamResponse:
        hub = request.app[HUB]
        queue = request.query.get("queue", "")
        address = request.remote or ""
        refusal = hub.admit(queue, request.headers.get("Origin"), address, _own_origins(request))
        if refusal is not None:
            return web.json_response({"error": refusal[1]}, status=refusal[0])
        ws = _websocket(hub)
        await ws.prepare(request)
        conn = WsConn(ws)
        s = hub.visitor_open(conn, queue, request.headers["Origin"], address, request.query.get("page", ""),
                             request.query.get("name", ""))
        try:
            if s is not None:
                async for msg in ws:
                    if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                        hub.visitor_frame(s, msg.data)
                    elif msg.type == WSMsgType.PING and hub.visitor_ping(s, msg.data):
                        await _pong(ws, msg.data)
                    if conn.closed:
                        break
        finally:
            if s is not None:
                hub.visitor_gone(s)
            conn.close(1000, "")
            await conn.task
        return ws

    async def agent_ws(request: web.Request) -> web.StreamResponse:
        hub = request.app[HUB]
        session = request[session_key]
        origin = request.headers.get("Origin")
        if origin is not None and origin not in _own_origins(request):
            return web.json_response({"error": "the chat panel opens from this node's agent page only"}, status=403)
        refusal = hub.admit_agent(session.agent_id)
        if refusal is not None:
            return web.json_response({"error": refusal[1]}, status=refusal[0])
        ws = _websocket(hub)
        await ws.prepare(request)
        conn = WsConn(ws)
        hub.agent_open(session.agent_id, conn)
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    hub.agent_frame(session.agent_id, conn, msg.data)
                elif msg.type == WSMsgType.PING and hub.agent_ping(session.agent_id, conn, msg.data):
                    await _pong(ws, msg.data)
                if conn.closed:
                    break
        finally:
            hub.agent_gone(session.agent_id, conn)
            conn.close(1000, "")
            await conn.task
        return ws

    async def kpis(request: web.Request) -> web.Response:
        hub = request.app[HUB]
        data = hub.kpis()
        s = request[session_key]
        if s.role in ("supervisor", "admin"):
            now = time.time()
            data["chats"] = [{"chat": c.id, "queue": c.queue, "agent_id": c.agent_id, "visitor": c.visitor,
                              "origin": c.origin, "open_s": round(now - c.opened, 1), "messages": len(c.messages)}
                             for c in list(hub.sessions.values())[:500]]
        return web.json_response(data, headers={"Cache-Control": "no-store"})

    app.on_startup.append(start)
    # on shutdown, not cleanup: the server waits for open WebSockets before cleanup, so they are closed here
    app.on_shutdown.append(stop)
    app.router.add_get("/chat/widget.js", asset("chat-widget.js", "text/javascript; charset=utf-8"))
    app.router.add_get("/chat/widget.css", asset("chat-widget.css", "text/css; charset=utf-8"))
    app.router.add_get("/chat/", page)
    app.router.add_get("/chat/ws", visitor_ws)
    app.router.add_get("/api/chat/agent", agent_ws)
    app.router.add_get("/api/chat", kpis)
