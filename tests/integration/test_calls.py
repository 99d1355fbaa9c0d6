"""The first call end to end: pjsua2 customer -> access code -> queue -> pjsua2 agent phone that auto-answers."""

from __future__ import annotations

import pytest

from tests.support.cc import PASSWORDS, Api, cc_node, wait_for


@pytest.fixture(scope="module")
def phones():
    from tools.softphone import Softphones
    return Softphones.get()


def agent_phone(phones, user, port, **kw):
    acc = phones.account(user, PASSWORDS[user], f"127.0.0.1:{port}", domain="cc.test", **kw)
    assert phones.wait(lambda: acc.registered, 5), acc.reg_codes
    return acc


def customer(phones, port, user="5551000"):
    return phones.account(user, "unused", f"127.0.0.1:{port}", domain="cc.test", register=False,
                          auto_answer=False)


def connected(rec) -> bool:
    return rec.state == "CONFIRMED"


def ended(rec) -> bool:
    return rec.ended_at is not None


def test_customer_reaches_signed_in_agent_who_auto_answers(phones, tmp_path):
    with cc_node(tmp_path) as (nt, port, http):
        agent = agent_phone(phones, "70001", port)
        cust = customer(phones, port)
        try:
            api = Api(http)
            api.login("acme_alice")
            assert api.state()["registered"] is True
            assert api.call("POST", "/api/agents/me/sign-in", expect=200)[1]["state"] == "idle"
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: agent.calls and agent.calls[-1].answered_at, 8)
            offer = agent.calls[-1]
            hdr = offer.invite_headers
            assert "answer-after=2" in hdr["call-info"] and "alert-autoanswer" in hdr["alert-info"]
            # the phone answered by itself, after the 2 s the hint asks for (a busy host only adds to that)
            assert offer.answered_at - offer.offered_at >= 1.8
            assert phones.wait(lambda: connected(rec) and connected(offer), 5)
            assert api.state()["state"] == "talking"
            q = api.call("GET", "/api/queues/support", expect=200)[1]
            assert q["answered"] == 1 and q["agents"]["talking"] == 1
            phones.pump(0.5)
            rec.call.hangup(__import__("pjsua2").CallOpParam(True))
            assert phones.wait(lambda: ended(offer), 5), offer.states
            assert wait_for(lambda: api.state()["state"] == "idle", 10, phones)
            # through wrap-up (read from the node's events: polling could miss a 1 s state on a busy host)
            changes = nt.call(lambda: [(e.old, e.new) for e in nt.node.center.events
                                       if e.kind == "state" and e.agent_id == "1001"])
            assert changes[-2:] == [("talking", "wrap_up"), ("wrap_up", "idle")], changes
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(agent)


def signed_in(http, account):
    api = Api(http)
    api.login(account)
    api.call("POST", "/api/agents/me/sign-in", expect=200)
    return api


def hang_up(rec):
    import pjsua2
    try:
        rec.call.hangup(pjsua2.CallOpParam(True))
    except pjsua2.Error:
        pass


def test_agent_who_never_answers_is_skipped_and_made_busy(phones, tmp_path):
    with cc_node(tmp_path, ring_timeout="3s") as (nt, port, http):
        lazy = agent_phone(phones, "70001", port)
        lazy.ignore_calls = True
        keen = agent_phone(phones, "70002", port)
        cust = customer(phones, port)
        try:
            alice, bob = signed_in(http, "acme_alice"), signed_in(http, "acme_bob")
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: lazy.calls, 5)
            assert phones.wait(lambda: ended(lazy.calls[-1]), 15)        # CANCEL after the ring timeout
            assert lazy.calls[-1].last_code == 487
            assert phones.wait(lambda: keen.calls and connected(keen.calls[-1]) and connected(rec), 15)
            s = alice.state()
            assert (s["state"], s["reason"]) == ("busy", "no_answer")
            assert bob.state()["state"] == "talking"
            hang_up(rec)
            assert phones.wait(lambda: ended(keen.calls[-1]), 5)
        finally:
            for a in (cust, lazy, keen):
                phones.remove(a, unregister=a is not cust)


def test_caller_hangs_up_while_queued(phones, tmp_path):
    with cc_node(tmp_path) as (nt, port, http):
        agent = agent_phone(phones, "70001", port)
        cust = customer(phones, port)
        try:
            api = signed_in(http, "acme_alice")
            api.call("POST", "/api/agents/me/state", {"state": "busy", "reason": "meeting"}, expect=200)
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: connected(rec), 5)       # the switch answers queued callers
            assert wait_for(lambda: api.call("GET", "/api/queues/support")[1]["waiting"] == 1, 3, phones)
            hang_up(rec)
            assert wait_for(lambda: api.call("GET", "/api/queues/support")[1]["abandoned"] == 1, 3, phones)
            assert api.call("GET", "/api/queues/support")[1]["waiting"] == 0
            assert nt.call(lambda: len(nt.node.calls.calls)) == 0
            assert agent.calls == []
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(agent)


