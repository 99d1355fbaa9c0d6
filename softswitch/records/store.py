"""Durable call records: CDRs and the ACD queue log, in SQLite (default) or PostgreSQL.

`RecordStore("sqlite:///PATH")` (or a plain path) keeps them in an SQLite file in WAL mode;
`RecordStore("postgresql://USER:PASSWORD@HOST:PORT/DB")` (or postgres://...) in a PostgreSQL database, whose
tables are created on open (see softswitch/records/postgres.py). The API and its guarantees are the same for both.

The event loop must never wait on the disk, so every write is handed to ONE writer thread through a queue;
`add_cdr` / `add_queue_event` return a concurrent.futures.Future resolved with the new row id only after
the transaction holding the row has committed (from asyncio: `await asyncio.wrap_future(fut)`; plain
done-callbacks run on the writer thread, so keep them short and never flush() from them). A row the database
rejects (duplicate call_id, unstorable value) fails only its own future; the rest of its batch commits.
SQLite runs WAL with synchronous=NORMAL, which makes a committed row survive a crash or SIGKILL of the
process (only a power cut can lose the last few transactions), at the cost of no fsync per commit - the
point of the requirement. PostgreSQL's durability is the server's (synchronous_commit).

Statements handed over together (add_queue_events: the lines of one ACD step; add_cdr: the CDR and the removal
of its call from the journal) always share one transaction, and the writer commits in the order it was handed
rows, so a resolved future means everything queued before it is committed too. after_commit() runs a callback
on the event loop once a future resolved, or after commit_wait seconds: the end of a call waits for its rows
that way, never for long. The journal (open_call: calls in progress, written with the lines that enqueue or
answer them; agent_state; node_alive, touched every second) is what recovery.py reads after a crash.

Reads use their own connection (WAL readers never block the writer) and may be called from any thread.
Everything that differs between the two databases lives in a backend class (SQLiteBackend here,
PostgresBackend in postgres.py): connections, placeholders, column types, how one row is isolated.
"""

from __future__ import annotations

import json
import os
import queue
import re
import sqlite3
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from .. import log
from . import export as records_export

# the tables live in schema.py; CDR_COLUMNS and MIGRATIONS are named here too, for the store's users
from .schema import CDR_COLUMNS, JSON_COLUMNS as _JSON, MIGRATIONS, SCHEMAS, TABLES as _TABLES, WRAPUP_EXPORT

__all__ = ["CDR_COLUMNS", "MIGRATIONS", "PG_SCHEMES", "Backend", "RecordStore", "RecordStoreClosed", "SQLiteBackend",
           "db_path", "open_backend", "redact_url"]

PG_SCHEMES = ("postgresql://", "postgres://")


class RecordStoreClosed(RuntimeError):
    pass


def redact_url(url: str) -> str:
    """A database URL fit for logs and the console: the password replaced by ***."""
    return re.sub(r"^(\w+://[^:/@]*):[^@/]*@", r"\1:***@", url)


def db_path(url: str | os.PathLike) -> str:
    """sqlite:///relative/path, sqlite:////absolute/path, or a plain path; the directory is created."""
    url = os.fspath(url)
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
    if not path or path == ":memory:" or "://" in path:
        raise ValueError(f"need an SQLite file (sqlite:///PATH or a path) or a postgresql://USER:PASSWORD@HOST"
                         f":PORT/DB URL, got {url!r}")
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


