"""The wallboard: one page on the HTTP listener that shows queues, agents, calls and KPIs live.

The page itself (GET /wallboard) and its assets (GET /wallboard/static/...) need no token; everything it shows
comes from the JSON API with the bearer token of the account signed in on the page: GET /api/wallboard (the
board: see wallboard_data.board) refetched on each event of the /api/events WebSocket (throttled) and every 2 s
as a fallback, and GET /api/wallboard/trends (the last 60 minutes per queue, per minute). Supervisors' listen,
whisper and barge buttons use POST /api/calls/ID/supervise.

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
from .wallboard_data import board

STATIC = Path(__file__).parent / "static"
PAGE = STATIC / "wallboard.html"
SAMPLE_EVERY = 5.0          # seconds between trend samples (a minute keeps its most and last waiting)
TRENDS = web.AppKey("wallboard_trends", TrendRing)
SAMPLER = web.AppKey("wallboard_sampler", asyncio.Task)

# The page loads nothing from elsewhere and runs no inline script: a strict policy costs nothing.
HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _dumps(data) -> str:
    return json.dumps(data, default=str)


def sample(node, ring: TrendRing, now: float) -> None:
    acd = node.center.acd
    ring.observe(now, {name: acd.queue_view(name) for name in acd.queues})


def setup(app: web.Application, node_key: web.AppKey, session_key: web.RequestKey) -> None:
    """Register GET /wallboard, its static assets, GET /wallboard/clock, GET /api/wallboard[/trends], and the
    trend sampler (runs while the app does)."""
    app[TRENDS] = TrendRing(minutes=60)

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
        s = request[session_key]
        data = board(request.app[node_key], s.role, s.account, time.time())
        return web.json_response(data, dumps=_dumps, headers={"Cache-Control": "no-store"})

    async def trends(request: web.Request) -> web.Response:
        node, ring, now = request.app[node_key], request.app[TRENDS], time.time()
        sample(node, ring, now)
        data = {"now": now, "period": ring.period, "minutes": ring.minutes,
                "queues": {name: ring.series(name, now) for name in node.center.acd.queues}}
        return web.json_response(data, dumps=_dumps, headers={"Cache-Control": "no-store"})

    async def sampler(app: web.Application) -> None:
        node, ring = app[node_key], app[TRENDS]
        while True:
            try:
                sample(node, ring, time.time())
            except Exception:                   # one bad sample must not end the trends
                get_logger("api").exception("wallboard_sample_failed")
            await asyncio.sleep(SAMPLE_EVERY)

    async def on_startup(app: web.Application) -> None:
        if getattr(app[node_key], "center", None) is not None:
            app[SAMPLER] = asyncio.get_running_loop().create_task(sampler(app))

    async def on_cleanup(app: web.Application) -> None:
        task = app.get(SAMPLER)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/wallboard", page)
    app.router.add_get("/wallboard/", slash)
    app.router.add_get("/wallboard/clock", clock)
    app.router.add_get("/api/wallboard", board_view)
    app.router.add_get("/api/wallboard/trends", trends)
    app.router.add_static("/wallboard/static/", STATIC, show_index=False, follow_symlinks=False)
