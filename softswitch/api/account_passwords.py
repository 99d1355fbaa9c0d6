"""Business-account passwords set through the API, kept over the YAML's.

The YAML stays the list of accounts (who exists, their role and agent); a password an account sets for
itself, or one an admin resets, is stored here and wins over the YAML's `password_hash` from then on, across
restarts and reloads. With a file (the node's SQLite state, beside the softphone secrets) it survives a
restart; without one it lasts for the process. Each stored row also says whether the account must change its
password before the API gives it anything else (an admin reset sets that; the account's own change clears it).

In pool mode the rows also live in Redis (one hash for the pool), written there first: a password changed at
one node signs in at every node (each reads the account's row at login, and all of them every few seconds).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from dataclasses import dataclass

REDIS_KEY = "ss:accounts:passwords"


@dataclass(frozen=True)
class Stored:
    password_hash: str
    must_change: bool
    updated_at: float


class AccountPasswords:
    def __init__(self, db_path: str | None = None) -> None:
        self._rows: dict[str, Stored] = {}
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.redis = None                 # pool mode: redis.asyncio client shared by the pool's nodes
        if db_path:
            self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS account_passwords (account TEXT PRIMARY KEY, "
                             "password_hash TEXT NOT NULL, must_change INTEGER NOT NULL, updated_at REAL)")
            for account, encoded, must, at in self._db.execute("SELECT * FROM account_passwords"):
                self._rows[account] = Stored(encoded, bool(must), at or 0.0)

    def effective(self, employee) -> tuple[str, bool]:
        """(password hash, must change) for a configured employee: what was stored, else the YAML's."""
        row = self._rows.get(employee.account)
        if row is not None:
            return row.password_hash, row.must_change
        return employee.password_hash, employee.must_change_password

    def must_change(self, employee) -> bool:
        return self.effective(employee)[1]

    async def save(self, account: str, encoded: str, must_change: bool) -> None:
        """Store a new hash, in Redis first in pool mode (an error there leaves everything as it was)."""
        if self.redis is not None:
            await self.redis.hset(REDIS_KEY, account, json.dumps([encoded, must_change, time.time()]))
        self.set(account, encoded, must_change)

    async def fresh(self, account: str) -> None:
        """Pool mode: take the account's row from Redis now (it may have changed at another node)."""
        if self.redis is not None:
            raw = await self.redis.hget(REDIS_KEY, account)
            if raw is not None:
                self._take(account, raw)

    async def follow(self, every: float = 3.0, log=None) -> None:
        """Pool mode: re-read every row now and then (resets made at other nodes reach open sessions)."""
        while True:
            try:
                for account, raw in (await self.redis.hgetall(REDIS_KEY)).items():
                    self._take(account, raw)
            except Exception as exc:          # Redis away: the rows known stay in force
                if log is not None:
                    log.warning("account_passwords_refresh_failed", error=str(exc))
            await asyncio.sleep(every)

    def _take(self, account: str, raw: str) -> None:
        try:
            encoded, must, at = json.loads(raw)
        except (ValueError, TypeError):
            return
        cur = self._rows.get(account)
        if cur is None or cur.updated_at < at:
            self.set(account, str(encoded), bool(must), float(at))

    def set(self, account: str, encoded: str, must_change: bool, at: float | None = None) -> None:
        """Store a new hash here; written (and committed) before the caller answers."""
        row = Stored(encoded, must_change, time.time() if at is None else at)
        if self._db is not None:
            with self._lock, self._db:
                self._db.execute("INSERT OR REPLACE INTO account_passwords VALUES (?, ?, ?, ?)",
                                 (account, encoded, int(must_change), row.updated_at))
        self._rows[account] = row

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
