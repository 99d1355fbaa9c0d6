"""The node's HTTP listener: JSON API, WebSocket events, health.

Agents sign on with their business account; an agent sees and changes only their own state; supervisors and
admins see every agent and queue. Tokens are bearer tokens that expire; passwords never reach the logs.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import WSMsgType, web

from acd import AcdError, AgentStateError

from ..chat.web import setup as setup_chat
from ..log import get as get_logger
from ..settings import check_password
from ..b2bua.consults import ACTIONS as CONSULT_ACTIONS, act as consult_act
from ..b2bua.transfers import TransferError, resolve as resolve_target, transfer_call as transfer
from .passwords import login_hash, refuse_until_changed, setup as setup_passwords
from .agentpage import setup as setup_agent_page
from .event_fanout import EventRouter
from .metrics import CONTENT_TYPE, render
from .sessions import NODE, SESSION, SESSION_OF, Sessions
from .wallboard import setup as setup_wallboard
from ..b2bua.supervise import SuperviseError, supervise
from ..widget.http import setup as setup_widget
from .bodies import json_object

EVENTS = web.AppKey("event_router", EventRouter)



def _json(data, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


@web.middleware
async def watch_middleware(request: web.Request, handler):
    """Time every step of the handler, i.e. each stretch it runs between two awaits: that is how long it holds
    the loop. A step over the watchdog's threshold is a stall; the histogram gets the request's sum."""
    wd = getattr(request.app[NODE], "watchdog", None)
    coro = handler(request)
    if wd is None or not hasattr(coro, "send"):
        return await coro
    return await _Timed(coro, wd, request, handler)


class _Timed:
    """Awaitable that drives a coroutine one step at a time, as a Task would, reading the clock around each."""
    __slots__ = ("coro", "wd", "request", "handler")

    def __init__(self, coro, wd, request, handler) -> None:
        self.coro, self.wd, self.request, self.handler = coro, wd, request, handler

    def __await__(self):
        coro, wd = self.coro, self.wd
        clock, held = wd.clock, 0.0
        value, exc = None, None
        try:
            while True:
                t0 = clock()
                try:
                    future = coro.send(value) if exc is None else coro.throw(exc)
                except StopIteration as done:
                    return done.value
                finally:
                    dt = clock() - t0
                    held += dt
                    if dt > wd.threshold:
                        self._stall(dt)
                try:
                    value, exc = (yield future), None
                except BaseException as e:      # cancellation (and anything thrown in) goes to the handler
                    value, exc = None, e
        finally:
            wd.observe("http", held)

    def _stall(self, dt: float) -> None:
        r = self.request
        route = getattr(r.match_info, "handler", None) or self.handler
        name = getattr(route, "__name__", None) or type(route).__name__
        self.wd.stall("http", dt, str(r.remote), f"http {r.method} handler {name}", f"{r.method} {r.path_qs}")


@web.middleware
async def auth_middleware(request: web.Request, handler):
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else request.query.get("token", "")
    if request.path in ("/health", "/metrics", "/api/login") or not request.path.startswith("/api/"):
        if request.path == "/agent/config" and token:     # the page's API call: same first-sign-in rule
            refusal = refuse_until_changed(request.app[NODE], request.app[SESSION].get(token), request.path)
            if refusal is not None:
                return refusal
        return await handler(request)
    session = request.app[SESSION].get(token) if token else None
    if session is None:
        return _error(401, "sign on first: POST /api/login")
    request[SESSION_OF] = session
    refusal = refuse_until_changed(request.app[NODE], session, request.path)
    return refusal if refusal is not None else await handler(request)


def _agent_of(request: web.Request, agent_id: str) -> str:
    """`me` is the signed-on agent; another agent's id needs a supervisor."""
    s = request[SESSION_OF]
    if agent_id == "me":
        if s.agent_id is None:
            raise web.HTTPBadRequest(text=json.dumps({"error": "this account is not an agent"}),
                                     content_type="application/json")
        return s.agent_id
    if agent_id != s.agent_id and s.role not in ("supervisor", "admin"):
        raise web.HTTPForbidden(text=json.dumps({"error": "agents may only see and change their own state"}),
                                content_type="application/json")
    return agent_id


async def login(request: web.Request) -> web.Response:
    node = request.app[NODE]
    try:
        body = await json_object(request)
        account, password = str(body["account"]), str(body["password"])
    except (ValueError, KeyError, TypeError):
        return _error(400, "expected JSON {account, password}")
    emp = node.config.employee(account)
    # The hash check runs off the event loop (PBKDF2 is deliberately slow); unknown accounts cost the same.
    encoded = await login_hash(node, emp) if emp else "pbkdf2_sha256$100000$AAAAAAAAAAAAAAAAAAAAAA$AAAA"
    ok = await asyncio.get_running_loop().run_in_executor(None, check_password, password, encoded)
    if not ok or emp is None:
        get_logger("api").info("login_failed", account=account)
        return _error(401, "wrong account or password")
    agent = node.config.agent_of_account(account)
    s = request.app[SESSION].open(account, emp.role, agent.id if agent else None)
    get_logger("api").info("login", account=account, role=emp.role)
    return _json({"token": s.token, "account": account, "role": emp.role, "agent_id": s.agent_id,
                  "expires_at": s.expires_at, "must_change_password": node.accounts.must_change(emp)})


