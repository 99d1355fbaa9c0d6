"""The agent desktop's own API: the agent's last calls (read from the CDRs) and the wrap-up of a call.

GET  /api/agents/{me|ID}/calls[?limit=N]   the agent's last N calls (1-50, default 10), newest first, with the
                                           caller's number and name parsed from the CDR and the call's wrap-up;
                                           another agent's calls need a supervisor or admin
POST /api/calls/{CALL_ID}/wrap-up          {"disposition": CODE, "notes": TEXT} by the agent who took the call:
                                           CODE one of the call's queue's `dispositions` (or empty), TEXT up to
                                           NOTES_MAX characters; stored beside the CDR (a later save replaces it)

The call is the agent's when the ACD has it as theirs now (ringing or talking) or when it is among their last
HISTORY_SCAN CDRs. Reads and writes of the record store run off the event loop.
"""

from __future__ import annotations

import asyncio
import json
from typing import Callable

from aiohttp import web

from ..records.export import caller_parts
from .bodies import json_object

LIMIT_MAX = 50
NOTES_MAX = 2000
HISTORY_SCAN = 50
CALL_ID_MAX = 200


def _json(data, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str),
                             headers={"Cache-Control": "no-store"})


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def caller_of(raw: str | None) -> tuple[str, str]:
    """(number, display name) of a From/P-Asserted-Identity value as the CDR keeps it; '' where absent."""
    number, name, _ = caller_parts((raw or "")[:1024])
    return number, name if name != number else ""


def _public(row: dict) -> dict:
    number, name = caller_of(row.get("caller"))
    keep = ("call_id", "called", "queue", "started_at", "connected_at", "ended_at", "wait_s", "talk_s", "outcome",
            "disposition", "notes")
    return {"caller": number, "caller_name": name, **{k: row.get(k) for k in keep}}


def live_call_of(node, call_id: str, agent_id: str) -> str | None:
    """The queue ('' for an agent's own outbound call) of a call the ACD has with this agent now (talking, or
    offered to them while ringing); None when it is not theirs now."""
    acd = node.center.acd
    talking = acd.talking.get(call_id)
    if talking is not None:
        return (talking[1] or "") if talking[0] == agent_id else None
    a = acd.agents.get(agent_id)
    entry = acd.entries.get(call_id)
    if entry is not None and a is not None and a.call_id == call_id:
        return entry.queue
    return None


def setup(app: web.Application, node_key: web.AppKey, session_of: Callable) -> None:
    """Register the two routes; session_of(request) is the signed-on session or None."""

    async def calls(request: web.Request) -> web.Response:
        s = session_of(request)
        if s is None:
            return _error(401, "sign on first: POST /api/login")
        wanted = request.match_info["agent"]
        agent_id = s.agent_id if wanted == "me" else wanted
        if agent_id is None:
            return _error(400, "this account is not an agent")
        if agent_id != s.agent_id and s.role not in ("supervisor", "admin"):
            return _error(403, "agents may only see their own calls")
        try:
            limit = int(request.query.get("limit", "10"))
        except ValueError:
            return _error(400, "limit must be a whole number")
        if not 1 <= limit <= LIMIT_MAX:
            return _error(400, f"limit must be between 1 and {LIMIT_MAX}")
        node = request.app[node_key]
        if node.config.agent(agent_id) is None:
            return _error(404, f"no agent {agent_id!r}")
        if node.records is None:
            return _error(503, "this node keeps no call records")
        rows = await asyncio.get_running_loop().run_in_executor(None, node.records.agent_cdrs, agent_id, limit)
        return _json({"agent_id": agent_id, "calls": [_public(r) for r in rows]})

    async def wrap_up(request: web.Request) -> web.Response:
        s = session_of(request)
        if s is None:
            return _error(401, "sign on first: POST /api/login")
        if s.agent_id is None:
            return _error(400, "this account is not an agent")
        call_id = request.match_info["call"]
        if not call_id or len(call_id) > CALL_ID_MAX:
            return _error(400, "no such call")
        try:
            body = await json_object(request)
        except ValueError:
            return _error(400, "body must be JSON {disposition, notes}")
        if not isinstance(body, dict):
            return _error(400, "body must be JSON {disposition, notes}")
        disposition, notes = body.get("disposition") or "", body.get("notes") or ""
        if not isinstance(disposition, str) or not isinstance(notes, str):
            return _error(400, "disposition and notes are text")
        notes = notes.strip()
        if len(notes) > NOTES_MAX:
            return _error(400, f"notes are at most {NOTES_MAX} characters, got {len(notes)}")
        if not disposition and not notes:
            return _error(400, "give a disposition or notes")
        node = request.app[node_key]
        if node.records is None:
            return _error(503, "this node keeps no call records")
        queue = live_call_of(node, call_id, s.agent_id)
        owner = s.agent_id if queue is not None else None
        if queue is None:
            rows = await asyncio.get_running_loop().run_in_executor(None, node.records.agent_cdrs, s.agent_id,
                                                                    HISTORY_SCAN)
            row = next((r for r in rows if r["call_id"] == call_id), None)
            owner, queue = (s.agent_id, row["queue"] or "") if row is not None else (None, "")
        if owner != s.agent_id:
            return _error(404, "no call of yours with that id (among your last calls)")
        spec = node.config.queue(queue) if queue else None
        codes = spec.dispositions if spec is not None else ()
        if disposition and disposition not in codes:
            allowed = ", ".join(codes) if codes else "none (this call's queue has no dispositions)"
            return _error(400, f"unknown disposition {disposition[:60]!r}; allowed: {allowed}")
        try:
            await asyncio.wrap_future(node.records.add_wrapup(call_id, s.agent_id, disposition, notes))
        except Exception as exc:          # a failed write is the database's problem, told as such
            return _error(503, f"could not store the wrap-up: {exc}")
        return _json({"call_id": call_id, "queue": queue, "disposition": disposition, "notes": notes,
                      "saved": True})

    app.router.add_get("/api/agents/{agent}/calls", calls)
    app.router.add_post("/api/calls/{call}/wrap-up", wrap_up)


def dispositions_of(config, queues) -> dict[str, list[str]]:
    """Queue -> its wrap-up codes, for the queues given (the agent's)."""
    out = {}
    for name in queues:
        q = config.queue(name)
        if q is not None:
            out[name] = list(q.dispositions)
    return out
