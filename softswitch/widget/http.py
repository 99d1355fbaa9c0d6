"""The widget on the node's HTTP listener: its script and the two token steps, for pages on other origins.

    GET  /widget/click-to-dial.js   the embeddable script (and /widget/jssip.min.js, the vendored JsSIP it loads)
    POST /widget/nonce  {"widget": NAME}                          -> {"nonce", "expires_in"}
    POST /widget/token  {"widget": NAME, "nonce": N, "page": URL} -> {"token", "expires_in", "ws_url", ...}

The POSTs answer cross-origin requests from allowed origins only (CORS with that exact origin; preflight
included), need no account, take bodies of at most MAX_BODY bytes, and say 400 (malformed), 403 (origin,
widget or nonce not allowed), 413 (too big) or 429 (rate limit, with Retry-After).

Wiring, in make_app():  setup(app, NODE)
"""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from ..api.agentpage import STATIC as AGENT_STATIC, ws_url
from .gate import Reply, WidgetGate

STATIC = Path(__file__).parent / "static"
MAX_BODY = 4096
WS_PATH = "/widget"


def _cors(request: web.Request, gate: WidgetGate) -> dict:
    origin = request.headers.get("Origin")
    if origin is not None and gate.ws_origin_allowed(origin):
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {"Vary": "Origin"}


def _reply(request: web.Request, gate: WidgetGate, r: Reply) -> web.Response:
    headers = {**_cors(request, gate), "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if r.retry_after:
        headers["Retry-After"] = str(r.retry_after)
    return web.json_response(r.body, status=r.status, headers=headers, dumps=json.dumps)


async def _body(request: web.Request) -> dict | Reply:
    if request.content_length is not None and request.content_length > MAX_BODY:
        return Reply(413, {"error": f"at most {MAX_BODY} bytes"})
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        return Reply(413, {"error": f"at most {MAX_BODY} bytes"})
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Reply(400, {"error": "expected a JSON object"})
    return body if isinstance(body, dict) else Reply(400, {"error": "expected a JSON object"})


def setup(app: web.Application, node_key: web.AppKey) -> None:
    def gate_of(request: web.Request) -> WidgetGate | None:
        return getattr(request.app[node_key], "widgets", None)

    async def nonce(request: web.Request) -> web.Response:
        gate = gate_of(request)
        if gate is None:
            raise web.HTTPNotFound()
        body = await _body(request)
        if isinstance(body, Reply):
            return _reply(request, gate, body)
        return _reply(request, gate, gate.nonce(body.get("widget"), request.headers.get("Origin"),
                                                request.remote or ""))

    async def token(request: web.Request) -> web.Response:
        gate = gate_of(request)
        if gate is None:
            raise web.HTTPNotFound()
        body = await _body(request)
        if isinstance(body, Reply):
            return _reply(request, gate, body)
        r = gate.token(body.get("widget"), request.headers.get("Origin"), request.remote or "",
                       body.get("nonce"), body.get("page"))
        if r.status == 200:
            node = request.app[node_key]
            url = ws_url(node, request)
            if url is None:
                return _reply(request, gate, Reply(503, {"error": "this node has no ws: or wss: SIP listener"}))
            r.body.update(ws_url=url + WS_PATH, domain=node.config.server.sip.domain)
        return _reply(request, gate, r)

    async def preflight(request: web.Request) -> web.Response:
        gate = gate_of(request)
        if gate is None or "Access-Control-Allow-Origin" not in _cors(request, gate):
            return web.Response(status=403, headers={"Vary": "Origin"})
        return web.Response(status=204, headers={**_cors(request, gate), "Access-Control-Allow-Methods": "POST",
                                                 "Access-Control-Allow-Headers": "Content-Type",
                                                 "Access-Control-Max-Age": "600"})

    def script(path: Path):
        async def serve(request: web.Request) -> web.FileResponse:
            return web.FileResponse(path, headers={
                "Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "max-age=300",
                "X-Content-Type-Options": "nosniff", "Cross-Origin-Resource-Policy": "cross-origin"})
        return serve

    app.router.add_get("/widget/click-to-dial.js", script(STATIC / "click-to-dial.js"))
    app.router.add_get("/widget/jssip.min.js", script(AGENT_STATIC / "vendor" / "jssip.min.js"))
    for path, handler in (("/widget/nonce", nonce), ("/widget/token", token)):
        app.router.add_post(path, handler)
        app.router.add_route("OPTIONS", path, preflight)
