"""The agent's connection bar: one page on the HTTP listener with the agent's browser softphone and state controls.

GET /agent serves the page and GET /agent/static/... its assets (JsSIP vendored under static/vendor/, see
tools/vendor_jssip.sh); neither needs a token. The agent signs in on the page with the business account
(POST /api/login); the page then asks GET /agent/config (bearer token) where the node's SIP-over-WebSocket
listener is (in pool mode: every node's, from pool.nodes) and which softphone is theirs, registers that
softphone with JsSIP (one phone per pool node) using the softphone password the agent types (never sent to the
API), and drives the ACD state through /api/agents/me/... while it follows /api/events live.

Wiring, in make_app():  from .agentpage import setup as setup_agent_page; setup_agent_page(app, NODE)
"""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from .agentdesk import dispositions_of, setup as setup_desk
from .sessions import SESSION

STATIC = Path(__file__).parent / "static"
PAGE = STATIC / "agent.html"
WILDCARD = ("", "0.0.0.0", "::", "[::]")


def _ws_listener(node) -> tuple[str, str, int] | None:
    """(proto, host, port) of the SIP WebSocket listener actually bound; wss preferred over ws."""
    bound = [b for b in getattr(node, "bound", ()) if b.proto in ("wss", "ws")]
    if not bound:       # not started yet (or a node without `bound`): the configured ones
        try:
            bound = [type("L", (), {"proto": s.transport, "host": s.host, "port": s.port})()
                     for s in node.config.server.sip.listen if s.transport in ("wss", "ws") and s.port]
        except AttributeError:
            bound = []
    if not bound:
        return None
    b = sorted(bound, key=lambda b: b.proto != "wss")[0]
    return b.proto, b.host, b.port


def ws_url(node, request: web.Request) -> str | None:
    """The URL a browser uses to reach the SIP WebSocket listener. A wildcard bind address is replaced by the host
    name the browser used for this page (it reached us by that name, so it can reach the listener by it too)."""
    found = _ws_listener(node)
    if found is None:
        return None
    proto, host, port = found
    if host in WILDCARD:
        host = request.url.host or "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{proto}://{host}:{port}"


def pool_urls(node) -> list[str]:
    """The SIP WebSocket URLs of the pool's nodes (pool.nodes, validated ws:// or wss:// URLs), in order: the page
    registers one phone to each, and places its outbound calls through the first registered one."""
    try:
        return list(node.config.pool_nodes)
    except AttributeError:
        return []


def _headers(node, request: web.Request) -> dict:
    # No inline script, nothing from elsewhere: scripts, styles and the API from this origin only; the only other
    # place the page connects to is the node's SIP WebSocket listener.
    connect = ["'self'"]
    url = ws_url(node, request)
    if url:
        connect.append(url)
    # in pool mode the page registers a phone to every node of the pool as well
    connect += [u for u in pool_urls(node) if u != url]
    return {
        "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                    f"media-src 'self'; connect-src {' '.join(connect)}; base-uri 'none'; "
                                    "form-action 'self'; frame-ancestors 'none'"),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
        # the softphone needs the microphone (and camera for video calls, the screen for sharing) of this page only
        "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self), geolocation=()",
    }


def setup(app: web.Application, node_key: web.AppKey) -> None:
    """Register GET /agent, GET /agent/config and the static assets under /agent/static/."""

    async def page(request: web.Request) -> web.FileResponse:
        node = request.app[node_key]
        return web.FileResponse(PAGE, headers={**_headers(node, request),
                                               "Content-Type": "text/html; charset=utf-8"})

    async def slash(request: web.Request) -> web.Response:
        raise web.HTTPFound("/agent")

    def session_of(request: web.Request):
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        return request.app[SESSION].get(token) if token else None

    async def config(request: web.Request) -> web.Response:
        session = session_of(request)
        if session is None:
            return _error(401, "sign on first: POST /api/login")
        node = request.app[node_key]
        sip = node.config.server.sip
        agent = node.config.agent(session.agent_id) if session.agent_id else None
        if agent is None:
            return _error(400, "this account is not an agent")
        url = ws_url(node, request)
        body = {"ws_url": url, "domain": sip.domain, "realm": sip.realm or sip.domain,
                "softphone": agent.softphone, "agent_id": agent.id, "account": session.account,
                "auto_answer_after": getattr(agent, "auto_answer_after", None),
                "dispositions": dispositions_of(node.config, agent.queues), "pool": pool_urls(node)}
        if url is None and not body["pool"]:
            body["error"] = "this node has no ws: or wss: SIP listener (server.sip.listen)"
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    app.router.add_get("/agent", page)
    app.router.add_get("/agent/", slash)
    app.router.add_get("/agent/config", config)
    app.router.add_static("/agent/static/", STATIC, show_index=False, follow_symlinks=False)
    setup_desk(app, node_key, session_of)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status,
                             dumps=json.dumps, headers={"Cache-Control": "no-store"})
