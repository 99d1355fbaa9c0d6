"""Blind transfers with real phones: a pjsua2 agent's REFER (RFC 3515, sipfrag NOTIFYs) and the API's
POST /api/calls/{id}/transfer to a queue (priority and first arrival kept), to an idle agent, and to a busy
agent (the call waits in that agent's queue). Audio is checked on the final pair."""

from __future__ import annotations

import json
import sqlite3
import time

import pjsua2 as pj
import pytest

from softswitch.api.wallboard_data import call_rows
from softswitch.phone.softphone import PhoneCall
from tests.conftest import free_port
from tests.support.cc import Api, cc_node, wait_for
from tests.support.sipclient import UdpClient
from tests.integration.test_audio import segment, tone_levels
from tests.integration.test_calls import agent_phone, connected, ended, hang_up, signed_in


@pytest.fixture(scope="module")
def phones():
    from tools.softphone import Softphones
    return Softphones.get()


def caller(phones, port, user, tone_hz=440):
    return phones.account(user, "unused", f"127.0.0.1:{port}", domain="cc.test", register=False,
                          auto_answer=False, tone_hz=tone_hz)


def call_with(phones, acc, uri, headers=()):
    """A call with extra INVITE headers (e.g. Priority)."""
    c = PhoneCall(acc)
    op = pj.CallOpParam(True)
    for name, value in headers:
        h = pj.SipHeader()
        h.hName, h.hValue = name, value
        op.txOption.headers.append(h)
    acc.calls.append(c.record)
    phones.keep.append(c)
    c.makeCall(uri, op)
    return c.record


