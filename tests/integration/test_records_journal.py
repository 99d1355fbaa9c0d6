"""The records' journal of calls in progress and agents' states, the recovery that closes them after a crash,
and the bounded wait on a commit (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import asyncio
import sqlite3

from softswitch.records.store import RecordStore
from softswitch.records.recovery import recover
from tests.integration.test_records import cdr, db_url, fresh, pg_server_url, pg_url  # noqa: F401  (fixtures)


def test_journal_follows_a_call_and_its_cdr_closes_it(db_url):  # noqa: F811
    with RecordStore(db_url, node="n1") as s:
        s.add_queue_event({"at": 10.0, "queue": "sales", "call_id": "c1", "event": "enqueue"},
                          {"caller": "<sip:555@x>", "called": "4002", "started_at": 9.5}).result(5)
        assert fresh(db_url, "SELECT node, caller, called, queue, started_at, answered_at FROM open_call") == [
            ("n1", "<sip:555@x>", "4002", "sales", 9.5, None)]
        s.add_queue_events([({"at": 12.0, "queue": "sales", "call_id": "c1", "agent_id": "a1", "event": "answer"},
                             None),
                            ({"at": 12.0, "agent_id": "a1", "event": "state", "old": "ringing", "new": "talking",
                              "reason": "answered"}, None)]).result(5)
        assert fresh(db_url, "SELECT agent_id, answered_at FROM open_call") == [("a1", 12.0)]
        assert fresh(db_url, "SELECT node, agent_id, state FROM agent_state") == [("n1", "a1", "talking")]
        s.add_cdr(cdr("c1", 9.5)).result(5)
        assert fresh(db_url, "SELECT count(*) FROM open_call") == [(0,)]
        assert fresh(db_url, "SELECT call_id FROM cdr") == [("c1",)]


def test_recovery_closes_what_a_crash_left_open_once(db_url):  # noqa: F811
    with RecordStore(db_url, node="n1") as s:
        def line(at, event, call_id="", agent_id="", **kw):
            return {"at": at, "queue": "q" if call_id else "", "call_id": call_id, "agent_id": agent_id,
                    "event": event, **kw}
        s.add_queue_event(line(1.0, "enqueue", "waiting"), {"caller": "a", "called": "4001", "started_at": 1.0})
        s.add_queue_event(line(2.0, "enqueue", "talking"), {"caller": "b", "called": "4001", "started_at": 2.0})
        s.add_queue_events([(line(3.0, "state", agent_id="a1", old="ringing", new="talking"), None),
                            (line(3.0, "answer", "talking", "a1"), None)])
        s.add_queue_event(line(4.0, "enqueue", "ending"), {"caller": "c", "called": "4001", "started_at": 4.0})
        s.add_queue_events([(line(5.0, "state", agent_id="a2", old="ringing", new="talking"), None),
                            (line(5.0, "answer", "ending", "a2"), None)])
        # the dead node had committed this call's end, not yet its CDR
        s.add_queue_events([(line(6.0, "complete", "ending", "a2"), None),
                            (line(6.0, "state", agent_id="a2", old="talking", new="idle"), None)])
        s.add_queue_event(line(6.5, "state", agent_id="a3", old="idle", new="rest", reason="lunch"))
        s.node = "n2"       # another node's call, in a shared database: not this node's to close
        s.add_queue_event(line(6.6, "enqueue", "elsewhere"))
        s.node = "n1"
        s.touch().result(5)
        alive = fresh(db_url, "SELECT at FROM node_alive WHERE node = 'n1'")[0][0]
    with RecordStore(db_url, node="n1") as s:
        interrupted, resume = recover(s)
        assert sorted(interrupted) == ["ending", "talking", "waiting"]
        assert sorted((a["agent_id"], a["state"], a["reason"]) for a in resume) == [
            ("a1", "talking", ""), ("a2", "idle", ""), ("a3", "rest", "lunch")]
        cdrs = {r["call_id"]: r for r in s.cdrs()}
        assert sorted(cdrs) == ["ending", "talking", "waiting"]
        assert {r["outcome"] for r in cdrs.values()} == {"interrupted"}
        assert cdrs["talking"]["connected_at"] == 3.0 and cdrs["talking"]["agent_id"] == "a1"
        assert cdrs["waiting"]["connected_at"] is None and cdrs["waiting"]["caller"] == "a"
        assert all(r["ended_at"] == alive for r in cdrs.values())     # the last sign of life
        closing = [(r["call_id"], r["event"], r["reason"]) for r in s.queue_events()
                   if r["event"] in ("complete", "abandon")]
        assert closing == [("ending", "complete", None), ("waiting", "abandon", "interrupted"),
                           ("talking", "complete", "interrupted")]
        offline = [(r["agent_id"], r["old"]) for r in s.queue_events() if r["new"] == "offline"]
        assert sorted(offline) == [("a1", "talking"), ("a2", "idle"), ("a3", "rest")]
        assert fresh(db_url, "SELECT call_id, node FROM open_call") == [("elsewhere", "n2")]
        n_lines = len(s.queue_events())
        # a second start (say the node died again during the first) adds nothing; the agents are still owed
        interrupted, resume = recover(s)
        assert interrupted == [] and len(resume) == 3
        assert len(s.queue_events()) == n_lines and len(s.cdrs()) == 3


def test_the_end_of_a_call_waits_for_the_commit_but_not_forever(tmp_path):
    s = RecordStore(str(tmp_path / "slow.db"), busy_timeout=30, commit_wait=0.2)
    loop = asyncio.new_event_loop()
    try:
        ran: list[bool] = []
        fut = s.add_cdr(cdr("quick", 1.0))
        s.after_commit(fut, loop, lambda: ran.append(fut.done()))

        async def until(pred):
            for _ in range(1000):          # bounds a hang
                if pred():
                    return
                await asyncio.sleep(0.01)
        loop.run_until_complete(until(lambda: ran))
        assert ran == [True]               # it ran once the row was in
        blocker = sqlite3.connect(s.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # a database that does not answer
        ran.clear()
        fut = s.add_cdr(cdr("stuck", 2.0))
        s.after_commit(fut, loop, lambda: ran.append(fut.done()))
        loop.run_until_complete(until(lambda: ran))
        assert ran == [False]              # it went on without the commit
        blocker.execute("ROLLBACK")
        blocker.close()
        assert fut.result(30)
        loop.run_until_complete(asyncio.sleep(0.05))
        assert ran == [False]              # and ran only once
    finally:
        loop.close()
        s.close()
