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
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._version = 0
        if db_path:
            self._open(db_path)

    def ha1(self, user: str, algorithm: str) -> str | None:
        entry = self._overrides.get(user) or self._config.get(user)
        if entry is None:
            return None
        upper = algorithm.upper()
        return entry.get(upper if upper == "MD5" else algorithm)

    def known(self, user: str) -> bool:
        return user in self._config or user in self._overrides

    def users(self) -> list[str]:
        return sorted(set(self._config) | set(self._overrides))

    def update_config(self, entries: dict[str, dict[str, str]]) -> None:
        """A reloaded config replaces the configured secrets; resets of users that remain stay in force."""
        self._config = dict(entries)

    def reset(self, user: str, password: str) -> None:
        """A new softphone password; the phone must use it from its next REGISTER."""
        if not self.known(user):
            raise KeyError(user)
        self.set_ha1(user, ha1_pair(user, self.realm, password))

    def set_ha1(self, user: str, pair: dict[str, str]) -> None:
        self._overrides[user] = pair
        if self._db is not None:
            with self._lock, self._db:
                self._db.execute("INSERT OR REPLACE INTO softphone_secrets VALUES (?, ?, ?, ?, ?)",
                                 (user, self.realm, pair["MD5"], pair["SHA-256"], time.time()))
            self._version = self._data_version()

    def refresh(self) -> bool:
        """Pick up resets written by another process (`softswitch passwd --reset`); True when changed."""
        if self._db is None or self._data_version() == self._version:
            return False
        self._load()
        return True

    def _data_version(self) -> int:
        return self._db.execute("PRAGMA data_version").fetchone()[0]

    def _open(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS softphone_secrets (user TEXT PRIMARY KEY, realm TEXT, "
                         "md5 TEXT, sha256 TEXT, updated_at REAL)")
        self._load()

    def _load(self) -> None:
        with self._lock:
            rows = self._db.execute("SELECT user, realm, md5, sha256 FROM softphone_secrets").fetchall()
            self._version = self._data_version()
        # a hash is bound to its realm; a secret reset under another realm no longer applies
        self._overrides = {u: {"MD5": m, "SHA-256": h} for u, realm, m, h in rows if realm == self.realm}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
