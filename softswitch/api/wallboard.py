"""The wallboard: one page on the HTTP listener that shows queues, agents and KPIs live.

The page itself (GET /wallboard) and its assets (GET /wallboard/static/...) need no token; everything it shows
comes from the JSON API with the bearer token of a supervisor who signs in on the page: /api/queues and
/api/agents, refetched on each event of the /api/events WebSocket (throttled) and every 2 s as a fallback.

Wiring, in make_app():  from .wallboard import setup as setup_wallboard; setup_wallboard(app, NODE)
"""

from __future__ import annotations

import time
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"
PAGE = STATIC / "wallboard.html"

# The page loads nothing from elsewhere and runs no inline script: a strict policy costs nothing.
HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def setup(app: web.Application, node_key: web.AppKey) -> None:
    """Register GET /wallboard, GET /wallboard/clock and the static assets under /wallboard/static/."""

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE, headers={**HEADERS, "Content-Type": "text/html; charset=utf-8"})

    async def slash(request: web.Request) -> web.Response:
        raise web.HTTPFound("/wallboard")

    async def clock(request: web.Request) -> web.Response:
        # The server's wall clock (the ACD's `since` and event `at` are in it), so the page can show time in
        # state right even when the browser's clock is off; the node id titles the board (as /health has it).
        node = request.app[node_key]
        try:
            node_id = node.options.registrar.node_id
        except AttributeError:
            node_id = None
        return web.json_response({"now": time.time(), "node_id": node_id}, headers={"Cache-Control": "no-store"})

    app.router.add_get("/wallboard", page)
    app.router.add_get("/wallboard/", slash)
    app.router.add_get("/wallboard/clock", clock)
    app.router.add_static("/wallboard/static/", STATIC, show_index=False, follow_symlinks=False)