def hostile_refers(nt, port, leg_key, remote_tag):
    """REFERs a broken or malicious phone could send in an agent's dialog: each gets its 4xx/5xx at once and
    changes nothing. Returns the statuses in order."""
    call_id, our_tag = leg_key
    client = UdpClient(("127.0.0.1", port))
    out = []
    try:
        for n, refer_to in enumerate((None, "<sip:sales@x>\r\nRefer-To: <sip:support@x>", "<<<not an address",
                                      "<tel:+15550100>", "<sip:x@h?Replaces=abc%3Bto-tag%3Dt>",
                                      "<sip:x@h?Replaces=nope%3Bto-tag%3Dt%3Bfrom-tag%3Df>", "<sip:nowhere@h>")):
            lines = [f"REFER sip:softswitch@127.0.0.1:{port} SIP/2.0",
                     f"Via: SIP/2.0/UDP {client.addr[0]}:{client.addr[1]};branch=z9hG4bK-hr{n}",
                     "Max-Forwards: 70", f"From: <sip:70001@cc.test>;tag={remote_tag}",
                     f"To: <sip:softswitch@cc.test>;tag={our_tag}", f"Call-ID: {call_id}", f"CSeq: {900 + n} REFER",
                     "Contact: <sip:70001@127.0.0.1:9>"]
            if refer_to is not None:
                lines.append(f"Refer-To: {refer_to}")
            client.send(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
            resp = client.recv(3.0)
            out.append(resp.status if resp is not None else None)
    finally:
        client.close()
    return out


def queue_log(tmp_path, call_id):
    db = sqlite3.connect(str(tmp_path / "cc.db"))
    try:
        return db.execute("SELECT event, queue, agent_id, old, new FROM queue_log WHERE call_id = ? ORDER BY id",
                          (call_id,)).fetchall()
    finally:
        db.close()


def cdr_extra(tmp_path, call_id):
    db = sqlite3.connect(str(tmp_path / "cc.db"))
    try:
        row = db.execute("SELECT agent_id, extra FROM cdr WHERE call_id = ?", (call_id,)).fetchone()
    finally:
        db.close()
    return row and (row[0], json.loads(row[1]) if row[1] else None)


def test_refer_from_the_agent_phone_moves_the_customer_to_another_queue(phones, tmp_path):
    with cc_node(tmp_path, wrap_up="1s") as (nt, port, http):
        alice_ph = agent_phone(phones, "70001", port, tone_hz=1000)
        carol_ph = agent_phone(phones, "70003", port, tone_hz=2000)
        cust = caller(phones, port, "5553001")
        try:
            alice, carol = signed_in(http, "acme_alice"), signed_in(http, "acme_carol")
            carol.call("POST", "/api/agents/me/state", {"state": "busy"}, expect=200)
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: alice_ph.calls and connected(alice_ph.calls[-1]) and connected(rec), 10)
            phones.pump(0.5)
            leg = alice_ph.calls[-1]
            (call_id,) = nt.call(lambda: list(nt.node.calls.calls))
            key, remote = nt.call(lambda: next((k, l.dialog.remote_tag) for k, l in nt.node.calls.dialogs.items()
                                              if l.agent_id == "1001"))
            assert hostile_refers(nt, port, key, remote) == [400, 400, 400, 416, 400, 404, 404]
            assert connected(leg) and connected(rec) and nt.call(lambda: nt.node.calls.stats["transfers"]) == 0
            leg.call.xfer(f"sip:nowhere@127.0.0.1:{port}", pj.CallOpParam(True))     # refused, call goes on
            assert phones.wait(lambda: leg.transfer_status, 5)
            assert leg.transfer_status == [(404, True)] and connected(leg) and connected(rec)
            leg.transfer_status.clear()
            leg.call.xfer(f"sip:sales@127.0.0.1:{port}", pj.CallOpParam(True))
            # 202, then NOTIFY 100 and a final NOTIFY 200 (sipfrag); the switch then hangs the agent up
            assert phones.wait(lambda: any(final for _, final in leg.transfer_status), 5), leg.transfer_status
            assert [c for c, _ in leg.transfer_status][-1] == 200
            assert nt.call(lambda: nt.node.calls.stats["refer_notifies"]) == 2        # 100 Trying, 200 OK
            assert phones.wait(lambda: ended(leg), 5)
            assert connected(rec)                                     # the customer stays, on hold in sales
            assert wait_for(lambda: alice.state()["state"] in ("wrap_up", "idle"), 5, phones)
            entry = nt.call(lambda: nt.node.center.acd.entries[call_id])
            assert entry.queue == "sales" and not entry.ringing
            carol.call("POST", "/api/agents/me/state", {"state": "idle"}, expect=200)
            assert phones.wait(lambda: carol_ph.calls and connected(carol_ph.calls[-1]), 10)
            phones.pump(2.5)                                          # the final pair talks
            hang_up(rec)
            assert phones.wait(lambda: ended(rec) and ended(carol_ph.calls[-1]), 5)
            phones.pump(0.3)
            rms, freq = segment(rec.recording, -1.5, -0.2)
            assert rms > 300 and abs(freq - 2000) < 30, (rms, freq)            # the customer hears carol
            rms, freq = segment(carol_ph.calls[-1].recording, -1.5, -0.2)
            assert rms > 300 and abs(freq - 440) < 30, (rms, freq)             # carol hears the customer
            assert wait_for(lambda: cdr_extra(tmp_path, call_id), 5, phones)
            agent, extra = cdr_extra(tmp_path, call_id)
            assert agent == "1003"
            (t,) = extra["transfers"]
            assert (t["from_agent"], t["kind"], t["to"], t["by"]) == ("1001", "queue", "sales", "refer")
            log = queue_log(tmp_path, call_id)
            assert ("transfer", "sales", "1001", "support", "queue/sales") in log
            assert [e for e, *_ in log if e in ("answer", "transfer", "complete")] == \
                ["answer", "transfer", "complete", "answer", "complete"]
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(alice_ph)
            phones.remove(carol_ph)


