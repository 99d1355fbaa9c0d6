"""The wallboard: one page on the HTTP listener that shows queues, agents, calls and KPIs live.

The page itself (GET /wallboard) and its assets (GET /wallboard/static/...) need no token; everything it shows
comes from the JSON API with the bearer token of the account signed in on the page: GET /api/wallboard (the
board: queues, agents per state, calls; see wallboard_data.shared_board), GET /api/wallboard/agents (one page
of the agent list, filtered: wallboard_agents.py) and GET /api/wallboard/trends (the last 60 minutes per queue,
per minute), refetched when the /api/wallboard/events WebSocket says something changed (at most once per
refresh interval) and every 2 s as a fallback. Supervisors' listen, whisper and barge buttons use
POST /api/calls/ID/supervise.

Each answer is built at most once per refresh interval and the same bytes go to every viewer asking for it
(wallboard_cache.py): the cost of the board does not grow with the number of viewers, and the agent list is a
page, not the tenant.

Wiring, in make_app():  setup(app, NODE, SESSION_OF)
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from aiohttp import web

from ..log import get as get_logger
from .trend import TrendRing
from .wallboard_agents import NameOrder, QueryError, agent_page, parse_query
from .wallboard_cache import ChangeTicker, SharedAnswers
from .wallboard_data import MAX_CALL_ROWS, call_lists, shared_board, viewer

STATIC = Path(__file__).parent / "static"
PAGE = STATIC / "wallboard.html"
SAMPLE_EVERY = 5.0          # seconds between trend samples (a minute keeps its most and last waiting)
TRENDS = web.AppKey("wallboard_trends", TrendRing)
SAMPLER = web.AppKey("wallboard_sampler", asyncio.Task)
REFRESH = 1.0               # seconds: the board, its agent pages and trends are built at most once per this
ANSWERS = web.AppKey("wallboard_answers", SharedAnswers)
ORDER = web.AppKey("wallboard_order", NameOrder)
TICKER = web.AppKey("wallboard_ticker", ChangeTicker)
WATCHERS = web.AppKey("wallboard_watchers", set)
NOTIFIER = web.AppKey("wallboard_notifier", asyncio.Task)

# The page loads nothing from elsewhere and runs no inline script: a strict policy costs nothing.
HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _encode(data) -> bytes:
    return json.dumps(data, default=str, separators=(",", ":")).encode()


def _json_bytes(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json",
                        headers={"Cache-Control": "no-store"})


class _Changes:
    """Stands in the ACD's subscribers as a queue that only marks the ticker: one flag per event, whatever
    the number of boards open (each event is not copied to each of them)."""
    __slots__ = ("ticker",)

    def __init__(self, ticker: ChangeTicker) -> None:
        self.ticker = ticker

    def qsize(self) -> int:
        return 0

    def put_nowait(self, _event) -> None:
        self.ticker.mark()


def sample(node, ring: TrendRing, now: float) -> None:
    acd = node.center.acd
    ring.observe(now, {name: acd.queue_view(name) for name in acd.queues})


def setup(app: web.Application, node_key: web.AppKey, session_key: web.RequestKey) -> None:
    """Register GET /wallboard, its static assets, GET /wallboard/clock, GET /api/wallboard[/trends], and the
    trend sampler (runs while the app does)."""
    app[TRENDS] = TrendRing(minutes=60)
    app[ANSWERS] = SharedAnswers(every=REFRESH)
    app[TICKER] = ChangeTicker(every=REFRESH)
    app[WATCHERS] = set()
    app[ORDER] = NameOrder()

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE, headers={**HEADERS, "Content-Type": "text/html; charset=utf-8"})

    async def slash(request: web.Request) -> web.Response:
        raise web.HTTPFound("/wallboard")

    async def clock(request: web.Request) -> web.Response:
        # The server's wall clock (the ACD's `since` and call times are in it), so the page can show times
        # right even when the browser's clock is off; the node id titles the board (as /health has it).
        node = request.app[node_key]
        try:
            node_id = node.options.registrar.node_id
        except AttributeError:
            node_id = None
        return web.json_response({"now": time.time(), "node_id": node_id}, headers={"Cache-Control": "no-store"})

    async def board_view(request: web.Request) -> web.Response:
        s, node, now = request[session_key], request.app[node_key], time.time()
        supervisor = s.role in ("supervisor", "admin")
        answers = request.app[ANSWERS]
        # the calls' rows are made once for both scopes (a pass over every call), the board once per scope
        calls = lambda: answers.get(("calls",), now, lambda: call_lists(node.calls, node.center.acd, now,  # noqa: E731
                                                                        MAX_CALL_ROWS))
        shared = answers.get(("board", supervisor), now,
                             lambda: _encode(shared_board(node, supervisor, now, calls())))
        # the viewer's few fields, then the shared object's members: one copy of the shared bytes, no re-encoding
        mine = _encode({**viewer(node.config, s.role, s.account), "served_at": now})
        return _json_bytes(mine[:-1] + b"," + shared[1:])

    async def agents_view(request: web.Request) -> web.Response:
        node, now = request.app[node_key], time.time()
        acd = node.center.acd
        try:
            q = parse_query(request.query, acd.queues)
        except QueryError as exc:
            return _json_bytes(_encode({"error": str(exc)}), 400)
        order = request.app[ORDER]
        return _json_bytes(request.app[ANSWERS].get(("agents", q), now,
                                                    lambda: _encode(agent_page(acd, node.config, order, q))))

    async def trends(request: web.Request) -> web.Response:
        node, ring, now = request.app[node_key], request.app[TRENDS], time.time()

        def build() -> bytes:
            sample(node, ring, now)
            return _encode({"now": now, "period": ring.period, "minutes": ring.minutes,
                            "queues": {name: ring.series(name, now) for name in node.center.acd.queues}})
        return _json_bytes(request.app[ANSWERS].get(("trends",), now, build))

    async def changes(request: web.Request) -> web.StreamResponse:
        """WebSocket: {"type": "changed", "seq"} at most once per refresh interval when the ACD moved."""
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        watchers = request.app[WATCHERS]
        watchers.add(ws)
        try:
            await ws.send_str(json.dumps({"type": "changed", "seq": request.app[TICKER].seq}))
            async for _ in ws:          # nothing is expected from the page; a close ends the loop
                pass
        finally:
            watchers.discard(ws)
        return ws

    async def notifier(app: web.Application) -> None:
        ticker, watchers = app[TICKER], app[WATCHERS]
        while True:
            await asyncio.sleep(ticker.every / 4)
            if watchers and ticker.due(time.time()):
                # answers built before the change must not be what the told pages fetch next
                app[ANSWERS].clear()
                message = json.dumps({"type": "changed", "seq": ticker.seq})
                for ws in list(watchers):
                    if not ws.closed:
                        try:
                            await ws.send_str(message)
                        except (ConnectionError, RuntimeError):
                            watchers.discard(ws)

    async def sampler(app: web.Application) -> None:
        node, ring = app[node_key], app[TRENDS]
        while True:
            try:
                sample(node, ring, time.time())
            except Exception:                   # one bad sample must not end the trends
                get_logger("api").exception("wallboard_sample_failed")
            await asyncio.sleep(SAMPLE_EVERY)

    async def on_startup(app: web.Application) -> None:
        center = getattr(app[node_key], "center", None)
        if center is not None:
            loop = asyncio.get_running_loop()
            app[SAMPLER] = loop.create_task(sampler(app))
            app[NOTIFIER] = loop.create_task(notifier(app))
            center.subscribers.add(_Changes(app[TICKER]))
            # the agents' name order, made now (a tenth of a second at 20,000 agents) rather than on a
            # supervisor's first look while calls are up
            app[ORDER].refresh(center.acd, app[node_key].config)

    async def on_shutdown(app: web.Application) -> None:
        for ws in list(app[WATCHERS]):
            await ws.close()

    async def on_cleanup(app: web.Application) -> None:
        tasks = [t for t in (app.get(SAMPLER), app.get(NOTIFIER)) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/wallboard", page)
    app.router.add_get("/wallboard/", slash)
    app.router.add_get("/wallboard/clock", clock)
    app.router.add_get("/api/wallboard", board_view)
    app.router.add_get("/api/wallboard/trends", trends)
    app.router.add_get("/api/wallboard/agents", agents_view)
    app.router.add_get("/api/wallboard/events", changes)
    app.router.add_static("/wallboard/static/", STATIC, show_index=False, follow_symlinks=False)