async def logout(request: web.Request) -> web.Response:
    request.app[SESSION].close(request[SESSION_OF].token)
    return _json({"ok": True})


async def agent_state(request: web.Request) -> web.Response:
    node = request.app[NODE]
    agent_id = _agent_of(request, request.match_info["agent"])
    try:
        return _json(node.center.acd.agent_view(agent_id))
    except AcdError as exc:
        return _error(404, str(exc))


async def agent_action(request: web.Request) -> web.Response:
    node = request.app[NODE]
    center = node.center
    agent_id = _agent_of(request, request.match_info["agent"])
    action = request.match_info["action"]
    try:
        body = await json_object(request, optional=True)
    except ValueError:
        return _error(400, "body must be a JSON object")
    try:
        if action == "sign-in":
            return _json(center.sign_in(agent_id))
        if action == "sign-out":
            return _json(center.sign_out(agent_id))
        if action == "state":
            return _json(center.set_state(agent_id, str(body.get("state", "")), str(body.get("reason", ""))))
        if action == "hangup":
            a = center.acd.agent(agent_id)
            call = node.calls.calls.get(a.call_id or "")
            if call is None:
                return _error(409, "no call to hang up")
            node.calls.end_call(call, "agent hung up via API")
            return _json(center.acd.agent_view(agent_id))
        if action == "softphone-password":
            a = node.config.agent(agent_id)
            bad = node.config.password_policy.violations(str(body.get("password", "")), a.account)
            bad += node.config.password_policy.violations(str(body.get("password", "")), a.softphone)
            if bad:
                return _error(400, "password policy: " + "; ".join(dict.fromkeys(bad)))
            node.credentials.reset(a.softphone, str(body["password"]))
            return _json({"ok": True, "effective": "next REGISTER"})
    except AgentStateError as exc:
        return _error(409, str(exc))
    except AcdError as exc:
        return _error(400, str(exc))
    return _error(404, f"no action {action!r}")


async def agents(request: web.Request) -> web.Response:
    s = request[SESSION_OF]
    center = request.app[NODE].center
    ids = list(center.acd.agents) if s.role in ("supervisor", "admin") else [s.agent_id]
    return _json([center.acd.agent_view(i) for i in ids if i])


async def _with_pool(center, view: dict) -> dict:
    if center.pool is not None and center.board is not None:
        try:
            view["pool"] = await center.pool_view(view["name"])
        except Exception as exc:          # Redis away: the node's own figures still answer
            view["pool"] = {"error": str(exc)}
    return view


async def queues(request: web.Request) -> web.Response:
    center = request.app[NODE].center
    return _json([await _with_pool(center, center.acd.queue_view(q)) for q in center.acd.queues])


async def queue(request: web.Request) -> web.Response:
    center = request.app[NODE].center
    name = request.match_info["name"]
    if name not in center.acd.queues:
        return _error(404, f"no skill queue {name!r}")
    return _json(await _with_pool(center, center.acd.queue_view(name)))


async def events(request: web.Request) -> web.StreamResponse:
    """WebSocket: ACD events as JSON; an agent gets their own, supervisors everything."""
    node = request.app[NODE]
    s = request[SESSION_OF]
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    q: asyncio.Queue = asyncio.Queue()
    router = request.app[EVENTS]
    node.center.subscribers.add(router)         # one router among the ACD's subscribers stands for every page
    everything = s.role in ("supervisor", "admin")
    router.add(q, s.agent_id, everything)
    if s.agent_id:
        await ws.send_json({"type": "snapshot", **node.center.acd.agent_view(s.agent_id)})

    async def pump():
        while True:
            await ws.send_json(await q.get())

    async def kpis(every: float = 2.0):
        """Live queue KPIs on the stream too, so a wallboard needs no polling (one text for all pages)."""
        while True:
            await ws.send_str(router.queues_message(node.center.acd, time.time()))
            await asyncio.sleep(every)
    loop = asyncio.get_running_loop()
    task = loop.create_task(pump())
    kpi_task = loop.create_task(kpis())
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        task.cancel()
        kpi_task.cancel()
        router.discard(q, s.agent_id)
    return ws


async def calls(request: web.Request) -> web.Response:
    s = request[SESSION_OF]
    if s.role not in ("supervisor", "admin"):
        return _error(403, "supervisors only")
    node = request.app[NODE]
    out = []
    for c in node.calls.calls.values():
        out.append({"id": c.id, "number": c.number, "queue": c.queue, "started": c.started,
                    "agent_id": c.agent_leg.agent_id if c.agent_leg is not None else None,
                    "supervisor_mode": c.supervisor_mode or None, "transferred": len(c.transfers or ()),
                    "consulting": c.consult.mode if c.consult is not None else None})
    return _json(out)