def test_api_transfers_keep_priority_and_place_and_go_through_the_acd_to_agents(phones, tmp_path):
    with cc_node(tmp_path, wrap_up="1s") as (nt, port, http):
        alice_ph = agent_phone(phones, "70001", port, tone_hz=1000)
        bob_ph = agent_phone(phones, "70002", port, tone_hz=1500)
        carol_ph = agent_phone(phones, "70003", port, tone_hz=2000)
        first = caller(phones, port, "5553002")
        later = caller(phones, port, "5553003", tone_hz=600)
        acd = lambda: nt.node.center.acd          # noqa: E731
        try:
            alice, carol = signed_in(http, "acme_alice"), signed_in(http, "acme_carol")
            bob = signed_in(http, "acme_bob")
            bob.call("POST", "/api/agents/me/state", {"state": "busy"}, expect=200)
            carol.call("POST", "/api/agents/me/state", {"state": "busy"}, expect=200)
            rec = call_with(phones, first, f"sip:4001@127.0.0.1:{port}", [("Priority", "urgent")])
            assert phones.wait(lambda: alice_ph.calls and connected(alice_ph.calls[-1]) and connected(rec), 10)
            (call_id,) = nt.call(lambda: list(nt.node.calls.calls))
            rec2 = later.call(f"sip:4002@127.0.0.1:{port}")         # arrives later, waits in sales
            assert phones.wait(lambda: connected(rec2), 5)
            assert wait_for(lambda: nt.call(lambda: len(acd().entries)) == 1, 5, phones)
            path = f"/api/calls/{call_id}/transfer"
            # refusals: not one's own call, an unknown target, a bad body
            assert carol.call("POST", path, {"to": "queue:sales"})[0] == 403
            assert alice.call("POST", path, {"to": "queue:nowhere"})[0] == 404
            assert alice.call("POST", path, {"to": 5})[0] == 400
            assert alice.call("POST", "/api/calls/nope/transfer", {"to": "sales"})[0] == 404
            st, body = alice.call("POST", path, {"to": "queue:sales"}, expect=200)
            assert body["kind"] == "queue" and body["queue"] == "sales"
            assert phones.wait(lambda: ended(alice_ph.calls[-1]), 5)
            e = nt.call(lambda: acd().entries[call_id])
            assert (e.queue, e.priority) == ("sales", 1)
            assert nt.call(lambda: acd().position(call_id)) == 1        # ahead of the caller who waited
            phones.pump(0.5)
            assert connected(rec)
            # to an idle agent, by a supervisor: carol takes it first from the queue, then gives it to bob
            carol.call("POST", "/api/agents/me/state", {"state": "idle"}, expect=200)
            assert phones.wait(lambda: carol_ph.calls and connected(carol_ph.calls[-1]), 10)
            assert nt.call(lambda: acd().talking[call_id][0]) == "1003"
            carol.call("POST", "/api/agents/me/state", {"state": "busy"}, expect=409)   # talking
            bob.call("POST", "/api/agents/me/state", {"state": "idle"}, expect=200)
            assert phones.wait(lambda: bob_ph.calls and connected(bob_ph.calls[-1]), 10)  # the later caller
            sam = Api(http)
            sam.login("acme_sam")
            assert wait_for(lambda: bob.state()["state"] == "talking", 5, phones)
            hang_up(rec2)
            assert wait_for(lambda: bob.state()["state"] == "idle", 8, phones)
            sam.call("POST", path, {"to": "agent:1002"}, expect=200)
            assert phones.wait(lambda: len(bob_ph.calls) == 2 and connected(bob_ph.calls[-1]), 10)
            assert phones.wait(lambda: ended(carol_ph.calls[-1]), 5)
            assert nt.call(lambda: acd().talking[call_id][0]) == "1002"
            row = next(c for c in sam.call("GET", "/api/calls", expect=200)[1] if c["id"] == call_id)
            assert (row["agent_id"], row["transferred"]) == ("1002", 2)
            _, active = nt.call(lambda: call_rows(nt.node.calls, acd(), 0.0))
            assert [r["transferred"] for r in active if r["id"] == call_id] == [2]     # the wallboard's list
            # to a busy agent: the call waits in that agent's queue (alice serves support only)
            alice.call("POST", "/api/agents/me/state", {"state": "busy"}, expect=200)
            bob.call("POST", path, {"to": "70001"}, expect=200)          # alice, named by her softphone
            assert phones.wait(lambda: ended(bob_ph.calls[-1]), 5)
            e = nt.call(lambda: acd().entries[call_id])
            assert (e.queue, e.priority, e.ringing) == ("support", 1, {})
            alice.call("POST", "/api/agents/me/state", {"state": "idle"}, expect=200)
            assert phones.wait(lambda: len(alice_ph.calls) == 2 and connected(alice_ph.calls[-1]), 10)
            phones.pump(2.5)
            hang_up(rec)
            assert phones.wait(lambda: ended(rec) and ended(alice_ph.calls[-1]), 5)
            phones.pump(0.3)
            rms, freq = segment(rec.recording, -1.5, -0.2)
            assert rms > 300 and abs(freq - 1000) < 30, (rms, freq)            # the customer hears alice again
            assert wait_for(lambda: cdr_extra(tmp_path, call_id), 5, phones)
            agent, extra = cdr_extra(tmp_path, call_id)
            assert agent == "1001"
            assert [(t["from_agent"], t["kind"], t["to"]) for t in extra["transfers"]] == [
                ("1001", "queue", "sales"), ("1003", "agent", "1002"), ("1002", "agent", "1001")]
        finally:
            for a in (first, later):
                phones.remove(a, unregister=False)
            for a in (alice_ph, bob_ph, carol_ph):
                phones.remove(a)