def test_caller_hangs_up_while_agent_rings_frees_agent_at_once(phones, tmp_path):
    with cc_node(tmp_path, ring_timeout="20s") as (nt, port, http):
        agent = agent_phone(phones, "70001", port)
        agent.ignore_calls = True
        cust = customer(phones, port)
        try:
            api = signed_in(http, "acme_alice")
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: agent.calls and agent.calls[-1].state == "EARLY", 5)
            assert api.state()["state"] == "ringing"
            hang_up(rec)
            # at once: well before the 20 s ring timeout
            assert phones.wait(lambda: ended(agent.calls[-1]), 10)
            assert wait_for(lambda: api.state()["state"] == "idle", 10, phones)
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(agent)


def test_direct_call_to_agent_softphone_is_rejected(phones, tmp_path):
    with cc_node(tmp_path) as (nt, port, http):
        agent = agent_phone(phones, "70001", port)
        cust = customer(phones, port)
        try:
            signed_in(http, "acme_alice")
            rec = cust.call(f"sip:70001@127.0.0.1:{port}")
            assert phones.wait(lambda: ended(rec), 5)
            assert rec.last_code == 403       # challenged; the customer's credentials are no agent's
            phones.pump(0.3)
            assert agent.calls == []          # the phone never rang
            # a number nobody has: the same answer, so an agent's number cannot be told apart
            unknown = cust.call(f"sip:9999@127.0.0.1:{port}")
            assert phones.wait(lambda: ended(unknown), 5) and unknown.last_code == rec.last_code
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(agent)


def test_outbound_call_only_when_signed_in(phones, tmp_path):
    with cc_node(tmp_path) as (nt, port, http):
        caller = agent_phone(phones, "70001", port)
        callee = agent_phone(phones, "70003", port)
        try:
            rec = caller.call(f"sip:70003@127.0.0.1:{port}")
            assert phones.wait(lambda: ended(rec), 5)
            assert rec.last_code == 403
            assert "not signed in" in rec.states[-1][1].lower() or rec.last_code == 403
            api = signed_in(http, "acme_alice")
            rec = caller.call(f"sip:70003@127.0.0.1:{port}")
            assert phones.wait(lambda: connected(rec) and callee.calls and connected(callee.calls[-1]), 6)
            assert api.state()["state"] == "talking"
            hang_up(rec)
            assert phones.wait(lambda: ended(callee.calls[-1]), 5)
            assert wait_for(lambda: api.state()["state"] in ("wrap_up", "idle"), 3, phones)
        finally:
            phones.remove(caller)
            phones.remove(callee)


def test_two_queues_and_caller_priority(phones, tmp_path):
    import pjsua2
    with cc_node(tmp_path, wrap_up="0s") as (nt, port, http):
        bob = agent_phone(phones, "70002", port)          # bob serves support and sales
        cust_a, cust_b = customer(phones, port, "5551001"), customer(phones, port, "5551002")
        try:
            api = signed_in(http, "acme_bob")
            api.call("POST", "/api/agents/me/state", {"state": "busy", "reason": "setup"}, expect=200)
            first = cust_a.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: connected(first), 5)
            c = cust_b.__class__  # keep a handle for the urgent call below
            from tools.softphone import PhoneCall
            urgent_call = PhoneCall(cust_b)
            op = pjsua2.CallOpParam(True)
            h = pjsua2.SipHeader()
            h.hName, h.hValue = "Priority", "urgent"
            op.txOption.headers.append(h)
            cust_b.calls.append(urgent_call.record)
            phones.keep.append(urgent_call)
            urgent_call.makeCall(f"sip:4002@127.0.0.1:{port}", op)
            urgent = urgent_call.record
            assert phones.wait(lambda: connected(urgent), 5)
            api.call("POST", "/api/agents/me/state", {"state": "idle"}, expect=200)
            assert phones.wait(lambda: bob.calls and connected(bob.calls[-1]), 6)
            assert bob.calls[0].invite_headers.get("x-cc-queue") == "sales"   # the urgent caller went first
            hang_up(urgent)
            assert phones.wait(lambda: len(bob.calls) == 2 and connected(bob.calls[-1]), 8)
            assert bob.calls[1].invite_headers.get("x-cc-queue") == "support"
            hang_up(first)
            assert phones.wait(lambda: ended(bob.calls[-1]), 5)
        finally:
            for a in (cust_a, cust_b):
                phones.remove(a, unregister=False)
            phones.remove(bob)