class Backend:
    """What a database must provide to RecordStore. `where` names it in messages and logs (no password).
    The writer connection is used by one thread at a time (the opener, then the writer thread); the reader
    only under RecordStore's read lock; stream() opens a private connection."""

    ph = "?"                     # the driver's placeholder
    types: dict[str, str] = {}   # the {pk}, {real} ... of MIGRATIONS
    set_version_sql = ""         # upsert of (component, version) into schema_version
    where = ""

    def open(self) -> None:
        """Connect the writer, create or upgrade the schema, then connect the reader."""
        raise NotImplementedError

    def insert_sql(self, table: str, names: tuple[str, ...]) -> str:
        return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join([self.ph] * len(names))})"

    def write_batch(self, rows: list[tuple[str, tuple]]) -> list[int | Exception]:
        """Insert the rows in ONE transaction and commit; per row its new id, or the error that rejected that
        row alone. Raises (after rolling back) when the batch as a whole failed."""
        raise NotImplementedError

    def query(self, sql: str, args: list) -> tuple[list[str], list[tuple]]:
        raise NotImplementedError

    def stream(self, sql: str, args: list) -> Iterator[tuple]:
        """The rows of a big query, a page at a time, from a private connection closed at the end."""
        raise NotImplementedError

    def integrity_check(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def migrate(self, db, exclusive) -> None:
        """Bring the schema to len(MIGRATIONS) on `db` inside `exclusive()`, a transaction no other process
        can run at the same time (two processes opening a fresh database must not both migrate)."""
        with exclusive():
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, "
                       "version INTEGER NOT NULL)")
            for component, migrations in SCHEMAS:
                row = db.execute(f"SELECT version FROM schema_version WHERE component={self.ph}",
                                 (component,)).fetchone()
                version = row[0] if row else 0
                if version > len(migrations):
                    raise RuntimeError(f"{self.where}: {component} schema v{version} is newer than this code "
                                       f"(v{len(migrations)})")
                for script in migrations[version:]:
                    for stmt in filter(str.strip, script.format(**self.types).split(";")):
                        db.execute(stmt)  # one at a time: SQLite's executescript() would COMMIT first
                db.execute(self.set_version_sql, (component, len(migrations)))


# Errors that belong to one row (constraint, unbindable value): SQLite aborts only that statement and the
# rest of the batch still commits. Anything else (I/O, full disk, locked) fails the whole batch.
_SQLITE_ROW_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
                      sqlite3.DataError)


class SQLiteBackend(Backend):
    ph = "?"
    types = {"pk": "INTEGER PRIMARY KEY", "real": "REAL"}
    set_version_sql = "INSERT OR REPLACE INTO schema_version VALUES (?, ?)"

    def __init__(self, url: str | os.PathLike, busy_timeout: float = 5.0) -> None:
        self.path = self.where = db_path(url)
        self.busy_timeout = busy_timeout

    def _connect(self, readonly: bool = False) -> sqlite3.Connection:
        # autocommit mode: transactions are explicit BEGIN/COMMIT, nothing is opened behind our back
        if readonly:
            db = sqlite3.connect(Path(os.path.abspath(self.path)).as_uri() + "?mode=ro", uri=True,
                                 check_same_thread=False, isolation_level=None)
        else:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # other processes (passwd --reset, exports) may hold the lock for a moment
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        return db

    @contextmanager
    def _transaction(self, db: sqlite3.Connection):
        db.execute("BEGIN IMMEDIATE")  # the write lock now, not at the first write
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may already have rolled back (I/O error, full disk)
                db.execute("ROLLBACK")
            raise

    def open(self) -> None:
        self._db = self._connect()
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self.migrate(self._db, lambda: self._transaction(self._db))
        except BaseException:
            self._db.close()
            raise
        self._reader = self._connect(readonly=True)

    def write_batch(self, rows: list[tuple[str, tuple]]) -> list[int | Exception]:
        out: list[int | Exception] = []
        with self._transaction(self._db):
            for sql, values in rows:
                try:
                    out.append(self._db.execute(sql, values).lastrowid)
                except _SQLITE_ROW_ERRORS as exc:
                    out.append(exc)
        return out

    def query(self, sql: str, args: list) -> tuple[list[str], list[tuple]]:
        cur = self._reader.execute(sql, args)
        return [d[0] for d in cur.description], cur.fetchall()

    def stream(self, sql: str, args: list, size: int = 1000) -> Iterator[tuple]:
        db = self._connect(readonly=True)
        try:
            cur = db.execute(sql, args)
            while rows := cur.fetchmany(size):
                yield from rows
        finally:
            db.close()

    def integrity_check(self) -> str:
        return "; ".join(r[0] for r in self.query("PRAGMA integrity_check", [])[1])

    def close(self) -> None:
        self._db.close()
        self._reader.close()


