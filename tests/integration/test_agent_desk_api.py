"""The agent desktop's API and settings without a browser: wrap-up codes in the YAML (strict, `file:line: key:
message`), the agent's last calls (GET /api/agents/me/calls) and the wrap-up of a call (POST
/api/calls/ID/wrap-up) against a real node and its SQLite record store, hostile input answered 4xx; the wrap-up
beside the CDR in RecordStore reads and exports; the telephone-event the WebRTC leg adds to its SDP."""

from __future__ import annotations

import io
import json
import textwrap
import urllib.request

import pytest

from softswitch.api.agentdesk import NOTES_MAX, caller_of as caller_parts
from softswitch.records.store import CDR_COLUMNS, RecordStore
from softswitch.settings import ConfigError, parse_config
from softswitch.b2bua.webrtc import _add_telephone_event, _telephone_event_pt
from tests.support.cc import Api, cc_node
from tests.integration.test_records import pg_server_url, pg_url  # noqa: F401  (fixtures: the same PostgreSQL server)
from tests.integration.test_settings import BASE

CODES = ', dispositions: [sale, "no sale", call back later]'


def problems(text: str) -> list[tuple]:
    with pytest.raises(ConfigError) as exc:
        parse_config(textwrap.dedent(text), "cc.yaml")
    return exc.value.problems


def test_dispositions_in_the_yaml_are_validated_with_file_line_and_key():
    cfg = parse_config(BASE.replace("{name: q1}", "{name: q1, dispositions: [sale, no sale]}"), "cc.yaml")
    assert cfg.queue("q1").dispositions == ("sale", "no sale")
    assert parse_config(BASE, "cc.yaml").queue("q1").dispositions == ()
    text = BASE.replace("{name: q1}", "{name: q1, dispositions: [sale, Sale, \"bad/code\", \"\"]}")
    got = problems(text)
    assert [(line, key) for _, line, key, _ in got] == [(8, "skill_queues[0].dispositions[1]"),
                                                        (8, "skill_queues[0].dispositions[2]"),
                                                        (8, "skill_queues[0].dispositions[3]")], got
    assert "duplicate disposition code 'Sale'" in got[0][3] and "letters, digits" in got[1][3]
    assert "must not be empty" in got[2][3]
    assert str(ConfigError(got)).startswith("cc.yaml:8: skill_queues[0].dispositions[1]: duplicate")
    (p,) = problems(BASE.replace("{name: q1}", "{name: q1, dispositions: sale}"))
    assert p[1:3] == (8, "skill_queues[0].dispositions") and "expected a list" in p[3]
    many = ", ".join(f"c{i}" for i in range(51))
    (p,) = problems(BASE.replace("{name: q1}", f"{{name: q1, dispositions: [{many}]}}"))
    assert "at most 50" in p[3]