def test_ivr_menu_choice_by_sip_info_reaches_the_queue(phones, tmp_path):
    import pjsua2
    with cc_node(tmp_path) as (nt, port, http):
        carol = agent_phone(phones, "70003", port)
        cust = customer(phones, port)
        try:
            signed_in(http, "acme_carol")
            rec = cust.call(f"sip:4009@127.0.0.1:{port}")
            assert phones.wait(lambda: connected(rec), 5)
            prm = pjsua2.CallSendDtmfParam()
            prm.method = pjsua2.PJSUA_DTMF_METHOD_SIP_INFO
            prm.digits = "2"
            rec.call.sendDtmf(prm)
            assert phones.wait(lambda: carol.calls and connected(carol.calls[-1]), 8)
            assert carol.calls[-1].invite_headers.get("x-cc-queue") == "sales"
            hang_up(rec)
            assert phones.wait(lambda: ended(carol.calls[-1]), 5)
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(carol)


def test_api_permissions_and_errors(tmp_path):
    with cc_node(tmp_path) as (nt, port, http):
        anon = Api(http)
        assert anon.call("GET", "/api/agents/me")[0] == 401
        assert anon.call("POST", "/api/login", {"account": "acme_alice", "password": "nope"})[0] == 401
        assert anon.call("POST", "/api/login", {"account": "ghost", "password": "nope"})[0] == 401
        alice = Api(http)
        alice.login("acme_alice")
        assert alice.call("GET", "/api/agents/1002")[0] == 403
        assert alice.call("POST", "/api/agents/1002/state", {"state": "busy"})[0] == 403
        status, body = alice.call("POST", "/api/agents/me/sign-in")
        assert status == 409 and "registered softphone" in body["error"]
        assert alice.call("POST", "/api/agents/me/state", {"state": "dancing"})[0] in (400, 409)
        sam = Api(http)
        sam.login("acme_sam")
        assert {a["id"] for a in sam.call("GET", "/api/agents", expect=200)[1]} == {"1001", "1002", "1003", "1004"}
        assert sam.call("GET", "/api/agents/1002", expect=200)[1]["state"] == "offline"
        assert Api(http).call("GET", "/health", expect=200)[1]["status"] == "ok"
        status, body = alice.call("POST", "/api/agents/me/softphone-password", {"password": "weak"})
        assert status == 400 and "policy" in body["error"]
        alice.call("POST", "/api/agents/me/softphone-password", {"password": "New-Phone-Pass-9!"}, expect=200)
        assert nt.call(lambda: nt.node.credentials.ha1("70001", "MD5")) == \
            __import__("softswitch.registrar.credentials", fromlist=["x"]).ha1_pair("70001", "cc.test", "New-Phone-Pass-9!")["MD5"]


