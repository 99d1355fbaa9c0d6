"""JSON request bodies, read so that whatever a client sends is a ValueError the handler answers with 400: not
JSON, not UTF-8, nested deeper than the parser goes (json raises RecursionError there), or not an object."""

from __future__ import annotations

from aiohttp import web


async def json_object(request: web.Request, optional: bool = False) -> dict:
    """The body's JSON object; {} when `optional` and there is no body."""
    if optional and not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    return body
