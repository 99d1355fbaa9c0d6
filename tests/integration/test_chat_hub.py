"""ChatHub (softswitch/chat/hub.py) without sockets: connections that record what they are sent, a fake clock,
and real record stores (an SQLite file and a PostgreSQL server) for the transcripts and `records export`."""

from __future__ import annotations

import csv
import io
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.chat_router import ChatRouter
from softswitch.chat.frames import AGENT, VISITOR, FrameError, parse
from softswitch.chat.hub import ChatHub
from softswitch.records.store import RecordStore
from softswitch.settings.chat import ChatSettings, Concurrency
from tools.pgserver import PostgresNotFound, find_bindir, pg_server

SITE = "https://shop.example"


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


class Conn:
    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.closed: tuple | None = None

    def send(self, frame: dict) -> None:
        assert self.closed is None, f"sent after close: {frame}"
        json.dumps(frame)                       # what the shell will do with it
        self.frames.append(frame)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = self.closed or (code, reason)

    def of(self, kind: str) -> list[dict]:
        return [f for f in self.frames if f["type"] == kind]


def make_hub(records=None, **settings):
    clock = Clock()
    router = ChatRouter(clock, random.Random(0))
    router.add_queue("chat", "longest_idle", 600, 50)
    router.add_queue("billing", "longest_idle", 600, 50)
    router.add_agent("1001", {"chat": 0}, 3, 1, 0)
    router.add_agent("1002", {"chat": 0, "billing": 0}, 2, 0, 1)
    s = ChatSettings(origins=(SITE,), concurrency=Concurrency(3, 1), **settings)
    states = {"1001": "idle", "1002": "idle"}
    hub = ChatHub(s, router, clock, "n1", records, {"1001": "Alice", "1002": "Bob"}, states.get)
    return hub, clock


def visitor(hub, address="203.0.113.5"):
    assert hub.admit("chat", SITE, address) is None
    c = Conn()
    return hub.visitor_open(c, "chat", SITE, address, "https://shop.example/cart", ""), c


def test_origin_queue_and_address_admission():
    hub, _ = make_hub(sessions_per_address=2)
    assert hub.admit("chat", "https://evil.example", "1.2.3.4")[0] == 403
    assert hub.admit("chat", None, "1.2.3.4")[0] == 403
    assert hub.admit("chat", "http://node:8080", "1.2.3.4", ("http://node:8080",)) is None
    # origins compare normalised, as the click-to-dial widget's do: case and the default port do not matter
    assert hub.admit("chat", "HTTPS://Shop.Example:443", "1.2.3.6") is None
    assert hub.admit("chat", "http://node", "1.2.3.6", ("http://node:80",)) is None
    assert hub.admit("chat", "https://shop.example/path", "1.2.3.6")[0] == 403
    assert hub.admit("nope", SITE, "1.2.3.4")[0] == 404
    visitor(hub, "1.2.3.4")
    visitor(hub, "1.2.3.4")
    assert hub.admit("chat", SITE, "1.2.3.4")[0] == 429
    assert hub.admit("chat", SITE, "1.2.3.5") is None


def test_bad_frames_get_error_frames_and_the_chat_goes_on():
    hub, clock = make_hub(max_frame=1024, max_message=100)
    s, c = visitor(hub)
    bad = [b"\x00binary", "not json", "[1,2]", '{"type": 5}', '{"type": "shout"}', '{"type":"message"}',
           '{"type":"message","text":"' + "x" * 101 + '"}', '{"type":"message","text":"   "}',
           '{"type":"message","text":"hi","chat":"other"}', '{"type":"read","upto":-1}',
           '{"type":"typing","on":"yes"}', "[" * 1000, "x" * 5000]
    for data in bad:
        clock.t += 1                         # inside the rate
        hub.visitor_frame(s, data)
    errors = c.of("error")
    assert len(errors) == len(bad), c.frames
    assert any("too large" in e["error"] for e in errors) and any("not JSON" in e["error"] for e in errors)
    assert c.closed is None and s.id in hub.sessions and hub.counters["bad_frames"] == len(bad)
    hub.visitor_frame(s, json.dumps({"type": "message", "text": "still here\x00\u202e"}))
    assert c.of("message")[-1]["text"] == "still here"


