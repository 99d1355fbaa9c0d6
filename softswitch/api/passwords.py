"""Business-account passwords over the API: an account flagged must_change_password sets a new one before
anything else; anyone changes their own; admins reset others (which flags the account again).

  POST /api/me/password            {"old_password": ..., "new_password": ...}     any signed-on account
  POST /api/accounts/{account}/password   {"password": ...}                       admins: a reset

Until the change, every other endpoint (and GET /agent/config) answers 403 {"error": "password_change_required"}
(POST /api/logout still works). The new password is checked against the tenant's password policy, and must
differ from the current one. Hashing (PBKDF2) runs off the event loop.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from ..log import get as get_logger
from ..settings import check_password, hash_password
from .bodies import json_object

ALLOWED_WHILE_REQUIRED = frozenset({"/api/me/password", "/api/logout"})
REQUIRED = "password_change_required"
MAX_PASSWORD = 1024          # longer is refused before any hashing (PBKDF2 cost grows with the length)


def _json(data, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=json.dumps)


def refuse_until_changed(node, session, path: str) -> web.Response | None:
    """The 403 for an account that must change its password first (None: go on)."""
    if session is None or path in ALLOWED_WHILE_REQUIRED:
        return None
    emp = node.config.employee(session.account)
    if emp is None or not node.accounts.must_change(emp):
        return None
    return _json({"error": REQUIRED, "detail": f"account {session.account!r} must set a new password first: "
                                               "POST /api/me/password {old_password, new_password}"}, 403)


async def _body(request: web.Request, *keys: str) -> list[str] | web.Response:
    try:
        body = await json_object(request)
        values = [body[k] for k in keys]
    except (ValueError, KeyError, TypeError):
        return _json({"error": f"expected JSON {{{', '.join(keys)}}}"}, 400)
    if not all(isinstance(v, str) and len(v) <= MAX_PASSWORD for v in values):
        return _json({"error": f"{', '.join(keys)} must be strings of at most {MAX_PASSWORD} characters"}, 400)
    return values


async def _fresh(node, account: str) -> None:
    try:
        await node.accounts.fresh(account)
    except Exception as exc:                 # Redis away: the row this node knows
        get_logger("api").warning("account_passwords_refresh_failed", error=str(exc))


async def login_hash(node, emp) -> str:
    """The hash a login is checked against (in pool mode, as stored by whichever node changed it last)."""
    await _fresh(node, emp.account)
    return node.accounts.effective(emp)[0]


def _refusals(node, account: str, new: str, current_hash: str) -> list[str]:
    bad = node.config.password_policy.violations(new, account)
    if current_hash and check_password(new, current_hash):
        bad.append("the same as the current password")
    return bad


async def change_own(request: web.Request, node, session) -> web.Response:
    values = await _body(request, "old_password", "new_password")
    if isinstance(values, web.Response):
        return values
    old, new = values
    emp = node.config.employee(session.account)
    if emp is None:
        return _json({"error": f"no account {session.account!r} in the configuration"}, 404)
    await _fresh(node, emp.account)
    current, _ = node.accounts.effective(emp)
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, check_password, old, current):
        get_logger("api").info("password_change_refused", account=emp.account, why="wrong current password")
        return _json({"error": "the current password is wrong"}, 403)
    bad = await loop.run_in_executor(None, _refusals, node, emp.account, new, current)
    if bad:
        return _json({"error": f"password of {emp.account!r} breaks the password policy: {'; '.join(bad)}",
                      "violations": bad}, 400)
    encoded = await loop.run_in_executor(None, hash_password, new)
    try:
        await node.accounts.save(emp.account, encoded, must_change=False)
    except Exception as exc:                 # pool mode, Redis away: nothing changed anywhere
        return _json({"error": f"the state store is unavailable, try again: {exc}"}, 503)
    get_logger("api").info("password_changed", account=emp.account)
    return _json({"ok": True, "account": emp.account, "must_change_password": False})


async def admin_reset(request: web.Request, node, session) -> web.Response:
    if session.role != "admin":
        return _json({"error": "admins only"}, 403)
    account = request.match_info["account"]
    emp = node.config.employee(account)
    if emp is None:
        return _json({"error": f"no account {account!r}"}, 404)
    values = await _body(request, "password")
    if isinstance(values, web.Response):
        return values
    (password,) = values
    bad = node.config.password_policy.violations(password, account)
    if bad:
        return _json({"error": f"password of {account!r} breaks the password policy: {'; '.join(bad)}",
                      "violations": bad}, 400)
    encoded = await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
    try:
        await node.accounts.save(account, encoded, must_change=True)
    except Exception as exc:
        return _json({"error": f"the state store is unavailable, try again: {exc}"}, 503)
    get_logger("api").info("password_reset", account=account, by=session.account)
    return _json({"ok": True, "account": account, "must_change_password": True})


def setup(app: web.Application, node_key, session_key) -> None:
    async def own(request: web.Request) -> web.Response:
        return await change_own(request, request.app[node_key], request[session_key])

    async def reset(request: web.Request) -> web.Response:
        return await admin_reset(request, request.app[node_key], request[session_key])
    app.router.add_post("/api/me/password", own)
    app.router.add_post("/api/accounts/{account}/password", reset)
