"""Records as people read them: `softswitch records export` rows in CSV or JSON.

Times are ISO 8601 in UTC with their offset (2026-12-01T09:30:05.250+00:00); JSON rows also keep each one as
UNIX seconds under NAME_epoch. The caller's From header becomes caller_number, caller_name and caller_uri.
wait_s and talk_s mean the same in the CDR and the queue log (MEANINGS, also in the README's "Records").
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from typing import IO, Any, Iterable

from .sip.errors import SipError
from .sip.headers import parse_name_addr
from .sip.uri import SipURI, unescape

MEANINGS = """\
The same figures in the CDR and the queue log:
  wait_s  seconds from the call entering a skill queue to its answer by an agent, or to the
          caller hanging up (abandon) or the queue giving up on it (overflow). Queue log: the
          wait in that queue, on answer, abandon, overflow and callback rows; a complete row
          repeats its answer's wait. CDR: the call's whole wait, the sum over the queues it went
          through; empty when it never entered one.
  talk_s  seconds from the agent's answer to the end of the call (queue log: complete rows).
          CDR: the same figure; for an agent's outbound call, from the called party's answer.
  hold    not measured yet: time on hold is part of talk_s.
Times are ISO 8601 in UTC (+00:00); JSON also gives each as UNIX seconds in NAME_epoch.
The caller's From header is split into caller_number, caller_name and caller_uri."""

CDR_EXPORT = ("id", "call_id", "node", "caller_number", "caller_name", "caller_uri", "called", "queue",
              "agent_id", "started_at", "answered_at", "connected_at", "ended_at", "wait_s", "talk_s", "outcome",
              "end_reason", "recording", "extra", "channel", "page", "disposition", "notes")
QUEUE_LOG_EXPORT = ("id", "at", "queue", "call_id", "agent_id", "event", "old", "new", "reason", "wait_s",
                    "talk_s")
CHATS_EXPORT = ("id", "chat_id", "node", "queue", "agent_id", "agents", "visitor", "origin", "page", "address",
                "started_at", "answered_at", "ended_at", "wait_s", "outcome", "end_reason", "messages", "transcript")
COLUMNS = {"cdr": CDR_EXPORT, "queue_log": QUEUE_LOG_EXPORT, "chats": CHATS_EXPORT}
JSON_CELLS = ("extra", "agents", "transcript")     # JSON text in a CSV cell
TIMES = ("at", "started_at", "answered_at", "connected_at", "ended_at")
WAITED = ("answer", "abandon", "overflow", "callback", "complete")   # queue-log events whose wait means something


def iso(t: float | None) -> str | None:
    """UNIX seconds as ISO 8601 in UTC, to the millisecond."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def caller_parts(raw: str | None) -> tuple[str, str, str]:
    """(number, display name, URI) of a stored From value (`"Name" <sip:5550100@host>`). A value that does not
    parse is kept whole as the URI, so nothing is lost."""
    if not raw:
        return "", "", ""
    try:
        addr = parse_name_addr(raw)
    except SipError:
        return "", "", raw
    uri = addr.uri
    if isinstance(uri, SipURI):
        number = unescape(uri.user or "").split(";")[0]      # sip:+1555;phone-context=...@host
    elif uri.scheme.lower() == "tel":
        number = getattr(uri, "opaque", "").split(";")[0]
    else:
        number = ""
    return number, addr.display or "", str(uri)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def export_row(kind: str, stored: dict[str, Any]) -> dict[str, Any]:
    """One stored row (RecordStore's columns) as exported: COLUMNS[kind] in order, plus NAME_epoch times."""
    row = dict(stored)
    if kind == "chats":
        row["wait_s"] = _seconds(row["wait_s"])
        for k in ("agents", "transcript"):
            if isinstance(row.get(k), str):
                row[k] = json.loads(row[k])
    elif kind == "cdr":
        row["caller_number"], row["caller_name"], row["caller_uri"] = caller_parts(row.pop("caller"))
        row["wait_s"], row["talk_s"] = _seconds(row["wait_s"]), _seconds(row["talk_s"])
        if isinstance(row.get("extra"), str):
            row["extra"] = json.loads(row["extra"])
    else:
        event = row["event"]
        wait, talk = row.pop("wait"), row.pop("talk")
        row["wait_s"] = _seconds(wait) if event in WAITED else None
        row["talk_s"] = _seconds(talk) if event == "complete" else None
    out = {c: row.get(c) for c in COLUMNS[kind]}
    for name in TIMES:
        if name in out:
            out[name + "_epoch"] = row[name]
            out[name] = iso(row[name])
    return out


def write(kind: str, fmt: str, stored_columns: tuple[str, ...], rows: Iterable[tuple], out: IO[str]) -> int:
    """Write the stored rows (tuples in stored_columns order) to `out` as CSV (header row) or a JSON list;
    returns the row count."""
    n = 0
    cols = COLUMNS[kind]
    if fmt == "csv":
        w = csv.writer(out)
        w.writerow(cols)
        for n, values in enumerate(rows, 1):
            row = export_row(kind, dict(zip(stored_columns, values)))
            # NULL becomes an empty cell; extra stays JSON text in its cell
            w.writerow(["" if row[c] is None else json.dumps(row[c]) if c in JSON_CELLS else row[c] for c in cols])
    else:
        out.write("[")
        for n, values in enumerate(rows, 1):
            row = export_row(kind, dict(zip(stored_columns, values)))
            out.write(("\n" if n == 1 else ",\n") + json.dumps(row))
        out.write("\n]\n" if n else "]\n")
    return n
