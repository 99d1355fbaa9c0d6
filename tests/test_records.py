"""softswitch.records on real SQLite files and a real PostgreSQL server: round trips, batching, export,
duplicates, SIGKILL durability, errors. The PostgreSQL server is started once for the session by
tools/pgserver.py; without PostgreSQL's binaries those tests fail (`make test` installs them as root)."""

from __future__ import annotations

import csv
import io
import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import wait
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from softswitch.records import MIGRATIONS, PG_SCHEMES, RecordStore, RecordStoreClosed, db_path
from softswitch.records_export import CDR_EXPORT, QUEUE_LOG_EXPORT
from tools.pgserver import PostgresNotFound, find_bindir, pg_server

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("sqlite", "postgresql")


def cdr(call_id: str, started: float, queue: str = "sales", **kw) -> dict:
    row = {"call_id": call_id, "node": "n1", "caller": "+3312345", "called": "100", "queue": queue,
           "agent_id": "a1", "started_at": started, "answered_at": started + 0.1, "connected_at": started + 5,
           "ended_at": started + 65, "wait_s": 5.0, "talk_s": 60.0, "outcome": "answered",
           "end_reason": "caller_bye", "recording": f"rec/{call_id}.wav", "extra": {"ivr": ["1", "2"]},
           "channel": "click_to_dial", "page": "https://shop.example/contact?from=ad"}
    row.update(kw)
    return row


@pytest.fixture(scope="session")
def pg_server_url():
    """One throwaway PostgreSQL server for the whole session. No PostgreSQL is a failure, not a skip."""
    missing = None
    try:
        find_bindir()
    except PostgresNotFound as exc:
        missing = str(exc)
    if missing:
        pytest.fail(missing, pytrace=False)
    with pg_server() as url:
        yield url


@pytest.fixture
def pg_url(pg_server_url):
    """The session's database, emptied: each test opens it as new (the store creates the schema)."""
    import psycopg
    with psycopg.connect(pg_server_url, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS cdr, queue_log, call_wrapup, open_call, agent_state, node_alive, "
                   "chats, schema_version")
    return pg_server_url


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/sub/cdr.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(db_url):
    s = RecordStore(db_url)
    yield s
    s.close()


def fresh(url: str, sql: str, *args) -> list[tuple]:
    """Rows seen by a brand-new connection to the store's database, i.e. what is committed."""
    if url.startswith(PG_SCHEMES):
        import psycopg
        with psycopg.connect(url) as db:
            return db.execute(sql.replace("?", "%s"), args).fetchall()
    db = sqlite3.connect(db_path(url))
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def row_errors(url: str) -> tuple[type, type]:
    """(the error of a duplicate call_id, the base class of the driver's errors)"""
    if url.startswith(PG_SCHEMES):
        import psycopg
        return psycopg.errors.UniqueViolation, psycopg.Error
    return sqlite3.IntegrityError, sqlite3.Error