def test_parse_raises_only_frame_error_on_any_text():
    for data in ("", "{}", '{"type":"end","x":1}', "\ud800", '"\\ud800"', '{"type":"message","text":"\\ud800"}',
                 "9" * 5000, '{"type":"read","upto":1e400}', '{"type":"read","upto":true}'):
        with pytest.raises(FrameError):
            parse(data, 4096, 100, VISITOR)


def test_three_chats_to_one_agent_isolated_with_marks():
    hub, clock = make_hub()
    agent, bob = Conn(), Conn()
    hub.agent_open("1001", agent)
    chats = [visitor(hub, f"198.51.100.{i}") for i in range(3)]
    assert [f["chat"] for f in agent.of("chat")] == [s.id for s, _ in chats]
    assert agent.of("capacity")[-1]["chats"] == sorted(s.id for s, _ in chats)
    for i, (s, c) in enumerate(chats):
        hub.visitor_frame(s, json.dumps({"type": "message", "text": f"hello from {i}"}))
        assert c.of("delivered")[-1]["upto"] == 1
    got = agent.of("message")
    assert [(m["chat"], m["text"]) for m in got] == [(s.id, f"hello from {i}") for i, (s, _) in enumerate(chats)]
    # the agent answers the second visitor only; nothing reaches the others
    s1, c1 = chats[1]
    hub.agent_frame("1001", agent, json.dumps({"type": "typing", "chat": s1.id, "on": True}))
    hub.agent_frame("1001", agent, json.dumps({"type": "message", "chat": s1.id, "text": "hi 1"}))
    hub.agent_frame("1001", agent, json.dumps({"type": "read", "chat": s1.id, "upto": 1}))
    assert c1.of("typing") == [{"type": "typing", "on": True}] and c1.of("message")[-1]["text"] == "hi 1"
    assert c1.of("read") == [{"type": "read", "upto": 1}]
    for s, c in (chats[0], chats[2]):
        assert [m["text"] for m in c.of("message")] == [f"hello from {chats.index((s, c))}"]
        assert not c.of("typing") and not c.of("read")
    hub.visitor_frame(s1, json.dumps({"type": "read", "upto": 2}))
    assert agent.of("read")[-1] == {"type": "read", "chat": s1.id, "upto": 2}
    # another agent may not touch these chats
    hub.agent_open("1002", bob)
    hub.agent_frame("1002", bob, json.dumps({"type": "message", "chat": s1.id, "text": "sneaky"}))
    assert bob.of("error")[-1]["error"] == "not a chat of yours"
    assert "sneaky" not in json.dumps(c1.frames)
    # a fourth goes to Bob (Alice is full)
    s4, c4 = visitor(hub, "198.51.100.9")
    assert c4.of("agent")[-1]["name"] == "Bob"


def test_flood_is_cut_off_and_the_address_banned():
    hub, clock = make_hub(rate=(5.0, 10.0), cut_off_after=20)
    agent = Conn()
    hub.agent_open("1001", agent)
    s, c = visitor(hub)
    for i in range(200):
        hub.visitor_frame(s, json.dumps({"type": "message", "text": f"spam {i}"}))
        if c.closed:
            break
    assert c.closed == (1000, "chat ended") and c.of("ended")[-1]["reason"] == "flood"
    assert len(agent.of("message")) == 10           # the burst, then nothing
    assert hub.counters["cut_off"] == 1 and s.id not in hub.sessions
    assert hub.admit("chat", SITE, "203.0.113.5")[0] == 429
    clock.t += 61
    assert hub.admit("chat", SITE, "203.0.113.5") is None


def test_transfer_to_agent_and_to_queue_and_refusals():
    hub, clock = make_hub()
    alice, bob = Conn(), Conn()
    hub.agent_open("1001", alice)
    hub.agent_open("1002", bob)
    s, c = visitor(hub)
    owner, other = (alice, bob) if s.agent_id == "1001" else (bob, alice)
    other_id = "1002" if owner is alice else "1001"
    hub.visitor_frame(s, json.dumps({"type": "message", "text": "my order"}))
    hub.agent_frame(s.agent_id, owner, json.dumps({"type": "transfer", "chat": s.id, "agent": other_id}))
    assert owner.of("removed")[-1]["chat"] == s.id and s.agent_id == other_id
    handed = other.of("chat")[-1]
    assert handed["transferred_from"] is not None and [m["text"] for m in handed["messages"]] == ["my order"]
    hub.agent_frame(other_id, other, json.dumps({"type": "transfer", "chat": s.id, "queue": "nowhere"}))
    assert "transfer refused" in other.of("error")[-1]["error"] and s.agent_id == other_id
    hub.agent_frame(other_id, other, json.dumps({"type": "transfer", "chat": s.id, "queue": "billing"}))
    assert s.queue == "billing" and s.agent_id == "1002"


