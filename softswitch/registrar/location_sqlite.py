"""A location store that survives restarts: bindings served from memory, written behind to SQLite.

Reads never touch the disk. A change of an address-of-record only marks it dirty (a dict assignment under a
lock: the event loop pays well under a microsecond); one writer thread wakes once per batch, takes the dirty
set and writes one row per AOR (WAL), so a registration storm costs one row write per AOR per batch. A
binding's JSON is made once: a refresh that only moves its expiry (new expiry, Call-ID, CSeq) reuses the
encoded rest. On open, stored bindings are loaded and the expired ones dropped.
"""

from __future__ import annotations

import json
import logging
import operator
import sqlite3
import threading
import time
from json.encoder import encode_basestring_ascii as _json_str

from .location import Binding, MemoryLocationStore

# Fields a refresh changes; every other field of a binding is encoded once and kept (see _Encoder).
_VOLATILE = ("expires_at", "call_id", "cseq")
_STEADY = tuple(f for f in Binding.__dataclass_fields__ if f not in _VOLATILE)
_steady_of = operator.attrgetter(*_STEADY)
# A batch's rows arrive as one JSON array of [aor, bindings, expires_at] (json_extract gives an array as its text).
_UPSERT = ("INSERT OR REPLACE INTO bindings (aor, data, expires_at) SELECT json_extract(value, '$[0]'), "
           "json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?)")
_DELETE = "DELETE FROM bindings WHERE aor IN (SELECT value FROM json_each(?))"


class SqliteLocationStore(MemoryLocationStore):
    def __init__(self, path: str, now: float | None = None, batch_delay: float = 0.05) -> None:
        super().__init__()
        self.path = path
        self._delay = batch_delay
        self._lock = threading.Lock()
        self._dirty: dict[str, list[Binding]] = {}     # aor -> its bindings now (empty: delete the row)
        self._waiters: list[threading.Event] = []      # flush() callers, told once a batch is committed
        self._stopping = False
        self._wake = threading.Event()
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS bindings (aor TEXT PRIMARY KEY, data TEXT, expires_at REAL)")
        now = time.time() if now is None else now
        db.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
        for aor, data in db.execute("SELECT aor, data FROM bindings"):
            live = [b for b in (Binding.from_dict(d) for d in json.loads(data)) if b.expires_at > now]
            if live:
                self._aors[aor] = live
                self._n += len(live)
                self._schedule(aor, live)
        db.commit()
        db.close()
        self._thread = threading.Thread(target=self._writer, name="bindings-writer", daemon=True)
        self._thread.start()

    @property
    def loaded(self) -> dict[str, list[Binding]]:
        return self._aors

    def _mark(self, aor: str, bindings: list[Binding]) -> None:
        # The lists handed over are never changed afterwards (replace and expire store new ones), and
        # bindings are not mutated: the writer may read them while the loop goes on.
        with self._lock:
            self._dirty[aor] = bindings
        if not self._wake.is_set():
            self._wake.set()

    async def replace(self, aor: str, bindings: list[Binding], now: float) -> None:
        await super().replace(aor, bindings, now)
        self._mark(aor, self._aors.get(aor, []))

    async def expire(self, now: float) -> list[Binding]:
        gone = await super().expire(now)
        for aor in {b.aor for b in gone}:
            self._mark(aor, self._aors.get(aor, []))
        return gone

    def flush(self, timeout: float = 10.0) -> None:
        done = threading.Event()
        with self._lock:
            self._waiters.append(done)
        self._wake.set()
        done.wait(timeout)

    def close(self) -> None:
        self.flush()
        self._stopping = True
        self._wake.set()
        self._thread.join(10)

    def _writer(self) -> None:
        db = sqlite3.connect(self.path)
        db.execute("PRAGMA synchronous=NORMAL")
        encode = _Encoder()
        while True:
            self._wake.wait()
            if not self._stopping:
                time.sleep(self._delay)               # let a burst gather: one write per AOR per batch
            self._wake.clear()
            with self._lock:
                pending, self._dirty = self._dirty, {}
                waiters, self._waiters = self._waiters, []
            # One statement per batch, its rows in one JSON parameter: sqlite3 releases the GIL around every
            # statement step, and a step per row would make the writer and the event loop hand the GIL back
            # and forth for each one.
            try:
                rows = [encode.row(aor, bs) for aor, bs in pending.items() if bs]
                gone = [aor for aor, bs in pending.items() if not bs]
                with db:
                    if rows:
                        db.execute(_UPSERT, (f"[{','.join(rows)}]",))
                    if gone:
                        db.execute(_DELETE, (json.dumps(gone),))
                        encode.forget(gone)
            except Exception:     # the writer outlives a bad batch: later changes of these AORs rewrite them
                logging.getLogger("softswitch.registrar.location").exception("bindings_write_failed")
            for w in waiters:
                w.set()
            if self._stopping:
                break
        db.close()


class _Encoder:
    """Binding -> its JSON object (Binding.to_dict as json.dumps writes it), the steady fields encoded once
    per binding: kept per AOR and binding key while they stay the same. Used by the writer thread only."""

    def __init__(self) -> None:
        self._steady: dict[str, dict[str, tuple[tuple, str]]] = {}

    def row(self, aor: str, bindings: list[Binding]) -> str:
        """The JSON array [aor, [binding, ...], latest expiry] that _UPSERT reads."""
        known = self._steady.get(aor) or {}
        kept: dict[str, tuple[tuple, str]] = {}
        parts = []
        for b in bindings:
            steady = _steady_of(b)
            entry = known.get(b.key)
            if entry is None or entry[0] != steady:
                entry = (steady, json.dumps(dict(zip(_STEADY, steady)))[1:-1])
            kept[b.key] = entry
            parts.append(f'{{"expires_at": {float(b.expires_at)!r}, "call_id": {_json_str(b.call_id)}, '
                         f'"cseq": {int(b.cseq)}, {entry[1]}}}')
        self._steady[aor] = kept
        return f"[{_json_str(aor)},[{','.join(parts)}],{float(max(b.expires_at for b in bindings))!r}]"

    def forget(self, aors: list[str]) -> None:
        for aor in aors:
            self._steady.pop(aor, None)