def test_consult_then_conference_then_the_agent_leaves_and_the_others_talk_on(phones, tmp_path):
    with cc_node(tmp_path, wrap_up="1s") as (nt, port, http):
        alice_ph = agent_phone(phones, "70001", port, tone_hz=1000)
        carol_ph = agent_phone(phones, "70003", port, tone_hz=2000)
        cust = caller(phones, port, "5553004")
        acd = lambda: nt.node.center.acd          # noqa: E731
        try:
            alice, carol = signed_in(http, "acme_alice"), signed_in(http, "acme_carol")
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: alice_ph.calls and connected(alice_ph.calls[-1]) and connected(rec), 10)
            (call_id,) = nt.call(lambda: list(nt.node.calls.calls))
            base = f"/api/calls/{call_id}"
            assert alice.call("POST", base + "/swap")[0] == 409                      # no consult yet
            assert alice.call("POST", base + "/consult", {"to": "queue:sales"})[0] == 501
            assert carol.call("POST", base + "/consult", {"to": "agent:1003"})[0] == 403
            st, body = alice.call("POST", base + "/consult", {"to": "agent:1003"}, expect=200)
            assert body["consult"] == "calling"
            assert phones.wait(lambda: carol_ph.calls and connected(carol_ph.calls[-1]), 10)
            assert wait_for(lambda: nt.call(lambda: nt.node.calls.calls[call_id].consult.mode) == "talking", 5,
                            phones)
            a = alice.state()
            assert (a["state"], a["consult"]) == ("talking", True)
            sam = Api(http)
            sam.login("acme_sam")
            row = next(c for c in sam.call("GET", "/api/calls", expect=200)[1] if c["id"] == call_id)
            assert row["consulting"] == "talking"
            _, active = nt.call(lambda: call_rows(nt.node.calls, acd(), 0.0))
            assert [r["consulting"] for r in active if r["id"] == call_id] == ["talking"]   # the wallboard
            assert carol.state()["state"] == "talking"
            marks = {"consult": time.monotonic()}
            phones.pump(1.5)
            alice.call("POST", base + "/conference", expect=200)
            marks["conference"] = time.monotonic()
            phones.pump(1.5)
            alice_ph.calls[-1].hangup()                                              # the agent leaves
            assert phones.wait(lambda: ended(alice_ph.calls[-1]), 5)
            marks["left"] = time.monotonic()
            phones.pump(2.0)
            assert connected(rec) and connected(carol_ph.calls[-1])
            assert nt.call(lambda: acd().talking[call_id][0]) == "1003"
            assert wait_for(lambda: alice.state()["state"] in ("wrap_up", "idle"), 5, phones)
            assert alice.state()["consult"] is False
            hang_up(rec)
            assert phones.wait(lambda: ended(rec) and ended(carol_ph.calls[-1]), 5)
            phones.pump(0.3)
            c0, k0 = rec.answered_at, carol_ph.calls[-1].answered_at

            def levels(record, t0, mark, span=0.9):
                start = marks[mark] - t0 + 0.4
                return tone_levels(record.recording, start, start + span)
            held = levels(rec, c0, "consult")
            assert held[1000] < 300 and held[2000] < 300, held          # on hold: neither agent is heard
            assert levels(carol_ph.calls[-1], k0, "consult")[1000] > 1000        # carol hears alice
            assert levels(carol_ph.calls[-1], k0, "consult")[440] < 300          # not the customer
            conf = levels(rec, c0, "conference")
            assert conf[1000] > 1000 and conf[2000] > 1000, conf            # everyone hears everyone
            assert levels(carol_ph.calls[-1], k0, "conference")[440] > 1000
            after = levels(rec, c0, "left", 1.2)
            assert after[2000] > 1000 and after[1000] < 300, after         # customer and carol talk on
            assert levels(carol_ph.calls[-1], k0, "left", 1.2)[440] > 1000
            assert wait_for(lambda: cdr_extra(tmp_path, call_id), 5, phones)
            agent, extra = cdr_extra(tmp_path, call_id)
            (t,) = extra["transfers"]
            assert agent == "1003" and (t["from_agent"], t["kind"], t["to"], t["conference"]) == \
                ("1001", "attended", "1003", True)
            assert ("transfer", "support", "1001", "support", "agent/1003") in queue_log(tmp_path, call_id)
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(alice_ph)
            phones.remove(carol_ph)


