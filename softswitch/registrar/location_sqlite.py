"""A location store that survives restarts: bindings served from memory, written behind to SQLite.

Reads never touch the disk. Every change of an address-of-record is queued to one writer thread, which
coalesces changes per AOR and commits in batches (WAL), so a registration storm costs one row write per AOR
per batch. On open, stored bindings are loaded and the expired ones dropped.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time

from .location import Binding, MemoryLocationStore


class SqliteLocationStore(MemoryLocationStore):
    def __init__(self, path: str, now: float | None = None, batch_delay: float = 0.05) -> None:
        super().__init__()
        self.path = path
        self._q: queue.Queue = queue.Queue()
        self._delay = batch_delay
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

    async def replace(self, aor: str, bindings: list[Binding], now: float) -> None:
        await super().replace(aor, bindings, now)
        self._q.put((aor, [b.to_dict() for b in bindings]))

    async def expire(self, now: float) -> list[Binding]:
        gone = await super().expire(now)
        for aor in {b.aor for b in gone}:
            self._q.put((aor, [b.to_dict() for b in self._aors.get(aor, ())]))
        return gone

    def flush(self, timeout: float = 10.0) -> None:
        done = threading.Event()
        self._q.put(done)
        done.wait(timeout)

    def close(self) -> None:
        self.flush()
        self._q.put(None)
        self._thread.join(10)

    def _writer(self) -> None:
        db = sqlite3.connect(self.path)
        db.execute("PRAGMA synchronous=NORMAL")
        stop = False
        while not stop:
            item = self._q.get()
            time.sleep(self._delay)               # let a burst gather: one write per AOR per batch
            pending: dict[str, list] = {}
            waiters: list[threading.Event] = []
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    pending[item[0]] = item[1]
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
            try:
                with db:
                    for aor, rows in pending.items():
                        if rows:
                            db.execute("INSERT OR REPLACE INTO bindings VALUES (?, ?, ?)",
                                       (aor, json.dumps(rows), max(r["expires_at"] for r in rows)))
                        else:
                            db.execute("DELETE FROM bindings WHERE aor = ?", (aor,))
            except sqlite3.Error:
                logging.getLogger("softswitch.registrar.location").exception("bindings_write_failed")
            for w in waiters:
                w.set()
        db.close()