def test_round_trip_filters_and_commit_before_resolve(store, db_url):
    fut = store.add_cdr(cdr("c1", 1000.0))
    rowid = fut.result(5)
    # the future resolved only after COMMIT: a brand-new connection must already see the row
    assert fresh(db_url, "SELECT call_id FROM cdr WHERE id=?", rowid) == [("c1",)]
    store.add_cdr(cdr("c2", 2000.0, queue="support", connected_at=None, agent_id=None,
                      outcome="abandoned", extra=None))
    store.add_cdr(cdr("c3", 3000.0)).result(5)

    rows = store.cdrs()
    assert [r["call_id"] for r in rows] == ["c1", "c2", "c3"]
    assert rows[0] == {"id": rowid, **cdr("c1", 1000.0)}
    assert rows[1]["connected_at"] is None and rows[1]["extra"] is None
    assert [r["call_id"] for r in store.cdrs(since=2000.0)] == ["c2", "c3"]
    assert [r["call_id"] for r in store.cdrs(until=2000.0)] == ["c1"]
    assert [r["call_id"] for r in store.cdrs(since=1500, until=3500, queue="sales")] == ["c3"]
    assert [r["call_id"] for r in store.cdrs(limit=2)] == ["c1", "c2"]
    assert store.count_cdrs() == 3

    events = [
        {"at": 10.0, "queue": "sales", "call_id": "c1", "event": "enqueue"},
        {"at": 11.0, "queue": "sales", "call_id": "c1", "agent_id": "a1", "event": "offer"},
        {"at": 12.0, "queue": "sales", "call_id": "c1", "agent_id": "a1", "event": "answer", "wait": 2.0},
        {"at": 13.0, "queue": "sales", "agent_id": "a2", "event": "state", "old": "idle", "new": "paused",
         "reason": "lunch"},
    ]
    futs = [store.add_queue_event(e) for e in events]
    assert all(isinstance(f.result(5), int) for f in futs)
    got = store.queue_events()
    assert [{k: v for k, v in r.items() if v is not None and k != "id"} for r in got] == events
    assert [r["event"] for r in store.queue_events(call_id="c1")] == ["enqueue", "offer", "answer"]
    assert [r["event"] for r in store.queue_events(agent_id="a2")] == ["state"]
    assert [r["event"] for r in store.queue_events(since=12.0)] == ["answer", "state"]
    assert [r["event"] for r in store.queue_events(since=11.0, agent_id="a1", limit=1)] == ["offer"]
    before = time.time()
    store.add_queue_event({"queue": "q", "event": "enqueue"}).result(5)  # `at` defaults to now
    assert store.queue_events(since=before)[0]["at"] >= before
    assert store.integrity_check() == "ok"

    with pytest.raises(ValueError):
        store.add_cdr({"call_id": "c9", "calller": "typo"})
    with pytest.raises(ValueError):
        store.add_cdr({"caller": "no call id"})


def test_reopen_keeps_schema_and_rows(tmp_path):
    url = str(tmp_path / "cdr.db")  # a plain path works too
    with RecordStore(url) as s:
        s.add_cdr(cdr("c1", 1.0)).result(5)
    with RecordStore(url) as s:
        assert [r["call_id"] for r in s.cdrs()] == ["c1"]
        with sqlite3.connect(s.path) as db:
            version = db.execute("SELECT version FROM schema_version WHERE component='records'").fetchone()
            assert version == (len(MIGRATIONS),)
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_postgres_reopen_schema_version_and_url_forms(pg_url):
    assert pg_url.startswith("postgresql://")
    with RecordStore(pg_url) as s:
        assert "***" in s.where and pg_url.split("@")[0].split(":")[-1] not in s.where  # no password in logs
        s.add_cdr(cdr("c1", 1.0)).result(5)
    with RecordStore("postgres://" + pg_url[len("postgresql://"):]) as s:  # the short scheme works too
        assert [r["call_id"] for r in s.cdrs()] == ["c1"]
        assert s.integrity_check() == "ok"
    assert fresh(pg_url, "SELECT version FROM schema_version WHERE component='records'") == [(len(MIGRATIONS),)]
    types = dict(fresh(pg_url, "SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_name = 'cdr'"))
    assert types["id"] == "bigint" and types["started_at"] == "double precision"  # REAL would be float4


def test_postgres_writer_and_reader_survive_a_lost_connection(pg_url):
    import psycopg
    with RecordStore(pg_url) as s:
        s.add_cdr(cdr("before", 1.0)).result(5)
        assert s.count_cdrs() == 1
        with psycopg.connect(pg_url, autocommit=True) as admin:  # as a server restart would
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = 'softswitch-records'")
        assert isinstance(s.add_cdr(cdr("lost", 2.0)).exception(5), psycopg.OperationalError)
        assert s.add_cdr(cdr("after", 3.0)).result(5)  # the writer connected again
        assert [r["call_id"] for r in s.cdrs()] == ["before", "after"]  # and so did the reader


