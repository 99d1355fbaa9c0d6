"""PostgreSQL backend of softswitch.records.store: RecordStore("postgresql://USER:PASSWORD@HOST:PORT/DB").

Same tables, same schema_version row, same guarantees as SQLite; what differs is here. PostgreSQL aborts the
whole transaction at the first failed statement, so a rejected row (duplicate call_id, a value the column
refuses) must be isolated in a savepoint. Savepoints cost two extra round trips a row, so a batch is first
tried without them; only when a row fails is it rolled back and done again, each row in its own savepoint.
Rows come back with their ids through INSERT ... RETURNING id; ids come from BIGSERIAL sequences, so they
grow in commit order from the one writer but may leave gaps (a retried batch, a rolled-back one).
A connection that broke (server restart, network) is opened again for the next batch or read.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import psycopg

from .store import Backend, redact_url

# Errors that belong to one row: constraint violations, values the column refuses, values psycopg cannot
# send. Anything else (connection lost, server shutting down, disk full) fails the whole batch.
ROW_ERRORS = (psycopg.IntegrityError, psycopg.DataError, psycopg.ProgrammingError)
_MIGRATION_LOCK = 0x5EC0AD5  # pg_advisory_xact_lock key: one process at a time creates the schema


class _RetryWithSavepoints(Exception):
    pass


class PostgresBackend(Backend):
    ph = "%s"
    types = {"pk": "BIGSERIAL PRIMARY KEY", "real": "DOUBLE PRECISION"}
    set_version_sql = ("INSERT INTO schema_version VALUES (%s, %s) "
                       "ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version")

    def __init__(self, url: str, connect_timeout: int = 10) -> None:
        self.url, self.connect_timeout = url, connect_timeout
        self.where = redact_url(url)  # never log the password
        self._db = self._reader = None

    def _connect(self) -> psycopg.Connection:
        # autocommit: transactions are explicit `with db.transaction()` blocks, nested ones are savepoints
        return psycopg.connect(self.url, autocommit=True, connect_timeout=self.connect_timeout,
                               application_name="softswitch-records")

    def _writer(self) -> psycopg.Connection:
        if self._db is None or self._db.closed:
            self._db = self._connect()
        return self._db

    def open(self) -> None:
        db = self._writer()
        try:
            self.migrate(db, lambda: self._exclusive(db))
            self._reader = self._connect()
        except BaseException:
            db.close()
            raise

    @contextmanager
    def _exclusive(self, db: psycopg.Connection):
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            yield

    def insert_sql(self, table: str, names: tuple[str, ...]) -> str:
        return super().insert_sql(table, names) + " RETURNING id"

    def write_batch(self, rows: list[tuple[str, tuple]]) -> list[int | Exception]:
        db = self._writer()
        try:
            with db.transaction():  # the fast path: one round trip a row
                out: list[int | Exception] = []
                for sql, values in rows:
                    try:
                        out.append(_result(db.execute(sql, values)))
                    except ROW_ERRORS as exc:
                        raise _RetryWithSavepoints from exc  # rolls the transaction back
                return out
        except _RetryWithSavepoints:
            pass
        with db.transaction():
            out = []
            for sql, values in rows:
                try:
                    with db.transaction():  # a savepoint: a rejected row leaves the others in the batch
                        out.append(_result(db.execute(sql, values)))
                except ROW_ERRORS as exc:
                    out.append(exc)
            return out

    def query(self, sql: str, args: list) -> tuple[list[str], list[tuple]]:
        if self._reader is None or self._reader.closed:
            self._reader = self._connect()
        try:
            cur = self._reader.execute(sql, args)
        except psycopg.OperationalError:
            if not self._reader.closed:
                raise
            self._reader = self._connect()  # it broke (server restart, cut idle connection): reads can repeat
            cur = self._reader.execute(sql, args)
        return [d.name for d in cur.description], cur.fetchall()

    def stream(self, sql: str, args: list) -> Iterator[tuple]:
        db = self._connect()
        try:
            yield from db.cursor().stream(sql, args)  # rows arrive one by one, the table is never loaded
        finally:
            db.close()

    def integrity_check(self) -> str:
        return "ok" if self.query("SELECT 1", [])[1] == [(1,)] else "no answer"

    def close(self) -> None:
        for db in (self._db, self._reader):
            if db is not None:
                db.close()


def _result(cur) -> int | None:
    """The id an INSERT ... RETURNING gave; None for the journal's updates and deletes."""
    return cur.fetchone()[0] if cur.description else None