def test_attended_transfer_from_the_agent_phone_with_replaces(phones, tmp_path):
    with cc_node(tmp_path, wrap_up="1s") as (nt, port, http):
        alice_ph = agent_phone(phones, "70001", port, tone_hz=1000)
        carol_ph = agent_phone(phones, "70003", port, tone_hz=2000)
        cust = caller(phones, port, "5553005")
        acd = lambda: nt.node.center.acd          # noqa: E731
        try:
            alice, carol = signed_in(http, "acme_alice"), signed_in(http, "acme_carol")
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: alice_ph.calls and connected(alice_ph.calls[-1]) and connected(rec), 10)
            (call_id,) = nt.call(lambda: list(nt.node.calls.calls))
            first = alice_ph.calls[-1]
            first.call.setHold(pj.CallOpParam(True))           # the phone holds the customer: music on hold
            phones.pump(2.0)
            held_at = time.monotonic()
            # the agent's phone calls carol while talking with the customer: a consult, not refused
            second = alice_ph.call(f"sip:70003@127.0.0.1:{port}")
            assert phones.wait(lambda: connected(second) and carol_ph.calls and connected(carol_ph.calls[-1]), 10), \
                second.states
            consult_id = nt.call(lambda: next(c for c in nt.node.calls.calls if c != call_id))
            assert carol.state()["state"] == "talking" and alice.state()["consult"] is True
            phones.pump(0.5)
            first.call.xferReplaces(second.call, pj.CallOpParam(True))
            assert phones.wait(lambda: any(final for _, final in first.transfer_status), 5), first.transfer_status
            assert first.transfer_status[-1][0] == 200
            assert phones.wait(lambda: ended(first) and ended(second), 5)
            assert connected(rec) and connected(carol_ph.calls[-1])
            assert nt.call(lambda: acd().talking[call_id][0]) == "1003"
            assert wait_for(lambda: alice.state()["state"] in ("wrap_up", "idle"), 5, phones)
            assert alice.state()["consult"] is False and carol.state()["state"] == "talking"
            phones.pump(2.5)
            hang_up(rec)
            assert phones.wait(lambda: ended(rec) and ended(carol_ph.calls[-1]), 5)
            phones.pump(0.3)
            rms, freq = segment(rec.recording, -1.5, -0.2)
            assert rms > 300 and abs(freq - 2000) < 30, (rms, freq)            # the customer hears carol
            rms, freq = segment(carol_ph.calls[-1].recording, -1.5, -0.2)
            assert rms > 300 and abs(freq - 440) < 30, (rms, freq)             # carol hears the customer
            t = held_at - rec.answered_at
            moh = tone_levels(rec.recording, t - 1.3, t - 0.1, freqs=(1000, 261, 329, 392, 523))
            assert moh[1000] < 300 and max(moh[f] for f in (261, 329, 392, 523)) > 300, moh   # music, not alice
            assert wait_for(lambda: cdr_extra(tmp_path, call_id) and cdr_extra(tmp_path, consult_id), 5, phones)
            agent, extra = cdr_extra(tmp_path, call_id)
            (t,) = extra["transfers"]
            assert agent == "1003" and (t["from_agent"], t["kind"], t["by"]) == ("1001", "attended", "refer")
            _, extra2 = cdr_extra(tmp_path, consult_id)
            assert extra2["transfers"][0] == {**extra2["transfers"][0], "kind": "replaced", "into": call_id}
            assert wait_for(lambda: carol.state()["state"] in ("wrap_up", "idle"), 5, phones)
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(alice_ph)
            phones.remove(carol_ph)


