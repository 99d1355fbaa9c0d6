"""The first call end to end: pjsua2 customer -> access code -> queue -> pjsua2 agent phone that auto-answers."""

from __future__ import annotations

import time

import pytest

from tests.cc import PASSWORDS, Api, cc_node, wait_for


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
            t0 = time.monotonic()
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: agent.calls and agent.calls[-1].answered_at, 8)
            offer = agent.calls[-1]
            hdr = offer.invite_headers
            assert "answer-after=2" in hdr["call-info"] and "alert-autoanswer" in hdr["alert-info"]
            # the phone answered by itself about 2 s after the offer
            assert 1.8 <= offer.answered_at - offer.offered_at <= 3.5
            assert phones.wait(lambda: connected(rec) and connected(offer), 5)
            assert api.state()["state"] == "talking"
            q = api.call("GET", "/api/queues/support", expect=200)[1]
            assert q["answered"] == 1 and q["agents"]["talking"] == 1
            phones.pump(0.5)
            rec.call.hangup(__import__("pjsua2").CallOpParam(True))
            assert phones.wait(lambda: ended(offer), 5), offer.states
            assert wait_for(lambda: api.state()["state"] == "wrap_up", 3, phones)
            assert wait_for(lambda: api.state()["state"] == "idle", 3, phones)
            assert time.monotonic() - t0 < 15
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(agent)
