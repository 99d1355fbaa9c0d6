"""Business-account passwords set through the API, kept over the YAML's.

The YAML stays the list of accounts (who exists, their role and agent); a password an account sets for
itself, or one an admin resets, is stored here and wins over the YAML's `password_hash` from then on, across
restarts and reloads. With a file (the node's SQLite state, beside the softphone secrets) it survives a
restart; without one it lasts for the process. Each stored row also says whether the account must change its
password before the API gives it anything else (an admin reset sets that; the account's own change clears it).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass


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

    def set(self, account: str, encoded: str, must_change: bool) -> None:
        """Store a new hash; written (and committed) before the caller answers."""
        row = Stored(encoded, must_change, time.time())
        if self._db is not None:
            with self._lock, self._db:
                self._db.execute("INSERT OR REPLACE INTO account_passwords VALUES (?, ?, ?, ?)",
                                 (account, encoded, int(must_change), row.updated_at))
        self._rows[account] = row

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