def test_refer_with_refer_sub_false_gets_no_notify_and_reaches_an_idle_agent(phones, tmp_path):
    with cc_node(tmp_path, wrap_up="1s") as (nt, port, http):
        alice_ph = agent_phone(phones, "70001", port, tone_hz=1000)
        carol_ph = agent_phone(phones, "70003", port, tone_hz=2000)
        cust = caller(phones, port, "5553006")
        try:
            signed_in(http, "acme_alice"), signed_in(http, "acme_carol")
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: alice_ph.calls and connected(alice_ph.calls[-1]) and connected(rec), 10)
            leg = alice_ph.calls[-1]
            # a bare in-dialog REFER (pjsua's own transfer would wait for NOTIFYs): RFC 4488 Refer-Sub: false
            prm = pj.CallSendRequestParam()
            prm.method = "REFER"
            for name, value in (("Refer-To", f"<sip:1003@127.0.0.1:{port}>"), ("Refer-Sub", "false")):
                h = pj.SipHeader()
                h.hName, h.hValue = name, value
                prm.txOption.headers.append(h)
            leg.call.sendRequest(prm)
            assert phones.wait(lambda: ended(leg), 5)                          # the switch hangs the agent up
            assert phones.wait(lambda: carol_ph.calls and connected(carol_ph.calls[-1]), 10)   # carol, by id
            stats = nt.call(lambda: dict(nt.node.calls.stats))
            assert (stats["transfers"], stats["refer_notifies"]) == (1, 0)
            assert connected(rec)
            hang_up(rec)
            assert phones.wait(lambda: ended(carol_ph.calls[-1]), 5)
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(alice_ph)
            phones.remove(carol_ph)