def open_backend(url: str | os.PathLike, busy_timeout: float = 5.0) -> Backend:
    """The backend for a storage URL, not yet opened. busy_timeout is SQLite's wait for another process's
    lock; PostgreSQL waits for its row locks itself."""
    if isinstance(url, str) and url.startswith(PG_SCHEMES):
        from .postgres import PostgresBackend  # psycopg is needed only by those who use PostgreSQL
        return PostgresBackend(url)
    return SQLiteBackend(url, busy_timeout)


class RecordStore:
    def __init__(self, url: str | os.PathLike, *, max_delay: float = 0.02, max_rows: int = 500,
                 busy_timeout: float = 5.0, node: str = "", commit_wait: float = 2.0, gather: float = 0.005) -> None:
        self._backend = open_backend(url, busy_timeout)
        self.node = node                # whose journal rows and agent states this store writes
        self.commit_wait = commit_wait  # how long the end of a call waits for its rows before going on
        self.where = self._backend.where                   # the file, or the URL without its password
        self.path = getattr(self._backend, "path", None)   # SQLite only
        self.max_delay, self.max_rows = max_delay, max_rows
        self.gather = gather            # how long the writer lets rows gather once the first has come
        self._log = log.get("records")
        self._backend.open()
        self._read_lock = threading.Lock()
        self._sql: dict[tuple, Any] = {}     # statements spelled, by table and column names (a few, from the code)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._close_lock = threading.Lock()  # no item may slip into the queue behind the stop marker
        self._thread = threading.Thread(target=self._run, name="records-writer", daemon=True)
        self._thread.start()

    def add_cdr(self, row: dict) -> Future:
        """The call's record; its journal entry (open_call) goes in the same transaction."""
        if not row.get("call_id"):
            raise ValueError("a CDR needs a call_id")
        ph = self._backend.ph
        return self._submit([self.insert_stmt("cdr", row),
                             (f"DELETE FROM open_call WHERE call_id = {ph}", (row["call_id"],))])

    def add_queue_event(self, row: dict, opened: dict | None = None) -> Future:
        """A queue-log line. Lines that open or answer a call keep the journal of calls in progress, agents'
        state changes the stored agent states, in the line's transaction. `opened`: caller, called and
        started_at of a call being enqueued (the CDR of a call interrupted by a crash is made of them)."""
        return self.add_queue_events([(row, opened)])

    def add_chat(self, row: dict) -> Future:
        """A web chat that ended, with its transcript (a list of message dicts)."""
        if not row.get("chat_id"):
            raise ValueError("a chat record needs a chat_id")
        return self._submit([self.insert_stmt("chats", row)])

    def add_queue_events(self, lines: list[tuple[dict, dict | None]]) -> Future:
        """Queue-log lines (row, opened) committed together: the lines of one ACD step (a call's `complete`
        and its agent's state change) are never split by a crash. The future carries the first line's id."""
        stmts = []
        for row, opened in lines:
            row = {"at": time.time(), **row}
            stmts += [self.insert_stmt("queue_log", row), *self._journal(row, opened or {})]
        return self._submit(stmts)

    def touch(self) -> Future:
        """Note that this node is alive now: a crash is dated from the last note."""
        return self._submit([self._upsert("node_alive", ("node",), {"node": self.node, "at": time.time()})])

    def write_group(self, stmts: list[tuple[str, tuple]]) -> Future:
        """Statements committed together (never split between transactions); the future carries the first
        one's result."""
        return self._submit(list(stmts))

    @property
    def ph(self) -> str:
        return self._backend.ph

    def _journal(self, row: dict, opened: dict) -> list[tuple[str, tuple]]:
        ph, event, call_id = self._backend.ph, row.get("event"), row.get("call_id")
        if event == "enqueue" and call_id:
            # an overflow enqueues the call again elsewhere: the queue changes, the start stays
            return [self._upsert("open_call", ("call_id",), {
                "call_id": call_id, "node": self.node, "caller": opened.get("caller", ""),
                "called": opened.get("called", ""), "queue": row.get("queue", ""),
                "started_at": opened.get("started_at", row["at"])}, keep=("started_at", "caller", "called"))]
        if event == "answer" and call_id:
            return [(f"UPDATE open_call SET agent_id = {ph}, answered_at = {ph} WHERE call_id = {ph}",
                     (row.get("agent_id"), row["at"], call_id))]
        if event == "state" and row.get("agent_id"):
            return [self._upsert("agent_state", ("node", "agent_id"), {
                "node": self.node, "agent_id": row["agent_id"], "state": row.get("new"),
                "reason": row.get("reason"), "at": row["at"], "resume": None})]
        return []

    def insert_stmt(self, table: str, row: dict) -> tuple[str, tuple]:
        names = tuple(row)
        plan = self._sql.get((table, names))
        if plan is None:        # the same few column sets come back on every call: checked and spelled once
            unknown = set(names) - set(_TABLES[table][0][1:])
            if unknown:  # a typo would otherwise drop data silently
                raise ValueError(f"unknown {table} fields: {sorted(unknown)}")
            plan = self._sql[table, names] = (self._backend.insert_sql(table, names), any(k in _JSON for k in names))
        if plan[1]:
            return plan[0], tuple(json.dumps(v) if k in _JSON and v is not None else v for k, v in row.items())
        return plan[0], tuple(row.values())

    def _upsert(self, table: str, key: tuple[str, ...], row: dict, keep: tuple[str, ...] = ()) -> tuple[str, tuple]:
        """INSERT, or UPDATE the row with the same key (SQLite and PostgreSQL spell it alike)."""
        names = tuple(row)
        sql = self._sql.get((table, names, key, keep))
        if sql is None:
            sets = ", ".join(f"{n} = excluded.{n}" for n in names if n not in key and n not in keep)
            sql = self._sql[table, names, key, keep] = (
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join([self._backend.ph] * len(names))}) "
                f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}")
        return sql, tuple(row.values())

    def _submit(self, stmts: list[tuple[str, tuple]]) -> Future:
        fut: Future = Future()
        with self._close_lock:
            if self._closed:
                raise RecordStoreClosed(f"record store {self.where} is closed")
            self._queue.put((stmts, fut))
        return fut

    def after_commit(self, fut: Future, loop, fn, **context) -> None:
        """Run fn() on the event loop `loop` once `fut` is resolved (its rows committed, or refused), or after
        commit_wait seconds: a records database that is down or slow delays what waits on it, never holds it."""
        done = False

        def run() -> None:
            nonlocal done
            if not done:
                done = True
                timer.cancel()
                fn()

        def late() -> None:
            if not done:
                self._log.error("records_commit_slow", waited=self.commit_wait, where=self.where, **context)
            run()

        def resolved(f: Future) -> None:
            try:
                loop.call_soon_threadsafe(run)
            except RuntimeError:  # the loop is closed: nothing is left to run
                pass

        timer = loop.call_later(self.commit_wait, late)
        fut.add_done_callback(resolved)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued before this call is committed; TimeoutError after `timeout` s."""
        marker: Future = Future()
        with self._close_lock:
            if self._closed:
                raise RecordStoreClosed(f"record store {self.where} is closed")
            self._queue.put((None, marker))
        marker.result(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Commit what is queued, stop the writer and close the connections. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._log.error("records_writer_stuck", where=self.where)
            return  # the writer still owns its connection; closing it under the thread would be worse
        with self._read_lock:
            self._backend.close()

    def __enter__(self) -> "RecordStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            # Group commit: rows gather for `gather` s (a transaction and a wake-up of this thread, which takes the
            # interpreter lock from the event loop, per call step cost more than the wait), then what is queued, up
            # to max_rows or max_delay, commits at once. An item's statements always share one transaction.
            if item is not None and item[0] is not None and self.gather > 0:
                time.sleep(self.gather)
            batch, markers, stop, rows = [], [], item is None, 0
            deadline = time.monotonic() + self.max_delay
            while item is not None:
                if item[0] is None:
                    markers.append(item[1])
                    break  # a flush ends the batch so it returns as soon as its predecessors are in
                if item[1].set_running_or_notify_cancel():  # skip rows whose caller cancelled them
                    batch.append(item)
                    rows += len(item[0])
                if rows >= self.max_rows or time.monotonic() >= deadline:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                stop = item is None
            if batch:
                self._write(batch)
            for m in markers:
                m.set_result(None)
            if stop:
                return

    def _write(self, batch: list) -> None:
        try:
            results = self._backend.write_batch([stmt for stmts, _ in batch for stmt in stmts])
        except Exception as exc:  # the writer must outlive a bad disk; callers see the error in their future
            self._log.error("records_write_failed", error=repr(exc), rows=len(batch), where=self.where)
            for _, fut in batch:
                fut.set_exception(exc)
            return
        i = 0
        for stmts, fut in batch:
            mine, i = results[i:i + len(stmts)], i + len(stmts)
            for (sql, _), result in zip(stmts[1:], mine[1:]):  # the journal of a row: logged, never fatal
                if isinstance(result, Exception):
                    self._log.warning("record_rejected", error=str(result), sql=sql.split(" (")[0])
            if isinstance(mine[0], Exception):
                self._log.warning("record_rejected", error=str(mine[0]), sql=stmts[0][0].split(" (")[0])
                fut.set_exception(mine[0])
            else:
                fut.set_result(mine[0])

    def _query(self, sql: str, args: list) -> list[dict]:
        with self._read_lock:
            if self._closed and not self._thread.is_alive():
                raise RecordStoreClosed(f"record store {self.where} is closed")
            names, rows = self._backend.query(sql, args)
        return [_decode(dict(zip(names, r))) for r in rows]

    def cdrs(self, since: float | None = None, until: float | None = None, queue: str | None = None,
             limit: int | None = None) -> list[dict]:
        """CDRs whose started_at is in [since, until), oldest first."""
        ph = self._backend.ph
        where, args = _where(since, until, "started_at", ph)
        if queue is not None:
            where, args = where + [f"queue = {ph}"], args + [queue]
        return self._query(_select("cdr", where, limit, args, ph), args)

    def queue_events(self, since: float | None = None, call_id: str | None = None,
                     agent_id: str | None = None, limit: int | None = None) -> list[dict]:
        """Queue-log events at or after `since`, in the order they were written."""
        ph = self._backend.ph
        where, args = _where(since, None, "at", ph)
        for col, val in (("call_id", call_id), ("agent_id", agent_id)):
            if val is not None:
                where, args = where + [f"{col} = {ph}"], args + [val]
        return self._query(_select("queue_log", where, limit, args, ph), args)

    def add_wrapup(self, call_id: str, agent_id: str, disposition: str, notes: str) -> Future:
        """The agent's wrap-up of a call; a later one for the same call replaces it (in reads and exports)."""
        if not call_id:
            raise ValueError("a wrap-up needs a call_id")
        return self._submit([self.insert_stmt("call_wrapup", {
            "call_id": call_id, "agent_id": agent_id, "at": time.time(), "disposition": disposition, "notes": notes})])

    def agent_cdrs(self, agent_id: str, limit: int = 10) -> list[dict]:
        """The agent's last CDRs, newest first, each with its latest wrap-up (disposition, notes or None)."""
        ph = self._backend.ph
        args: list = [agent_id]
        return self._query(_cdr_with_wrapup([f"c.agent_id = {ph}"], True, limit, args, ph), args)

    def select(self, sql: str, args: list) -> list[dict]:
        """Rows of any query on this store (placeholders: self.ph)."""
        return self._query(sql, args)

    def chats(self, since: float | None = None, until: float | None = None, limit: int | None = None) -> list[dict]:
        """Chat records whose started_at is in [since, until), oldest first; agents and transcript decoded."""
        ph = self._backend.ph
        where, args = _where(since, until, "started_at", ph)
        return self._query(_select("chats", where, limit, args, ph), args)

    def count_cdrs(self) -> int:
        return self._query("SELECT count(*) AS n FROM cdr", [])[0]["n"]

    def integrity_check(self) -> str:
        """"ok" when the database is sound (SQLite: PRAGMA integrity_check; PostgreSQL: it answers)."""
        with self._read_lock:
            if self._closed and not self._thread.is_alive():
                raise RecordStoreClosed(f"record store {self.where} is closed")
            return self._backend.integrity_check()

    def export(self, kind: str, fmt: str, out: IO[str], since: float | None = None,
               until: float | None = None) -> int:
        """Write the rows of `kind` to `out` as CSV (header row) or a JSON list, in the form of
        records_export (ISO times, the caller parsed); returns the row count. Streamed from a private
        connection so a big export neither loads the table nor blocks other reads."""
        if kind not in _TABLES or fmt not in ("csv", "json"):
            raise ValueError(f"export kind must be cdr|queue_log|chats and fmt csv|json, got {kind!r}, {fmt!r}")
        cols, time_col = _TABLES[kind]
        ph = self._backend.ph
        if kind == "cdr":
            where, args = _where(since, until, "c.started_at", ph)
            cols, sql = cols + WRAPUP_EXPORT, _cdr_with_wrapup(where, False, None, args, ph)
        else:
            where, args = _where(since, until, time_col, ph)
            sql = _select(kind, where, None, args, ph)
        rows = self._backend.stream(sql, args)
        try:
            return records_export.write(kind, fmt, cols, rows, out)
        finally:
            rows.close()  # closes the private connection even when `out` failed half-way