async def supervise_call(request: web.Request) -> web.Response:
    s = request[SESSION_OF]
    if s.role not in ("supervisor", "admin"):
        return _error(403, "supervisors only")
    node = request.app[NODE]
    agent = node.config.agent_of_account(s.account)
    if agent is None:
        return _error(409, "this supervisor has no softphone (give the account an agents entry)")
    try:
        body = await json_object(request)
        result = supervise(node.calls, request.match_info["call"], agent.softphone, str(body.get("mode", "")))
    except ValueError:
        return _error(400, "body must be JSON {mode}")
    except SuperviseError as exc:
        return _error(exc.status, str(exc))
    return _json({"call_id": request.match_info["call"], "mode": result})


async def transfer_call(request: web.Request) -> web.Response:
    """Blind transfer {to: queue:NAME | agent:ID | ivr:FLOW | number:DIGITS | a bare name}: an agent their
    own call, a supervisor any."""
    s = request[SESSION_OF]
    if s.role not in ("supervisor", "admin") and s.agent_id is None:
        return _error(403, "only agents and supervisors transfer calls")
    try:
        body = await json_object(request)
        to = body.get("to") if isinstance(body, dict) else None
    except ValueError:
        return _error(400, "body must be JSON {to}")
    if not isinstance(to, str):
        return _error(400, "body must be JSON {to}")
    by_agent = None if s.role in ("supervisor", "admin") else s.agent_id
    try:
        result = transfer(request.app[NODE].calls, request.match_info["call"], to, by_agent=by_agent,
                          by=s.account)
    except TransferError as exc:
        return _error(exc.status, str(exc))
    return _json(result)


async def consult_action(request: web.Request) -> web.Response:
    """consult {to}, swap, conference, complete, cancel: an agent on their own call, a supervisor on any."""
    s = request[SESSION_OF]
    if s.role not in ("supervisor", "admin") and s.agent_id is None:
        return _error(403, "only agents and supervisors consult")
    try:
        body = await json_object(request, optional=True)
    except ValueError:
        return _error(400, "body must be JSON")
    if not isinstance(body, dict):
        return _error(400, "body must be a JSON object")
    cc = request.app[NODE].calls
    by_agent = None if s.role in ("supervisor", "admin") else s.agent_id
    action = request.path.rsplit("/", 1)[-1]
    try:
        return _json(consult_act(cc, request.match_info["call"], action, body, by_agent=by_agent, by=s.account,
                                 resolve=lambda text: resolve_target(cc, text)))
    except TransferError as exc:
        return _error(exc.status, str(exc))


async def reload_config(request: web.Request) -> web.Response:
    if request[SESSION_OF].role != "admin":
        return _error(403, "admins only")
    result = request.app[NODE].reload()
    return _json(result, 200 if result["ok"] else 422)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=render(request.app[NODE]), headers={"Content-Type": CONTENT_TYPE})


async def health(request: web.Request) -> web.Response:
    node = request.app[NODE]
    # A draining node takes no new calls: 503 tells a load balancer to send them elsewhere.
    draining = node.calls.draining
    return _json({"status": "draining" if draining else "ok", "node_id": node.options.registrar.node_id, "time": time.time(),
                  "calls": len(node.calls.calls), "bindings": await node.location.count(),
                  "loop_lag_ms": round(1000 * node.calls.loop_lag, 1),
                  "sip_busy": round(node.calls.busy, 3), "resend_ratio": round(node.calls.resend_ratio, 3), "call_stats": dict(node.calls.stats),
                  "refused_overloaded": dict(node.calls.refusals.by_reason),
                  "keepalive": {**node.phones.core.stats, **node.phones.stats}},
                 status=503 if draining else 200)


def make_app(node) -> web.Application:
    app = web.Application(middlewares=[watch_middleware, auth_middleware])
    app[NODE] = node
    app[SESSION] = Sessions()
    app[EVENTS] = EventRouter()
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/agents", agents)
    app.router.add_get("/api/agents/{agent}", agent_state)
    app.router.add_post("/api/agents/{agent}/{action}", agent_action)
    app.router.add_get("/api/queues", queues)
    app.router.add_get("/api/queues/{name}", queue)
    app.router.add_get("/api/events", events)
    app.router.add_get("/api/calls", calls)
    app.router.add_post("/api/calls/{call}/supervise", supervise_call)
    app.router.add_post("/api/calls/{call}/transfer", transfer_call)
    for action in CONSULT_ACTIONS:
        app.router.add_post(f"/api/calls/{{call}}/{action}", consult_action)
    app.router.add_get("/health", health)
    setup_wallboard(app, NODE, SESSION_OF)
    setup_agent_page(app, NODE)
    setup_chat(app, NODE, SESSION_OF)
    setup_widget(app, NODE)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/api/admin/reload", reload_config)
    setup_passwords(app, NODE, SESSION_OF)
    return app


async def start_api(node, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(make_app(node), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    node.http_port = node.api_port = site._server.sockets[0].getsockname()[1]
    get_logger("api").info("listening", http=f"{host}:{node.http_port}")
    return runner