def test_every_call_leaves_a_cdr_and_queue_log_lines(phones, tmp_path):
    import json
    import subprocess
    import sys
    from softswitch.records.store import RecordStore
    with cc_node(tmp_path) as (nt, port, http):
        agent = agent_phone(phones, "70001", port)
        cust = customer(phones, port)
        try:
            signed_in(http, "acme_alice")
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: agent.calls and connected(agent.calls[-1]), 8)
            phones.pump(0.5)
            hang_up(rec)
            assert phones.wait(lambda: ended(agent.calls[-1]), 5)
            gone = cust.call(f"sip:70001@127.0.0.1:{port}")           # refused: no CDR (never a call)
            assert phones.wait(lambda: ended(gone), 5)
            nt.call(lambda: nt.node.records.flush(5))
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(agent)
    store = RecordStore(f"sqlite:///{tmp_path}/cc.db")
    (cdr,) = store.cdrs()
    assert (cdr["called"], cdr["queue"], cdr["agent_id"], cdr["outcome"]) == ("4001", "support", "1001", "answered")
    assert cdr["talk_s"] > 0.3 and cdr["connected_at"] >= cdr["started_at"]
    events = [e["event"] for e in store.queue_events(call_id=cdr["call_id"])]
    assert events[:3] == ["enqueue", "offer", "answer"] and "complete" in events
    store.close()
    out = subprocess.run([sys.executable, "-m", "softswitch.cli", "records", "export", str(tmp_path / "cc.yaml"),
                          "--format", "json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [r["call_id"] for r in json.loads(out.stdout)] == [cdr["call_id"]]
    out = subprocess.run([sys.executable, "-m", "softswitch.cli", "records", "export", str(tmp_path / "cc.yaml"),
                          "--kind", "queue_log"], capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines()[0].startswith("id,at,queue,call_id") and len(out.stdout.splitlines()) > 4


def test_callback_keeps_the_place_and_rings_the_agent_first(phones, tmp_path):
    import pjsua2
    from softswitch.records.store import RecordStore
    with cc_node(tmp_path, support_extra=', callback_digit: "9"') as (nt, port, http):
        agent = agent_phone(phones, "70001", port)
        cust = phones.account("5553000", "unused", f"127.0.0.1:{port}", domain="cc.test", register=False,
                              auto_answer=True)
        try:
            api = signed_in(http, "acme_alice")
            api.call("POST", "/api/agents/me/state", {"state": "busy", "reason": "notes"}, expect=200)
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: connected(rec), 5)
            assert wait_for(lambda: api.call("GET", "/api/queues/support")[1]["waiting"] == 1, 3, phones)
            rec.call.dialDtmf("9")
            assert phones.wait(lambda: ended(rec), 10)             # confirmation played, then the line is hung up
            assert api.call("GET", "/api/queues/support")[1]["waiting"] == 1     # the place is kept
            assert agent.calls == []
            api.call("POST", "/api/agents/me/state", {"state": "idle"}, expect=200)
            assert phones.wait(lambda: agent.calls and connected(agent.calls[-1]), 8)
            back = lambda: [c for c in cust.calls if c.incoming]
            assert phones.wait(lambda: back() and connected(back()[-1]), 8)      # the customer is called back
            assert back()[-1].offered_at > agent.calls[-1].answered_at            # after the agent took it
            assert api.state()["state"] == "talking"
            phones.pump(0.5)
            back()[-1].call.hangup(pjsua2.CallOpParam(True))
            assert phones.wait(lambda: ended(agent.calls[-1]), 5)
            nt.call(lambda: nt.node.records.flush(5))
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(agent)
    store = RecordStore(f"sqlite:///{tmp_path}/cc.db")
    (cdr,) = store.cdrs()
    assert cdr["outcome"] == "answered" and cdr["agent_id"] == "1001"
    assert "callback" in [e["event"] for e in store.queue_events(call_id=cdr["call_id"])]
    store.close()


def test_prometheus_metrics_reflect_live_state(phones, tmp_path):
    import urllib.request
    with cc_node(tmp_path) as (nt, port, http):
        agent = agent_phone(phones, "70001", port)
        cust = customer(phones, port)
        try:
            signed_in(http, "acme_alice")
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: agent.calls and connected(agent.calls[-1]), 8)
            text = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5).read().decode()
            assert 'softswitch_queue_agents{queue="support",state="talking"} 1.0' in text
            assert 'softswitch_sip_requests_total{method="REGISTER"}' in text
            assert "softswitch_calls 1.0" in text and "softswitch_media_streams" in text
            hang_up(rec)
            assert phones.wait(lambda: ended(agent.calls[-1]), 5)
            text = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5).read().decode()
            assert 'softswitch_queue_calls_total{outcome="answered",queue="support"} 1.0' in text
            assert "softswitch_calls 0.0" in text
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(agent)


def test_websocket_stream_carries_events_and_queue_kpis(tmp_path):
    import asyncio
    import aiohttp
    from tests.support.cc import agent_on_break
    with cc_node(tmp_path) as (nt, port, http):
        api = agent_on_break(port, http)

        async def listen():
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(f"http://127.0.0.1:{http}/api/events?token={api.token}") as ws:
                    seen = [await ws.receive_json(timeout=5) for _ in range(2)]
                    await asyncio.get_running_loop().run_in_executor(
                        None, lambda: api.call("POST", "/api/agents/me/state", {"state": "busy", "reason": "x"}))
                    for _ in range(5):
                        msg = await ws.receive_json(timeout=5)
                        seen.append(msg)
                        if msg["type"] == "state":
                            break
                    return seen
        seen = asyncio.run(listen())
        kinds = [m["type"] for m in seen]
        assert kinds[0] == "snapshot" and "queues" in kinds and kinds[-1] == "state"
        queues = next(m for m in seen if m["type"] == "queues")["queues"]
        assert {q["name"] for q in queues} == {"support", "sales"} and "agents_needed" in queues[0]
        assert seen[-1]["agent_id"] == "1001" and seen[-1]["new"] == "busy"
