"""Outbound calls through trunks, with real peers: SIPp plays the carriers' SBCs (UAS; -aa answers the OPTIONS
pings), a pjsua2 phone is the agent. An agent's call to an external number fails over from a trunk answering 503
(or not there at all) to the next, answers that trunk's digest challenge with its outbound_auth, and shows the
agent's queue's caller ID, each trunk offered its own codecs; a trunk taken down by OPTIONS is skipped until it
answers again; a callback from the queue reaches the customer through the outbound trunk. Waits are for
conditions; their deadlines only bound a hang."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request

import pytest

from tests.conftest import free_port
from tests.support.cc import PASSWORDS, Api, cc_node, wait_for
from tests.support.sipp import SIPP

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "sipp")
pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp missing: run tools/install-sysdeps.sh")


@pytest.fixture(scope="module")
def phones():
    from tools.softphone import Softphones
    return Softphones.get()


class Carrier:
    """A SIPp UAS on 127.0.0.1:port running one of tests/data/sipp's trunk scenarios, its messages and logs in
    files the test reads."""

    def __init__(self, tmp_path, name: str, scenario: str, port: int, transport: str = "u1") -> None:
        self.dir = tmp_path / name
        self.dir.mkdir(exist_ok=True)
        self.messages, self.logs = self.dir / "messages.log", self.dir / "logs.log"
        self.proc = subprocess.Popen(
            [SIPP, "-sf", os.path.join(DATA, scenario), "-i", "127.0.0.1", "-p", str(port), "-t", transport, "-aa",
             "-nostdin",
             "-trace_msg", "-message_file", str(self.messages), "-trace_logs", "-log_file", str(self.logs),
             "-trace_err", "-error_file", str(self.dir / "errors.log")],
            cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def text(self, path) -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    def invites(self) -> list[str]:
        """The INVITEs it received, as text."""
        out = []
        for chunk in re.split(r"(?m)^-{5,}.*$", self.text(self.messages)):
            head, _, msg = chunk.strip().partition("\n")
            if "message received" in head and msg.lstrip().startswith("INVITE "):
                out.append(msg.lstrip())
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def trunks_yaml(a_port: int, b_port: int, a_options: str = "", routes: str = '"+49*"') -> str:
    return f"""
trunks:
  - name: carrier_a
    proxy: 127.0.0.1:{a_port}
    {a_options}
  - name: carrier_b
    proxy: 127.0.0.1:{b_port}
    numbers: {{country_code: "49", send_as: national}}
    codecs: [PCMA, PCMU, telephone-event]
    outbound_auth: {{username: acct7, password: Trunk-Pass9}}
dial_plan:
  routes:
    - {{numbers: {routes}, trunks: [carrier_a, carrier_b]}}
  caller_id: {{default: "+4930555000", queues: {{support: "+4930555100"}}}}
