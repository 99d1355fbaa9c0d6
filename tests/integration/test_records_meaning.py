"""wait, talk and hold mean one thing in the CDR and the queue log (README "Records"): the node's ACD bridge
(softswitch.b2bua.contact_center) writes the queue log into a real RecordStore with an injected clock, and the
export says the same figures the CDR writer is given."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys

import pytest

from softswitch.cli import default_config
from softswitch.b2bua.contact_center import ContactCenter
from softswitch.records.store import RecordStore
from softswitch.records.export import MEANINGS
from softswitch.settings import load_config


class Clock:
    def __init__(self) -> None:
        self.t = 1796083200.0        # 2026-12-01T00:00:00Z

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def center(tmp_path):
    loop = asyncio.new_event_loop()
    cc = ContactCenter(load_config(default_config()), loop)
    cc.acd.clock = clock = Clock()
    cc.records = store = RecordStore(tmp_path / "cdr.db")
    try:
        yield cc, clock, store
    finally:
        store.close()
        loop.close()


def queue_log(store: RecordStore, call_id: str) -> list[dict]:
    store.flush(10)
    buf = io.StringIO()
    store.export("queue_log", "csv", buf)
    buf.seek(0)
    return [r for r in csv.DictReader(buf) if r["call_id"] == call_id]


def test_answered_call_wait_is_queue_entry_to_answer_and_talk_answer_to_end(center):
    cc, clock, store = center
    cc.run(cc.acd.registration, "1001", True)
    cc.run(cc.acd.sign_in, "1001")
    cc.run(cc.acd.enqueue, "c1", "support_voice")
    clock.t += 7.25                              # ringing the agent is part of the wait
    cc.run(cc.acd.answered, "c1", "1001")
    clock.t += 42.5
    cc.run(cc.acd.call_ended, "c1")
    rows = {r["event"]: r for r in queue_log(store, "c1")}
    assert (rows["answer"]["wait_s"], rows["answer"]["talk_s"]) == ("7.25", "")
    # the complete row repeats the answer's wait and has the talk time in its own column
    assert (rows["complete"]["wait_s"], rows["complete"]["talk_s"]) == ("7.25", "42.5")
    assert rows["enqueue"]["wait_s"] == "" and rows["offer"]["wait_s"] == ""
    assert rows["complete"]["at"] == "2026-12-01T00:00:49.750+00:00"
    assert cc.call_timing("c1") == (7.25, 42.5)            # what the CDR writer puts in wait_s / talk_s
    assert cc.call_timing("c1") == (None, None) and not cc.timing     # asked once, then forgotten


def test_abandoned_call_waits_until_the_caller_hangs_up(center):
    cc, clock, store = center
    cc.run(cc.acd.registration, "1001", True)
    cc.run(cc.acd.sign_in, "1001")
    cc.run(cc.acd.enqueue, "c1", "support_voice")
    clock.t += 3.5
    cc.run(cc.acd.caller_gone, "c1")
    rows = {r["event"]: r for r in queue_log(store, "c1")}
    assert (rows["abandon"]["wait_s"], rows["abandon"]["talk_s"]) == ("3.5", "")
    assert cc.call_timing("c1") == (3.5, None)


def test_an_overflowed_call_waited_in_each_queue_and_the_cdr_has_the_sum(center):
    cc, clock, store = center
    for agent in ("1001", "1003"):
        cc.run(cc.acd.registration, agent, True)
        cc.run(cc.acd.sign_in, agent)
    cc.run(cc.acd.set_state, "1003", "busy", "meeting")       # the video queue's only agent
    cc.run(cc.acd.enqueue, "c1", "support_video", 0, True)
    clock.t += 60                                # support_video's max wait: it overflows to support_voice
    cc.run(cc.acd.tick)
    clock.t += 2
    cc.run(cc.acd.answered, "c1", "1001")
    clock.t += 10
    cc.run(cc.acd.call_ended, "c1")
    rows = [(r["queue"], r["event"], r["wait_s"], r["talk_s"]) for r in queue_log(store, "c1")
            if r["event"] in ("overflow", "answer", "complete")]
    assert rows == [("support_video", "overflow", "60.0", ""), ("support_voice", "answer", "2.0", ""),
                    ("support_voice", "complete", "2.0", "10.0")]
    assert cc.call_timing("c1") == (62.0, 10.0)          # the CDR's wait: both queues


def test_export_help_says_what_wait_talk_and_hold_mean():
    out = subprocess.run([sys.executable, "-m", "softswitch.cli", "records", "export", "--help"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for line in MEANINGS.splitlines():
        assert " ".join(line.split()) in " ".join(out.stdout.split()), line