def test_batching_5000_events_in_order(store, db_url):
    # The disk stalls while all 5000 are submitted: submitting never waits on it.
    disk = threading.Event()
    write_batch = store._backend.write_batch

    def stalled(rows):
        assert disk.wait(30)
        return write_batch(rows)
    store._backend.write_batch = stalled
    futs = [store.add_queue_event({"at": float(i), "queue": "sales", "call_id": f"c{i}", "event": "enqueue"})
            for i in range(5000)]
    assert not any(f.done() for f in futs)
    disk.set()
    store.flush(30)
    assert all(f.done() for f in futs)  # flush returns only after everything queued before it committed
    ids = [f.result() for f in futs]
    assert ids == sorted(ids) and len(set(ids)) == 5000
    rows = store.queue_events()
    assert [r["call_id"] for r in rows] == [f"c{i}" for i in range(5000)]
    assert [r["id"] for r in rows] == ids
    assert fresh(db_url, "SELECT count(*) FROM queue_log") == [(5000,)]


def test_concurrent_writers_from_threads(store):
    def work(k):
        return [store.add_cdr(cdr(f"t{k}-{i}", float(i))) for i in range(200)]
    results: list = []
    threads = [threading.Thread(target=lambda k=k: results.extend(work(k))) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done, pending = wait(results, timeout=10)
    assert not pending and all(f.exception() is None for f in done)
    assert store.count_cdrs() == 800


CALLERS = ['"Say \\"hi\\", {i}" <sip:+3312{i}@example.com>', "<sip:{i}@cc.example.com>",
           "Jo Bloggs <sip:555%20{i};x=1@host>", "tel:+4930{i};phone-context=x", 'say "hi", {i}']
PARSED = [("+3312{i}", 'Say "hi", {i}', "sip:+3312{i}@example.com"), ("{i}", "", "sip:{i}@cc.example.com"),
          ("555 {i}", "Jo Bloggs", "sip:555%20{i};x=1@host"), ("+4930{i}", "", "tel:+4930{i}"),
          ("", "", 'say "hi", {i}')]   # a From that does not parse is kept whole
# (a bare tel: URI ends at its first ";": what follows are header parameters, RFC 3261 s. 20)


def utc(text: str) -> float:
    """An exported time back to UNIX seconds; it must be ISO 8601 with the UTC offset."""
    t = datetime.fromisoformat(text)
    assert t.utcoffset() == timedelta(0) and text.endswith("+00:00"), text
    return t.timestamp()


def test_export_csv_and_json_parse_back(store):
    for i in range(2500):  # more than one fetchmany() page
        store.add_cdr(cdr(f"c{i}", 1796083200.0 + i + 0.25, queue="sales" if i % 2 else "support",
                          connected_at=None if i % 3 == 0 else 1796083200.0 + i + 5.0,
                          caller=CALLERS[i % 5].format(i=i), wait_s=i / 1000, talk_s=60.0004))
        store.add_queue_event({"at": 1796083200.0 + i, "queue": "sales", "call_id": f"c{i}",
                               "event": "answer" if i % 2 else "enqueue", "wait": 2.0004, "talk": None,
                               "reason": "line1\nline2" if i == 7 else None})
    store.flush(10)
    since, until = 1796083200.0 + 100, 1796083200.0 + 2000
    want = store.cdrs(since=since, until=until)
    assert len(want) == 1900

    buf = io.StringIO()
    assert store.export("cdr", "csv", buf, since=since, until=until) == 1900
    buf.seek(0)
    reader = csv.reader(buf)
    assert tuple(next(reader)) == CDR_EXPORT
    got = [dict(zip(CDR_EXPORT, r)) for r in reader]
    assert len(got) == 1900
    for row, w in zip(got, want):
        i = int(w["call_id"][1:])
        assert row["call_id"] == w["call_id"] and row["queue"] == w["queue"]
        assert (row["caller_number"], row["caller_name"], row["caller_uri"]) == tuple(
            p.format(i=i) for p in PARSED[i % 5])
        assert abs(utc(row["started_at"]) - w["started_at"]) < 0.0005
        assert row["started_at"].endswith(".250+00:00")
        assert row["connected_at"] == ("" if w["connected_at"] is None else
                                       datetime.fromtimestamp(w["connected_at"], timezone.utc).isoformat(
                                           timespec="milliseconds"))
        assert float(row["wait_s"]) == round(i / 1000, 3) and row["talk_s"] == "60.0"
        assert json.loads(row["extra"]) == {"ivr": ["1", "2"]}
    assert got[0]["started_at"] == "2026-12-01T00:01:40.250+00:00"      # 100 s after midnight UTC

    buf = io.StringIO()
    assert store.export("cdr", "json", buf, since=since, until=until) == 1900
    rows = json.loads(buf.getvalue())
    assert [r["call_id"] for r in rows] == [w["call_id"] for w in want]
    assert set(rows[0]) == set(CDR_EXPORT) | {f"{t}_epoch" for t in
                                              ("started_at", "answered_at", "connected_at", "ended_at")}
    for r, w in zip(rows, want):     # JSON keeps the numbers too
        assert r["started_at_epoch"] == w["started_at"] and r["connected_at_epoch"] == w["connected_at"]
        assert abs(utc(r["ended_at"]) - w["ended_at"]) < 0.0005
        assert r["extra"] == {"ivr": ["1", "2"]} and r["wait_s"] == w["wait_s"]

    buf = io.StringIO()
    assert store.export("queue_log", "csv", buf) == 2500
    buf.seek(0)
    parsed = list(csv.DictReader(buf))
    assert tuple(parsed[0]) == QUEUE_LOG_EXPORT
    assert parsed[7]["reason"] == "line1\nline2"
    assert [utc(r["at"]) for r in parsed] == [1796083200.0 + i for i in range(2500)]
    # wait only where it means something (answer here), talk only on complete rows
    assert [(r["event"], r["wait_s"], r["talk_s"]) for r in parsed[:2]] == [("enqueue", "", ""), ("answer", "2.0", "")]
    buf = io.StringIO()
    assert store.export("queue_log", "json", buf) == 2500
    q = json.loads(buf.getvalue())
    assert q[1]["at_epoch"] == 1796083200.0 + 1 and q[1]["wait_s"] == 2.0 and q[0]["wait_s"] is None

    buf = io.StringIO()
    assert store.export("cdr", "json", buf, since=2e9) == 0
    assert json.loads(buf.getvalue()) == []
    with pytest.raises(ValueError):
        store.export("calls", "csv", io.StringIO())


def test_a_database_of_the_first_schema_is_upgraded(tmp_path):
    # a node of the previous release wrote this file: the queue log gets its talk column, old rows keep theirs
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        for stmt in filter(str.strip, MIGRATIONS[0].format(pk="INTEGER PRIMARY KEY", real="REAL").split(";")):
            db.execute(stmt)
        db.execute("INSERT INTO schema_version VALUES ('records', 1)")
        db.execute("INSERT INTO queue_log (at, queue, call_id, event, wait) VALUES (1.0, 'q', 'c1', 'answer', 3.5)")
    with RecordStore(path) as s:
        s.add_queue_event({"queue": "q", "call_id": "c1", "event": "complete", "wait": 3.5, "talk": 42.0}).result(5)
        assert [(e["event"], e["wait"], e["talk"]) for e in s.queue_events()] == [
            ("answer", 3.5, None), ("complete", 3.5, 42.0)]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchone() == (len(MIGRATIONS),)


def test_sigkill_durability(tmp_path):
    db = tmp_path / "crash.db"
    rng = random.Random()
    reported: list[str] = []
    for rnd in range(5):
        out_path = tmp_path / f"out{rnd}.txt"
        with open(out_path, "w") as out:
            child = subprocess.Popen([sys.executable, str(ROOT / "tools" / "crash_records.py"), str(db), f"r{rnd}"],
                                     stdout=out, cwd=ROOT)
        try:
            deadline = time.monotonic() + 10
            while not out_path.read_text().startswith("ready\n"):
                assert child.poll() is None, "crash child died on its own"
                assert time.monotonic() < deadline, "crash child never got ready"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.2, 0.8))
            assert child.poll() is None
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait(5)
        lines = out_path.read_text().split("\n")[1:-1]  # drop "ready" and a possible partial last line
        assert lines, "the child committed nothing before the kill"
        reported += lines

    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        present = {r[0] for r in raw.execute("SELECT call_id FROM cdr")}
    missing = [c for c in reported if c not in present]
    assert not missing, f"{len(missing)} acknowledged CDRs lost, e.g. {missing[:5]}"

    with RecordStore(f"sqlite:///{db}") as s:  # reopen after the crashes and keep writing
        assert s.integrity_check() == "ok"
        s.add_cdr(cdr("after-crash", 1.0)).result(5)
        assert s.count_cdrs() == len(present) + 1