def test_api_blind_transfer_to_a_number_rings_its_phone_and_an_unregistered_one_is_refused(phones, tmp_path):
    with cc_node(tmp_path, wrap_up="1s") as (nt, port, http):
        alice_ph = agent_phone(phones, "70001", port, tone_hz=1000)
        far_ph = agent_phone(phones, "70004", port, tone_hz=2000)         # a phone, dialled by number
        cust = caller(phones, port, "5553008")
        try:
            alice = signed_in(http, "acme_alice")
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: alice_ph.calls and connected(alice_ph.calls[-1]) and connected(rec), 10)
            (call_id,) = nt.call(lambda: list(nt.node.calls.calls))
            path = f"/api/calls/{call_id}/transfer"
            st, body = alice.call("POST", path, {"to": "number:70002"})       # bob's phone is not registered
            assert st == 404 and "no outbound trunk" in body["error"]
            assert connected(alice_ph.calls[-1])                              # nothing changed
            alice.call("POST", path, {"to": "number:70004"}, expect=200)
            assert phones.wait(lambda: ended(alice_ph.calls[-1]), 5)
            assert phones.wait(lambda: far_ph.calls and connected(far_ph.calls[-1]), 10)
            assert wait_for(lambda: alice.state()["state"] in ("wrap_up", "idle"), 5, phones)
            phones.pump(2.5)
            hang_up(rec)
            assert phones.wait(lambda: ended(rec) and ended(far_ph.calls[-1]), 5)
            phones.pump(0.3)
            rms, freq = segment(rec.recording, -1.5, -0.2)
            assert rms > 300 and abs(freq - 2000) < 30, (rms, freq)
            rms, freq = segment(far_ph.calls[-1].recording, -1.5, -0.2)
            assert rms > 300 and abs(freq - 440) < 30, (rms, freq)
            assert wait_for(lambda: cdr_extra(tmp_path, call_id), 5, phones)
            assert cdr_extra(tmp_path, call_id)[1]["transfers"][0]["kind"] == "number"
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(alice_ph)
            phones.remove(far_ph)


def test_api_blind_transfer_to_an_external_number_goes_out_through_the_trunks(phones, tmp_path):
    from tests.integration.test_trunk_outbound import Carrier, trunks_yaml
    from tests.support.sipp import SIPP
    assert SIPP is not None, "sipp missing: run tools/install-sysdeps.sh"
    a_port, b_port = free_port(), free_port()
    a = Carrier(tmp_path, "a", "trunk_503.xml", a_port)
    b = Carrier(tmp_path, "b", "trunk_answers.xml", b_port)
    try:
        with cc_node(tmp_path, phones=trunks_yaml(a_port, b_port)) as (nt, port, http):
            alice_ph = agent_phone(phones, "70001", port, tone_hz=1000)
            cust = caller(phones, port, "5553009")
            try:
                alice = signed_in(http, "acme_alice")
                rec = cust.call(f"sip:4001@127.0.0.1:{port}")
                assert phones.wait(lambda: alice_ph.calls and connected(alice_ph.calls[-1]) and connected(rec), 10)
                (call_id,) = nt.call(lambda: list(nt.node.calls.calls))
                assert alice.call("POST", f"/api/calls/{call_id}/transfer", {"to": "+4930123456"},
                                  expect=200)[1]["kind"] == "number"
                assert phones.wait(lambda: ended(alice_ph.calls[-1]), 5)
                # carrier_a refuses (503), carrier_b challenges then answers: the customer talks to it
                assert wait_for(lambda: len(b.invites()) == 2, 30, phones)
                assert wait_for(lambda: nt.call(lambda: getattr(nt.node.calls.calls[call_id].agent_leg, "state",
                                                                 None)) == "confirmed", 15, phones)
                assert "sip:+4930123456@127.0.0.1" in a.invites()[0]
                assert "authvalid=true" in b.text(b.logs)
                phones.pump(1.0)
                assert connected(rec)
                hang_up(rec)
                assert wait_for(lambda: "BYE sip:" in b.text(b.messages), 10, phones)
                assert wait_for(lambda: cdr_extra(tmp_path, call_id), 5, phones)
                (t,) = cdr_extra(tmp_path, call_id)[1]["transfers"]
                assert (t["kind"], t["to"]) == ("number", "+4930123456")
            finally:
                phones.remove(cust, unregister=False)
                phones.remove(alice_ph)
    finally:
        a.stop()
        b.stop()