def test_caller_number_and_name_from_the_cdr():
    assert caller_parts('"Ann Lee" <sip:5551234@carrier.example>;tag=x') == ("5551234", "Ann Lee")
    assert caller_parts("<sip:+4930123@gw>") == ("+4930123", "")     # E.164 keeps its plus, as in the export
    assert caller_parts("sip:5559000@127.0.0.1:5060") == ("5559000", "")
    assert caller_parts("5559000 <sip:5559000@h>") == ("5559000", "")
    assert caller_parts(None) == ("", "") and caller_parts("garbage") == ("", "")
    # hostile: only the first 1024 characters are read, the patterns are bounded (no backtracking blow-up)
    assert caller_parts('"' + "\\" * 50_000 + "<" * 50_000) == ("", "")
    assert caller_parts("<" * 2000 + "sip:5551@x") == ("", "")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    return str(tmp_path / "cdr.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_record_store_keeps_the_latest_wrapup_beside_the_cdr(store_url):
    with RecordStore(store_url) as s:
        for i, agent in enumerate(("1001", "1002", "1001")):
            s.add_cdr({"call_id": f"c{i}", "agent_id": agent, "queue": "support", "started_at": 100.0 + i,
                       "caller": f"<sip:555{i}@x>", "outcome": "answered"})
        s.add_wrapup("c0", "1001", "sale", "first try").result(5)
        s.add_wrapup("c0", "1001", "no sale", "changed my mind").result(5)
        with pytest.raises(ValueError):
            s.add_wrapup("", "1001", "sale", "")
        mine = s.agent_cdrs("1001", 10)
        assert [(r["call_id"], r["disposition"], r["notes"]) for r in mine] == [
            ("c2", None, None), ("c0", "no sale", "changed my mind")]
        assert [r["call_id"] for r in s.agent_cdrs("1001", 1)] == ["c2"]
        buf = io.StringIO()
        assert s.export("cdr", "json", buf) == 3
        rows = {r["call_id"]: r for r in json.loads(buf.getvalue())}
        assert (rows["c0"]["disposition"], rows["c0"]["notes"]) == ("no sale", "changed my mind")
        assert rows["c1"]["disposition"] is None
        assert tuple(s.cdrs()[0]) == CDR_COLUMNS    # cdrs() is unchanged: the wrap-up is only in the export


def _raw(api: Api, method: str, path: str, data: bytes):
    req = urllib.request.Request(api.base + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_wrapup_and_history_api(tmp_path):
    with cc_node(tmp_path, support_extra=CODES) as (nt, sip_port, http_port):
        # calls as the node records them (its own store): alice took c1 (support) and placed c2; bob took c3
        for call_id, agent, queue, at in (("c1", "1001", "support", 1.0), ("c2", "1001", "", 2.0),
                                          ("c3", "1002", "support", 3.0)):
            nt.node.records.add_cdr({"call_id": call_id, "agent_id": agent, "queue": queue, "started_at": at,
                                     "caller": '"Ann" <sip:5551000@gw>', "called": "4001", "talk_s": 12.5,
                                     "outcome": "answered" if queue else "outbound"})
        nt.node.records.flush(5)
        alice, bob, sam = Api(http_port), Api(http_port), Api(http_port)
        alice.login("acme_alice"), bob.login("acme_bob"), sam.login("acme_sam")

        _, body = alice.call("GET", "/api/agents/me/calls", expect=200)
        assert [c["call_id"] for c in body["calls"]] == ["c2", "c1"]
        assert body["calls"][1]["caller"] == "5551000" and body["calls"][1]["caller_name"] == "Ann"
        assert "agent_id" not in body["calls"][0] and "recording" not in body["calls"][0]
        for q in ("limit=0", "limit=51", "limit=x", "limit=" + "9" * 5000):
            assert alice.call("GET", f"/api/agents/me/calls?{q}")[0] == 400, q
        assert alice.call("GET", "/api/agents/1002/calls")[0] == 403          # not another agent's
        assert sam.call("GET", "/api/agents/1002/calls", expect=200)[1]["calls"][0]["call_id"] == "c3"
        assert sam.call("GET", "/api/agents/9999/calls")[0] == 404
        assert Api(http_port).call("GET", "/api/agents/me/calls")[0] == 401

        # the wrap-up: a code of the call's queue, notes; checked, stored, shown in the history and export
        ok = {"disposition": "call back later", "notes": "  Tuesday 10:00  "}
        _, saved = alice.call("POST", "/api/calls/c1/wrap-up", ok, expect=200)
        assert saved == {"call_id": "c1", "queue": "support", "disposition": "call back later",
                         "notes": "Tuesday 10:00", "saved": True}
        status, err = alice.call("POST", "/api/calls/c1/wrap-up", {"disposition": "won"})
        assert status == 400 and "allowed: sale, no sale, call back later" in err["error"], err
        # an outbound call has no queue: notes only
        assert alice.call("POST", "/api/calls/c2/wrap-up", {"notes": "left a message"})[0] == 200
        assert alice.call("POST", "/api/calls/c2/wrap-up", {"disposition": "sale"})[0] == 400
        # not alice's call, or no such call: the same answer (nothing learnt about other agents' calls)
        theirs, none = (alice.call("POST", f"/api/calls/{c}/wrap-up", ok)[1] for c in ("c3", "nope"))
        assert theirs == none
        assert alice.call("POST", "/api/calls/c3/wrap-up", ok)[0] == 404
        assert sam.call("POST", "/api/calls/c3/wrap-up", ok)[0] == 404       # the agent who took it, only
        for bad in ({}, {"disposition": "", "notes": "   "}, {"disposition": 5}, {"notes": ["x"]},
                    {"notes": "x" * (NOTES_MAX + 1)}, [1, 2], "text", None):
            assert alice.call("POST", "/api/calls/c1/wrap-up", bad)[0] == 400, bad
        for raw in (b"{", b"\xff\xfe", b""):
            assert _raw(alice, "POST", "/api/calls/c1/wrap-up", raw)[0] == 400, raw
        assert alice.call("POST", "/api/calls/" + "x" * 300 + "/wrap-up", ok)[0] == 400
        assert Api(http_port).call("POST", "/api/calls/c1/wrap-up", ok)[0] == 401

        _, body = alice.call("GET", "/api/agents/me/calls", expect=200)
        got = {c["call_id"]: (c["disposition"], c["notes"]) for c in body["calls"]}
        assert got == {"c1": ("call back later", "Tuesday 10:00"), "c2": ("", "left a message")}
        # the agent page learns the codes of the agent's queues with its config
        _, cfg = bob.call("GET", "/agent/config", expect=200)
        assert cfg["dispositions"] == {"support": ["sale", "no sale", "call back later"], "sales": []}


OFFER = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
         "m=audio 9 UDP/TLS/RTP/SAVPF 96 0 8\r\na=mid:0\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
         "a=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n"
         "m=video 9 UDP/TLS/RTP/SAVPF 97 101\r\na=mid:1\r\na=rtpmap:97 VP8/90000\r\na=rtpmap:101 H264/90000\r\n")


def test_webrtc_sdp_gets_a_telephone_event_no_bundled_section_uses():
    assert _telephone_event_pt(OFFER) is None
    text, pt = _add_telephone_event(OFFER)
    assert pt == 126                                    # 101 is the video's
    assert "m=audio 9 UDP/TLS/RTP/SAVPF 96 0 8 126\r\n" in text and _telephone_event_pt(text) == 126
    audio = text.split("m=video")[0]
    assert "a=rtpmap:126 telephone-event/8000\r\na=fmtp:126 0-16\r\na=sendrecv" in audio
    assert text.split("m=video")[1] == OFFER.split("m=video")[1]
    # an answer takes the browser's payload type; a rejected audio line gets none
    assert _add_telephone_event(OFFER, 110)[1] == 110
    assert _add_telephone_event(OFFER.replace("m=audio 9", "m=audio 0"))[1] is None