def _export(store, fmt):
    out = io.StringIO()
    n = store.export("chats", fmt, out)
    return n, out.getvalue()


@pytest.fixture(scope="module")
def pg():
    try:
        find_bindir()
    except PostgresNotFound as exc:
        pytest.fail(str(exc), pytrace=False)
    with pg_server() as url:
        yield url


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_transcripts_are_records_and_export_as_chats(tmp_path, backend, request):
    url = f"sqlite:///{tmp_path}/cdr.db" if backend == "sqlite" else request.getfixturevalue("pg")
    store = RecordStore(url)
    try:
        hub, clock = make_hub(records=store)
        agent = Conn()
        queued, qc = visitor(hub, "192.0.2.1")             # nobody signed on yet: waits, then leaves
        clock.t += 4
        hub.visitor_gone(queued)
        hub.agent_open("1001", agent)
        s, c = visitor(hub, "192.0.2.2")
        clock.t += 1
        hub.visitor_frame(s, json.dumps({"type": "message", "text": "Hello, my parcel"}))
        clock.t += 2
        hub.agent_frame("1001", agent, json.dumps({"type": "message", "chat": s.id, "text": "Let me look, \"Jo\""}))
        hub.visitor_frame(s, json.dumps({"type": "read", "upto": 2}))
        clock.t += 3
        hub.visitor_gone(s)                                  # the tab closed
        assert agent.of("ended")[-1] == {"type": "ended", "chat": s.id, "reason": "visitor left"}
        store.flush(10)
        rows = {r["chat_id"]: r for r in store.chats()}
        assert rows[queued.id]["outcome"] == "abandoned" and rows[queued.id]["wait_s"] == pytest.approx(4)
        assert rows[queued.id]["end_reason"] == "visitor left" and rows[queued.id]["agent_id"] is None
        r = rows[s.id]
        assert (r["outcome"], r["end_reason"], r["agent_id"], r["agents"], r["messages"]) == \
            ("answered", "visitor left", "1001", ["1001"], 2)
        assert r["origin"] == SITE and r["page"] == "https://shop.example/cart"
        t = r["transcript"]
        assert [(m["from"], m["text"]) for m in t] == [("visitor", "Hello, my parcel"), ("agent", "Let me look, \"Jo\"")]
        assert t[0]["delivered_at"] is not None and t[1]["read_at"] == clock.t - 3
        n, text = _export(store, "csv")
        got = list(csv.DictReader(io.StringIO(text)))
        assert n == 2 and [g["chat_id"] for g in got] == [queued.id, s.id]
        assert json.loads(got[1]["transcript"])[1]["text"] == "Let me look, \"Jo\""
        assert got[1]["started_at"].endswith("+00:00")
        n, text = _export(store, "json")
        assert json.loads(text)[1]["agents"] == ["1001"]
    finally:
        store.close()


# any text or bytes a browser can send either parses into a checked frame or raises FrameError, nothing else
_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=12)
_frames = st.one_of(st.text(max_size=300), st.binary(max_size=100),
                    st.dictionaries(st.sampled_from(["type", "text", "on", "upto", "chat", "queue", "agent", "x"]),
                                    _json_values | st.sampled_from(["message", "typing", "read", "end",
                                                                    "transfer"]), max_size=5).map(json.dumps))


@settings(max_examples=400, deadline=None)
@given(_frames, st.sampled_from([VISITOR, AGENT]))
def test_fuzz_parse_returns_a_checked_frame_or_frame_error(data, kinds):
    try:
        f = parse(data, 1024, 200, kinds)
    except FrameError:
        return
    assert f["type"] in kinds and set(f) <= kinds[f["type"]] | {"type"}
    if f["type"] == "message":
        assert isinstance(f["text"], str) and 0 < len(f["text"]) <= 200 and "\x00" not in f["text"]
