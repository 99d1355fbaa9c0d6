"""The chat WebSocket's frames: JSON text objects with a `type`. Pure: text in, a checked dict out, or
FrameError carrying what the error frame says. Anything else a browser may send (binary, bad JSON, unknown
types or fields, oversized text) is the peer's fault and gets an error frame; the connection stays usable.

visitor -> node   {type: message, text}  {type: typing, on}  {type: read, upto}  {type: end}
agent -> node     the same with {chat: ID}, and {type: transfer, chat, queue | agent}
"""

from __future__ import annotations

import json

VISITOR = {"message": {"text"}, "typing": {"on"}, "read": {"upto"}, "end": set()}
AGENT = {"message": {"chat", "text"}, "typing": {"chat", "on"}, "read": {"chat", "upto"}, "end": {"chat"},
         "transfer": {"chat", "queue", "agent"}}
OPTIONAL = {"transfer": {"queue", "agent"}}
# C0 controls but tab and newline, DEL, and the bidi overrides that disguise text
_BAD_CHARS = {c for c in range(0x20) if c not in (9, 10)} | {0x7F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E,
                                                            0x2066, 0x2067, 0x2068, 0x2069}
_BAD_TABLE = dict.fromkeys(_BAD_CHARS)


class FrameError(ValueError):
    """The peer's fault: a frame we drop; str() is the error frame's text (the only error a frame can raise)."""


def parse(data, max_frame: int, max_message: int, kinds: dict[str, set[str]]) -> dict:
    if not isinstance(data, str):
        raise FrameError("frames are JSON text")
    if len(data) > max_frame or len(data.encode("utf-8", "surrogatepass")) > max_frame:
        raise FrameError(f"frame too large (at most {max_frame} bytes)")
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):       # RecursionError: thousands of nested brackets
        raise FrameError("frame is not JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise FrameError("frame must be a JSON object with a type")
    kind = obj["type"]
    allowed = kinds.get(kind)
    if allowed is None:
        raise FrameError(f"unknown frame type (one of {', '.join(kinds)})")
    extra = set(obj) - allowed - {"type"}
    if extra:
        raise FrameError(f"unknown field {sorted(extra)[0][:40]!r} in {kind}")
    missing = allowed - set(obj) - OPTIONAL.get(kind, set())
    if missing:
        raise FrameError(f"{kind} needs {sorted(missing)[0]}")
    if "chat" in allowed and not (isinstance(obj["chat"], str) and 0 < len(obj["chat"]) <= 64):
        raise FrameError("chat must be a chat id")
    if kind == "message":
        obj["text"] = _text(obj["text"], max_message)
    elif kind == "typing" and not isinstance(obj["on"], bool):
        raise FrameError("typing needs on: true or false")
    elif kind == "read" and not (type(obj["upto"]) is int and 0 <= obj["upto"] < 2 ** 31):
        raise FrameError("read needs upto: a message number")
    elif kind == "transfer":
        q, a = obj.get("queue"), obj.get("agent")
        if (q is None) == (a is None):
            raise FrameError("transfer needs one of queue or agent")
        for v in (q, a):
            if v is not None and not (isinstance(v, str) and 0 < len(v) <= 64):
                raise FrameError("transfer target must be a name")
    return obj


def clean(v: str, limit: int) -> str:
    """Text a visitor gave outside a frame (their name, the page's URL): cut to `limit`, without the controls and
    bidi overrides messages lose too, so it shows to the agent as what it is."""
    return v[:limit * 2].translate(_BAD_TABLE).strip()[:limit]


def _text(v, max_message: int) -> str:
    if not isinstance(v, str):
        raise FrameError("text must be a string")
    if len(v) > max_message:
        raise FrameError(f"message too long (at most {max_message} characters)")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in v):
        raise FrameError("text is not valid Unicode")
    v = v.translate(_BAD_TABLE).strip()
    if not v:
        raise FrameError("empty message")
    return v