def _where(since, until, col, ph) -> tuple[list[str], list]:
    conds = [(f"{col} >= {ph}", since), (f"{col} < {ph}", until)]
    return [c for c, v in conds if v is not None], [v for _, v in conds if v is not None]


def _select(table: str, where: list[str], limit: int | None, args: list, ph: str) -> str:
    sql = f"SELECT {', '.join(_TABLES[table][0])} FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {ph}"
        args.append(int(limit))
    return sql


def _cdr_with_wrapup(where: list[str], desc: bool, limit: int | None, args: list, ph: str) -> str:
    """CDR columns plus the latest wrap-up of each call (NULLs when none); `where` names columns as c.NAME."""
    cols = ", ".join(f"c.{c}" for c in CDR_COLUMNS) + ", w.disposition, w.notes"
    sql = (f"SELECT {cols} FROM cdr c LEFT JOIN call_wrapup w ON w.id = "
           f"(SELECT max(id) FROM call_wrapup WHERE call_id = c.call_id)")
    if where:
        sql += " WHERE " + " AND ".join(where)
    # newest first straight from the (agent_id, started_at) index; oldest first in id order like _select
    sql += " ORDER BY c.started_at DESC, c.id DESC" if desc else " ORDER BY c.id"
    if limit is not None:
        sql += f" LIMIT {ph}"
        args.append(int(limit))
    return sql


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for k in _JSON:
        if row.get(k) is not None:
            row[k] = json.loads(row[k])
    return row