def test_closed_store_and_rejected_rows(tmp_path, db_url):
    duplicate, driver_error = row_errors(db_url)
    s = RecordStore(tmp_path / "x.db" if db_url.startswith("sqlite") else db_url)  # a Path works too
    assert s.add_cdr(cdr("dup", 1.0)).result(5)
    # a duplicate in its own batch, and one sharing a batch with good rows
    with pytest.raises(duplicate):
        s.add_cdr(cdr("dup", 2.0)).result(5)
    futs = [s.add_cdr(cdr("ok1", 3.0)), s.add_cdr(cdr("dup", 4.0)), s.add_cdr(cdr("ok2", 5.0)),
            s.add_cdr(cdr("bad-type", 6.0, caller=object()))]
    assert futs[0].result(5) and futs[2].result(5)
    assert isinstance(futs[1].exception(5), duplicate)
    assert isinstance(futs[3].exception(5), driver_error)
    # the writer survived: later rows still go in
    assert s.add_cdr(cdr("later", 7.0)).result(5)
    assert [r["call_id"] for r in s.cdrs()] == ["dup", "ok1", "ok2", "later"]
    assert s.cdrs(since=1.5, until=2.5) == []

    pending = s.add_queue_event({"queue": "q", "event": "enqueue"})
    s.close()
    assert pending.done() and pending.exception() is None  # close() flushed it
    s.close()  # idempotent
    with pytest.raises(RecordStoreClosed):
        s.add_cdr(cdr("late", 8.0))
    with pytest.raises(RecordStoreClosed):
        s.add_queue_event({"event": "enqueue"})
    with pytest.raises(RecordStoreClosed):
        s.flush(1)
    with pytest.raises(RecordStoreClosed):
        s.cdrs()


def test_failed_batch_does_not_kill_writer(tmp_path):
    """A whole-batch failure (here: the file is write-locked by another process's connection past the busy
    timeout) fails the batch's futures; the writer thread lives on and the next batch commits."""
    s = RecordStore(str(tmp_path / "locked.db"), busy_timeout=0.05)
    blocker = sqlite3.connect(s.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    fut = s.add_cdr(cdr("blocked", 1.0))
    assert isinstance(fut.exception(5), sqlite3.OperationalError)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert s.add_cdr(cdr("after", 2.0)).result(5)
    assert [r["call_id"] for r in s.cdrs()] == ["after"]
    s.close()


def test_awaitable_from_asyncio(store):
    import asyncio

    async def main():
        rowid = await asyncio.wrap_future(store.add_cdr(cdr("aio", 1.0)))
        return rowid, threading.current_thread()

    rowid, thread = asyncio.run(main())
    assert thread is threading.main_thread() and store.cdrs()[0]["id"] == rowid
