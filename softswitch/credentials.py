"""Softphone digest secrets: HA1 per algorithm per softphone number, from the config, with resets on top.

A reset (by the agent or an admin) takes effect at the phone's next REGISTER and is kept in SQLite so it
survives a restart; the config's hash stays the fallback until the config itself changes.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def ha1_pair(user: str, realm: str, password: str) -> dict[str, str]:
    """HA1 = H(username ":" realm ":" password) for each algorithm (RFC 7616 s. 3.4.2)."""
    raw = f"{user}:{realm}:{password}".encode("utf-8", "surrogateescape")
    return {name: fn(raw).hexdigest() for name, fn in ALGORITHMS.items()}


class Credentials:
    def __init__(self, realm: str, entries: dict[str, dict[str, str]], db_path: str | None = None) -> None:
        self.realm = realm
        self._config = dict(entries)
        self._overrides: dict[str, dict[str, str]] = {}
        self._db_path = db_path
        self._lock = threading.Lock()
        if db_path:
            self._load()

    def ha1(self, user: str, algorithm: str) -> str | None:
        entry = self._overrides.get(user) or self._config.get(user)
        if entry is None:
            return None
        return entry.get(algorithm.upper() if algorithm.upper() == "MD5" else algorithm)

    def known(self, user: str) -> bool:
        return user in self._config or user in self._overrides

    def users(self) -> list[str]:
        return sorted(set(self._config) | set(self._overrides))

    def update_config(self, entries: dict[str, dict[str, str]]) -> None:
        """A reloaded config replaces the configured secrets; resets of users that remain stay in force."""
        self._config = dict(entries)

    def reset(self, user: str, password: str) -> None:
        if not self.known(user):
            raise KeyError(user)
        pair = ha1_pair(user, self.realm, password)
        self._overrides[user] = pair
        if self._db_path:
            with self._lock, sqlite3.connect(self._db_path) as db:
                db.execute("INSERT OR REPLACE INTO softphone_secrets VALUES (?, ?, ?, ?, ?)",
                           (user, self.realm, pair["MD5"], pair["SHA-256"], time.time()))

    def _load(self) -> None:
        with sqlite3.connect(self._db_path) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS softphone_secrets (user TEXT PRIMARY KEY, realm TEXT, "
                       "md5 TEXT, sha256 TEXT, updated_at REAL)")
            for user, realm, md5, sha256, _ in db.execute("SELECT * FROM softphone_secrets"):
                if realm == self.realm:  # a hash is bound to its realm
                    self._overrides[user] = {"MD5": md5, "SHA-256": sha256}