"""


def agent_phone(phones, user, port):
    acc = phones.account(user, PASSWORDS[user], f"127.0.0.1:{port}", domain="cc.test")
    assert phones.wait(lambda: acc.registered, 5), acc.reg_codes
    return acc


def signed_in(http, account):
    api = Api(http)
    api.login(account)
    api.call("POST", "/api/agents/me/sign-in", expect=200)
    return api


def metrics(http) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=10) as r:
        return r.read().decode()


def metric(text: str, name: str, **labels) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def hang_up(rec):
    import pjsua2
    try:
        rec.call.hangup(pjsua2.CallOpParam(True))
    except pjsua2.Error:
        pass


def test_agent_call_fails_over_from_a_503_trunk_answers_the_challenge_and_shows_the_queues_caller_id(phones,
                                                                                                     tmp_path):
    a_port, b_port = free_port(), free_port()
    a = Carrier(tmp_path, "a", "trunk_503.xml", a_port)
    b = Carrier(tmp_path, "b", "trunk_answers.xml", b_port)
    try:
        with cc_node(tmp_path, phones=trunks_yaml(a_port, b_port)) as (nt, port, http):
            agent = agent_phone(phones, "70001", port)
            try:
                api = signed_in(http, "acme_alice")
                rec = agent.call(f"sip:+4930123456@127.0.0.1:{port}")
                assert phones.wait(lambda: rec.state == "CONFIRMED", 30), rec.states
                assert api.state()["state"] == "talking"
                assert len(a.invites()) == 1 and "sip:+4930123456@127.0.0.1" in a.invites()[0]
                assert re.search(r"(?m)^P-Asserted-Identity: <sip:\+4930555100@", a.invites()[0])   # queue support's
                challenged, authed = b.invites()          # challenged once, then with the right credentials
                assert challenged.startswith("INVITE sip:030123456@127.0.0.1")      # carrier_b's national format
                assert "\nAuthorization: Digest" in authed and 'username="acct7"' in authed
                assert "authvalid=true" in b.text(b.logs)
                # each trunk is offered its own codecs in its order (carrier_a: all, by default)
                assert re.search(r"(?m)^m=audio \d+ RTP/AVP 0 8 101\r?$", a.invites()[0])
                assert re.search(r"(?m)^m=audio \d+ RTP/AVP 8 0 101\r?$", authed)
                # the same caller ID in carrier_b's national format
                assert re.search(r"(?m)^From: <sip:030555100@", authed)
                assert re.search(r"(?m)^P-Asserted-Identity: <sip:030555100@", authed)
                m = metrics(http)
                assert metric(m, "softswitch_trunk_failures_total", trunk="carrier_a", kind="outbound") == 1
                assert metric(m, "softswitch_trunk_failures_total", trunk="carrier_b", kind="outbound") == 0
                assert metric(m, "softswitch_trunk_outbound_attempts_total", trunk="carrier_b") == 1
                assert metric(m, "softswitch_trunk_calls", trunk="carrier_b") == 1
                hang_up(rec)
                assert wait_for(lambda: "BYE sip:" in b.text(b.messages), 10, phones)
                assert wait_for(lambda: metric(metrics(http), "softswitch_trunk_calls", trunk="carrier_b") == 0, 10,
                                phones)
            finally:
                phones.remove(agent)
    finally:
        a.stop()
        b.stop()


def test_a_trunk_not_answering_is_failed_over_and_when_pinged_down_skipped_until_it_answers_again(phones,
                                                                                                  tmp_path):
    a_port, b_port = free_port(), free_port()          # nothing listens on a_port at first
    b = Carrier(tmp_path, "b", "trunk_answers.xml", b_port)
    a = None
    options = "options: {interval: 300ms, threshold: 2, timeout: 200ms}"
    try:
        with cc_node(tmp_path, phones=trunks_yaml(a_port, b_port, options)) as (nt, port, http):
            agent = agent_phone(phones, "70001", port)
            try:
                signed_in(http, "acme_alice")
                assert wait_for(lambda: metric(metrics(http), "softswitch_trunk_up", trunk="carrier_a") == 0
                                and 'softswitch_trunk_up{trunk="carrier_a"}' in metrics(http), 30, phones)
                rec = agent.call(f"sip:+4930123456@127.0.0.1:{port}")
                assert phones.wait(lambda: rec.state == "CONFIRMED", 30), rec.states
                m = metrics(http)
                assert metric(m, "softswitch_trunk_outbound_attempts_total", trunk="carrier_a") == 0   # skipped
                assert metric(m, "softswitch_trunk_outbound_attempts_total", trunk="carrier_b") == 1
                hang_up(rec)
                assert wait_for(lambda: "BYE sip:" in b.text(b.messages), 10, phones)
                # carrier_a comes back: the pings see it up, and the next call goes to it first
                a = Carrier(tmp_path, "a", "trunk_503.xml", a_port)
                assert wait_for(lambda: metric(metrics(http), "softswitch_trunk_up", trunk="carrier_a") == 1, 30,
                                phones)
                rec = agent.call(f"sip:+4930123456@127.0.0.1:{port}")
                assert phones.wait(lambda: rec.state == "CONFIRMED", 30), rec.states
                assert len(a.invites()) == 1 and len(b.invites()) == 4
                hang_up(rec)
                assert wait_for(lambda: b.text(b.messages).count("BYE sip:") == 2, 10, phones)
            finally:
                phones.remove(agent)
    finally:
        b.stop()
        if a is not None:
            a.stop()


def test_a_silent_trunk_without_pings_is_given_up_for_the_next(phones, tmp_path):
    a_port, b_port = free_port(), free_port()          # nothing ever listens on a_port
    b = Carrier(tmp_path, "b", "trunk_answers.xml", b_port)
    try:
        with cc_node(tmp_path, phones=trunks_yaml(a_port, b_port)) as (nt, port, http):
            agent = agent_phone(phones, "70001", port)
            try:
                signed_in(http, "acme_alice")
                rec = agent.call(f"sip:+4930123456@127.0.0.1:{port}")
                assert phones.wait(lambda: rec.state == "CONFIRMED", 30), rec.states
                assert metric(metrics(http), "softswitch_trunk_failures_total", trunk="carrier_a",
                              kind="outbound") == 1
                hang_up(rec)
                assert wait_for(lambda: "BYE sip:" in b.text(b.messages), 10, phones)
            finally:
                phones.remove(agent)
    finally:
        b.stop()


def test_no_trunk_left_refuses_the_agents_call_with_the_reason(phones, tmp_path):
    a_port, b_port = free_port(), free_port()
    a, b = Carrier(tmp_path, "a", "trunk_503.xml", a_port), Carrier(tmp_path, "b", "trunk_503.xml", b_port)
    try:
        with cc_node(tmp_path, phones=trunks_yaml(a_port, b_port)) as (nt, port, http):
            agent = agent_phone(phones, "70001", port)
            try:
                api = signed_in(http, "acme_alice")
                rec = agent.call(f"sip:+4930123456@127.0.0.1:{port}")
                assert phones.wait(lambda: rec.ended_at is not None, 30), rec.states
                assert rec.last_code == 503 and rec.reason == "All trunks failed (last: carrier_b 503)"
                # neither trunk rang: the 180 the agent heard while carrier_b was tried is the switch's own
                assert (180 in [code for _, state, code in rec.states if state == "EARLY"]), rec.states
                assert len(a.invites()) == 1 and len(b.invites()) == 1
                assert wait_for(lambda: api.state()["state"] in ("wrap_up", "idle"), 10, phones)
            finally:
                phones.remove(agent)
    finally:
        a.stop()
        b.stop()


def test_a_callback_from_the_queue_reaches_the_customer_through_the_outbound_trunk(phones, tmp_path):
    a_port, b_port = free_port(), free_port()
    b = Carrier(tmp_path, "b", "trunk_answers.xml", b_port)
    try:
        with cc_node(tmp_path, support_extra=', callback_digit: "9"',
                     phones=trunks_yaml(a_port, b_port, routes='"+4930*"').replace(
                         "trunks: [carrier_a, carrier_b]", "trunks: [carrier_b]")) as (nt, port, http):
            agent = agent_phone(phones, "70001", port)
            cust = phones.account("+4930777888", "unused", f"127.0.0.1:{port}", domain="cc.test", register=False,
                                  auto_answer=False)
            try:
                api = signed_in(http, "acme_alice")
                api.call("POST", "/api/agents/me/state", {"state": "busy", "reason": "notes"}, expect=200)
                rec = cust.call(f"sip:4001@127.0.0.1:{port}")
                assert phones.wait(lambda: rec.state == "CONFIRMED", 10), rec.states
                assert wait_for(lambda: api.call("GET", "/api/queues/support")[1]["waiting"] == 1, 5, phones)
                rec.call.dialDtmf("9")
                assert phones.wait(lambda: rec.ended_at is not None, 15)     # confirmation played, line hung up
                api.call("POST", "/api/agents/me/state", {"state": "idle"}, expect=200)
                assert phones.wait(lambda: agent.calls and agent.calls[-1].state == "CONFIRMED", 10)
                assert wait_for(lambda: len(b.invites()) == 2 and "ACK sip:" in b.text(b.messages), 15, phones)
                authed = b.invites()[1]
                assert authed.startswith("INVITE sip:030777888@127.0.0.1")        # the customer's number, national
                assert re.search(r"(?m)^From: <sip:030555100@", authed)          # the queue's caller ID
                assert wait_for(lambda: api.state()["state"] == "talking", 5, phones)
                hang_up(agent.calls[-1])
                assert wait_for(lambda: "BYE sip:" in b.text(b.messages), 10, phones)
            finally:
                phones.remove(cust, unregister=False)
                phones.remove(agent)
    finally:
        b.stop()


def test_a_trunk_at_its_call_cap_is_skipped_for_outbound_calls_too(phones, tmp_path):
    a_port, b_port = free_port(), free_port()
    a = Carrier(tmp_path, "a", "trunk_answers.xml", a_port)
    b = Carrier(tmp_path, "b", "trunk_answers.xml", b_port)
    a_extra = "max_calls: 1\n    outbound_auth: {username: acct7, password: Trunk-Pass9}"
    try:
        with cc_node(tmp_path, phones=trunks_yaml(a_port, b_port, a_extra)) as (nt, port, http):
            alice, bob = agent_phone(phones, "70001", port), agent_phone(phones, "70002", port)
            try:
                signed_in(http, "acme_alice")
                signed_in(http, "acme_bob")
                first = alice.call(f"sip:+4930123456@127.0.0.1:{port}")
                assert phones.wait(lambda: first.state == "CONFIRMED", 30), first.states
                second = bob.call(f"sip:+4930123457@127.0.0.1:{port}")
                assert phones.wait(lambda: second.state == "CONFIRMED", 30), second.states
                m = metrics(http)
                assert metric(m, "softswitch_trunk_outbound_attempts_total", trunk="carrier_a") == 1
                assert metric(m, "softswitch_trunk_failures_total", trunk="carrier_a", kind="outbound_capped") == 1
                assert metric(m, "softswitch_trunk_outbound_attempts_total", trunk="carrier_b") == 1
                assert len(a.invites()) == 2 and len(b.invites()) == 2        # each: challenged, then with credentials
                hang_up(first)
                hang_up(second)
                assert wait_for(lambda: "BYE sip:" in a.text(a.messages) and "BYE sip:" in b.text(b.messages), 10,
                                phones)
            finally:
                phones.remove(alice)
                phones.remove(bob)
    finally:
        a.stop()
        b.stop()


def test_the_agent_giving_up_while_the_trunk_rings_cancels_it_and_tries_no_other(phones, tmp_path):
    a_port, b_port = free_port(), free_port()
    a = Carrier(tmp_path, "a", "trunk_rings.xml", a_port)
    b = Carrier(tmp_path, "b", "trunk_answers.xml", b_port)
    try:
        with cc_node(tmp_path, phones=trunks_yaml(a_port, b_port)) as (nt, port, http):
            agent = agent_phone(phones, "70001", port)
            try:
                api = signed_in(http, "acme_alice")
                rec = agent.call(f"sip:+4930123456@127.0.0.1:{port}")
                assert phones.wait(lambda: rec.state == "EARLY", 30), rec.states       # the trunk's ringing, relayed
                hang_up(rec)
                assert phones.wait(lambda: rec.ended_at is not None, 10)
                assert wait_for(lambda: "ACK sip:" in a.text(a.messages), 10, phones)    # CANCEL, 200, 487, ACK
                assert "CANCEL sip:+4930123456@" in a.text(a.messages)
                assert wait_for(lambda: api.state()["state"] in ("wrap_up", "idle"), 10, phones)
                assert wait_for(lambda: metric(metrics(http), "softswitch_trunk_calls", trunk="carrier_a") == 0, 10,
                                phones)
                m = metrics(http)
                assert b.invites() == [] and metric(m, "softswitch_trunk_outbound_attempts_total",
                                                    trunk="carrier_b") == 0
                assert metric(m, "softswitch_trunk_failures_total", trunk="carrier_a", kind="outbound") == 0
            finally:
                phones.remove(agent)
    finally:
        a.stop()
        b.stop()


def test_a_trunk_over_tcp_takes_the_call_on_a_connection_the_switch_opens(phones, tmp_path):
    a_port, b_port = free_port(), free_port()
    b = Carrier(tmp_path, "b", "trunk_answers.xml", b_port, transport="t1")
    yaml = trunks_yaml(a_port, b_port).replace("trunks: [carrier_a, carrier_b]", "trunks: [carrier_b]").replace(
        f"proxy: 127.0.0.1:{b_port}", f"proxy: 127.0.0.1:{b_port}\n    transport: tcp")
    try:
        with cc_node(tmp_path, phones=yaml) as (nt, port, http):
            agent = agent_phone(phones, "70001", port)
            try:
                signed_in(http, "acme_alice")
                rec = agent.call(f"sip:+4930123456@127.0.0.1:{port}")
                assert phones.wait(lambda: rec.state == "CONFIRMED", 30), rec.states
                first = b.invites()[0]
                assert "TCP message received" in b.text(b.messages)
                assert re.search(r"(?m)^Via: SIP/2.0/TCP 127.0.0.1:", first)
                assert re.search(r"(?m)^Contact: <sip:softswitch@127.0.0.1:\d+;transport=tcp>", first)
                hang_up(rec)
                assert wait_for(lambda: "BYE sip:" in b.text(b.messages), 10, phones)
            finally:
                phones.remove(agent)
    finally:
        b.stop()
