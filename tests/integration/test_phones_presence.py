"""Phones that come and go, against a running node: OPTIONS keepalives find a phone that stopped answering
(its agent is held busy with reason phone_unreachable and the next call goes to another agent), a TCP
connection that closes takes its bindings at once, sign-in needs a reachable phone, and the agent goes back
to idle when the phone returns. Real peers: a raw TCP client, a UDP "phone" that answers OPTIONS until told
not to, pjsua2 phones, and (test_real_phones style) Debian's baresip killed with -9.
"""

from __future__ import annotations

import socket
import threading
import urllib.request

import pytest

from softswitch.sip.digest import make_authorization
from softswitch.sip.parser import parse_message
from softswitch.sip.message import make_response
from tests.support.cc import ACCOUNTS, PASSWORDS, Api, cc_node, wait_for
from tests.support.sipclient import TcpClient

REALM = "cc.test"
# short on purpose: the tests wait for states, never for a time; the figures are benchmarks/keepalive_bench.py's
FAST = "phones: {keepalive: {interval: 1s, timeout: 300ms, failures: 2}}"


@pytest.fixture(scope="module")
def phones():
    from tools.softphone import Softphones
    return Softphones.get()


def register_request(user: str, transport: str, local: tuple[str, int], cseq: int, auth: str = "",
                     expires: int = 300, realm: str = REALM) -> bytes:
    host, port = local
    t = "" if transport == "UDP" else f";transport={transport.lower()}"
    return (f"REGISTER sip:{realm} SIP/2.0\r\nVia: SIP/2.0/{transport} {host}:{port};branch=z9hG4bK-r{user}{cseq};"
            f"rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{realm}>;tag=r{user}\r\nTo: <sip:{user}@{realm}>\r\n"
            f"Call-ID: reg-{user}-{port}@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{host}:{port}{t}>\r\n"
            f"Expires: {expires}\r\n{auth}Content-Length: 0\r\n\r\n").encode()


def register_tcp(port: int, user: str) -> TcpClient:
    """A phone registered over its own TCP connection, which it keeps open."""
    c = TcpClient(("127.0.0.1", port))
    local = c.sock.getsockname()[:2]
    c.send(register_request(user, "TCP", local, 1))
    challenge = c.recv(5)
    assert challenge is not None and challenge.status == 401
    auth = make_authorization(challenge.get_all("WWW-Authenticate")[0], "REGISTER", f"sip:{REALM}", user,
                              PASSWORDS[user])
    c.send(register_request(user, "TCP", local, 2, f"Authorization: {auth}\r\n"))
    ok = c.recv(5)
    assert ok is not None and ok.status == 200, ok
    return c


class UdpPhone:
    """A UDP phone that registers and answers OPTIONS with 200 while `alive`; offers get 486 (it never
    takes a call here: the tests watch where calls go, not audio)."""

    def __init__(self, server_port: int, user: str, password: str | None = None, realm: str = REALM) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.local = self.sock.getsockname()
        self.server = ("127.0.0.1", server_port)
        self.user = user
        self.password = password or PASSWORDS[user]
        self.realm = realm
        self.alive = True
        self.options = 0
        self.invites = 0
        self._replies: list = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def register(self, cseq: int = 1, expires: int = 300) -> int:
        self.sock.sendto(register_request(self.user, "UDP", self.local, cseq, expires=expires, realm=self.realm),
                         self.server)
        challenge = self._wait_reply()
        auth = make_authorization(challenge.get_all("WWW-Authenticate")[0], "REGISTER", f"sip:{self.realm}",
                                  self.user, self.password)
        self.sock.sendto(register_request(self.user, "UDP", self.local, cseq + 1, f"Authorization: {auth}\r\n",
                                          expires=expires, realm=self.realm), self.server)
        return self._wait_reply().status

    def _wait_reply(self):
        assert wait_for(lambda: bool(self._replies), 5)
        return self._replies.pop(0)

    def _serve(self) -> None:
        while not self._stop:
            try:
                data, src = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            msg = parse_message(data)
            if not hasattr(msg, "method"):
                self._replies.append(msg)
            elif msg.method == "OPTIONS":
                self.options += 1
                if self.alive:
                    self.sock.sendto(make_response(msg, 200, to_tag="ph").serialize(), src)
            elif msg.method == "INVITE":
                self.invites += 1
                if self.alive:
                    self.sock.sendto(make_response(msg, 486, to_tag="ph").serialize(), src)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def signed_in(http_port: int, account: str) -> Api:
    api = Api(http_port)
    api.login(account)
    assert wait_for(lambda: api.state()["registered"], 5)
    api.call("POST", "/api/agents/me/sign-in", expect=200)
    return api


def health(api: Api) -> dict:
    return api.call("GET", "/health", expect=200)[1]


def test_a_closed_tcp_connection_takes_its_bindings_at_once_and_holds_the_agent(tmp_path):
    # keepalives every 30 s: nothing but the closed connection can explain what follows
    with cc_node(tmp_path) as (nt, sip_port, http_port):
        phone = register_tcp(sip_port, "70001")
        alice = signed_in(http_port, "acme_alice")
        assert alice.state()["state"] == "idle" and health(alice)["bindings"] == 1
        phone.close()                                   # the phone (or its network) goes away
        assert wait_for(lambda: health(alice)["bindings"] == 0, 10)
        view = alice.state()
        assert (view["state"], view["reason"]) == ("busy", "phone_unreachable"), view
        assert health(alice)["keepalive"]["flows_closed"] == 1
        assert health(alice)["keepalive"]["probes"] == 0     # found by the flow, not by a keepalive
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as r:
            assert 'softswitch_keepalive_total{kind="bindings_dropped"} 1.0' in r.read().decode()
        # the phone comes back (a new connection, a new REGISTER): the agent was idle, so idle again
        phone = register_tcp(sip_port, "70001")
        assert wait_for(lambda: alice.state()["state"] == "idle", 10), alice.state()
        # an agent who chose to be busy stays busy when the phone comes and goes
        alice.call("POST", "/api/agents/me/state", {"state": "busy", "reason": "lunch"}, expect=200)
        phone.close()
        assert wait_for(lambda: alice.state()["reason"] == "phone_unreachable", 10)
        phone = register_tcp(sip_port, "70001")
        assert wait_for(lambda: health(alice)["bindings"] == 1, 10)
        assert alice.state()["state"] == "busy"
        # without a phone there is no signing in, and the API says why
        alice.call("POST", "/api/agents/me/sign-out", expect=200)
        phone.close()
        assert wait_for(lambda: health(alice)["bindings"] == 0, 10)
        status, body = alice.call("POST", "/api/agents/me/sign-in")
        assert status == 409 and "phone_unreachable" in body["error"], body
        assert alice.state()["state"] == "offline"


def test_a_phone_that_stops_answering_keepalives_is_offered_no_call(tmp_path, phones):
    with cc_node(tmp_path, phones=FAST, strategy="linear") as (nt, sip_port, http_port):
        alice_phone = UdpPhone(sip_port, "70001")
        bob_phone = None
        cust = None
        try:
            assert alice_phone.register() == 200
            alice = signed_in(http_port, "acme_alice")
            # the keepalives come and are answered: Alice stays idle
            assert wait_for(lambda: alice_phone.options >= 3, 15)
            assert alice.state()["state"] == "idle"
            bob_phone = phones.account("70002", PASSWORDS["70002"], f"127.0.0.1:{sip_port}", domain=REALM,
                                       auto_answer=True, tone_hz=1000)
            assert phones.wait(lambda: bob_phone.registered, 5)
            bob = Api(http_port)
            bob.login("acme_bob")
            bob.call("POST", "/api/agents/me/sign-in", expect=200)

            alice_phone.alive = False                     # the phone is gone (unplugged, crashed, NAT lost)
            assert wait_for(lambda: alice.state()["reason"] == "phone_unreachable", 20, phones), alice.state()
            assert alice.state()["state"] == "busy" and alice.state()["registered"]
            assert health(alice)["bindings"] == 2        # the binding is kept (it may answer again) ...
            offered = alice_phone.invites
            # ... but offered no call: linear order would pick Alice first; Bob's phone takes it
            cust = phones.account("5552100", "unused", f"127.0.0.1:{sip_port}", domain="customer.example.net",
                                  register=False, auto_answer=False, tone_hz=440)
            call = cust.call(f"sip:4001@127.0.0.1:{sip_port}")
            assert wait_for(lambda: bob.state()["state"] == "talking", 20, phones), bob.state()
            assert phones.wait(lambda: call.state == "CONFIRMED", 5)
            assert alice_phone.invites == offered and alice.state()["state"] == "busy"
            # the offer asked Bob's phone to answer by itself in all three ways (RFC 5373 among them)
            offer = bob_phone.calls[-1].invite_headers
            assert offer["answer-mode"] == "Auto" and "answer-after=2" in offer["call-info"], offer
            assert "info=alert-autoanswer" in offer["alert-info"], offer
            # a new sign-in is refused while the only phone is unreachable
            alice.call("POST", "/api/agents/me/sign-out", expect=200)
            status, body = alice.call("POST", "/api/agents/me/sign-in")
            assert status == 409 and "phone_unreachable" in body["error"]
            # it answers again: reachable, and Alice can sign in
            alice_phone.alive = True
            assert wait_for(lambda: alice.call("POST", "/api/agents/me/sign-in")[0] == 200, 20, phones)
            assert health(alice)["keepalive"]["reachable"] >= 1
        finally:
            for acc in (cust, bob_phone):
                if acc is not None:
                    phones.remove(acc, unregister=False)
            alice_phone.close()


def test_baresip_killed_is_found_by_keepalives_and_the_next_call_goes_to_another_agent(tmp_path, phones):
    """Debian's baresip (as test_real_phones runs it) registered as Alice's phone on the shipped example
    config, with short keepalives, then killed with -9: no unregistration, the binding stays until it expires
    (300 s) — only the keepalives can tell."""
    from tests.support.serve import Served, example_on_free_ports
    from tests.integration.test_real_phones import ACCOUNTS as DEMO, SOFTPHONES, baresip, http_port
    config, sip_port = example_on_free_ports(tmp_path)
    text = config.read_text()
    shipped = "keepalive: {interval: 30s, timeout: 5s, failures: 3}"
    assert text.count(shipped) == 1
    config.write_text(text.replace(shipped, "keepalive: {interval: 1s, timeout: 500ms, failures: 2}"))
    node = Served(config)
    phone = again = bob_phone = cust = None
    try:
        phone, _, _ = baresip(tmp_path, "70001", sip_port, 1000)
        alice, bob = Api(http_port(config)), Api(http_port(config))
        alice.token = alice.call("POST", "/api/login", {"account": "acme_alice", "password": DEMO["acme_alice"]},
                                 expect=200)[1]["token"]
        assert wait_for(lambda: alice.state()["registered"], 10), phone.tail()
        alice.call("POST", "/api/agents/me/sign-in", expect=200)
        # baresip answers the keepalives: several rounds and Alice is still idle
        assert wait_for(lambda: health(alice)["keepalive"]["answered"] >= 3, 15), phone.tail()
        assert alice.state()["state"] == "idle"

        bob_phone = phones.account("70002", SOFTPHONES["70002"], f"127.0.0.1:{sip_port}",
                                   domain="cc.example.com", auto_answer=True, tone_hz=1300)
        assert phones.wait(lambda: bob_phone.registered, 5)
        bob.token = bob.call("POST", "/api/login", {"account": "acme_bob", "password": DEMO["acme_bob"]},
                             expect=200)[1]["token"]
        bob.call("POST", "/api/agents/me/sign-in", expect=200)
        # Alice has been idle longest: longest_idle would offer her the next call
        phone.proc.kill()                                  # SIGKILL: baresip cannot unregister
        phone.proc.wait(10)
        assert wait_for(lambda: alice.state()["reason"] == "phone_unreachable", 20, phones), alice.state()
        assert alice.state()["state"] == "busy" and health(alice)["bindings"] == 2
        node.wait_log("phone_unreachable")

        cust = phones.account("5552100", "unused", f"127.0.0.1:{sip_port}", domain="customer.example.net",
                              register=False, auto_answer=False, tone_hz=440)
        call = cust.call(f"sip:4001@127.0.0.1:{sip_port}")
        assert wait_for(lambda: bob.state()["state"] == "talking", 30, phones), bob.state()
        assert phones.wait(lambda: call.state == "CONFIRMED", 5)
        assert alice.state()["state"] == "busy"
        call.hangup()
        assert phones.wait(lambda: call.ended_at is not None, 5)

        # baresip again (a new process): it registers, answers, and Alice is idle again as she was
        (tmp_path / "again").mkdir()
        again, _, _ = baresip(tmp_path / "again", "70001", sip_port, 1000)
        assert wait_for(lambda: alice.state()["state"] == "idle", 20, phones), (alice.state(), again.tail())
    finally:
        if cust is not None:
            phones.remove(cust, unregister=False)
        if bob_phone is not None:
            phones.remove(bob_phone)
        for p in (phone, again):
            if p is not None:
                p.quit()
        node.stop()


def test_a_closed_browser_tab_takes_its_binding_at_once(tmp_path):
    """The agent page's WebRTC phone (JsSIP over the node's ws: listener) registered and signed in; the tab is
    closed without signing off: its WebSocket closes, the binding goes at once and the agent is held busy."""
    from tests.support.cc import browser_expect, ws_node
    from tools.browser import headless_chromium
    expect = browser_expect(10_000)
    with ws_node(tmp_path) as (nt, sip_port, http_port, ws_port):
        alice = Api(http_port)
        alice.login("acme_alice")
        with headless_chromium(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]) as browser:
            page = browser.new_context().new_page()
            page.set_default_timeout(10_000)
            page.goto(f"http://127.0.0.1:{http_port}/agent")
            page.fill("#account", "acme_alice")
            page.fill("#password", ACCOUNTS["acme_alice"])
            page.click("#login-submit")
            page.fill("#sp-password", PASSWORDS["70001"])
            page.click("#sp-connect")
            expect(page.locator("#sip-status")).to_have_attribute("data-sip", "registered")
            page.click("#btn-sign-in")
            expect(page.locator("#state")).to_have_attribute("data-state", "idle")
            assert health(alice)["bindings"] == 1
            page.close()                                 # no sign-off, no unregistration: the tab is gone
            assert wait_for(lambda: health(alice)["bindings"] == 0, 10)
            view = alice.state()
            assert (view["state"], view["reason"]) == ("busy", "phone_unreachable"), view
            assert health(alice)["keepalive"]["flows_closed"] == 1


def test_a_binding_kept_from_a_previous_run_counts_once_the_phone_answers(tmp_path):
    """Bindings survive a restart (SQLite), but a phone may have gone meanwhile: a kept binding is offered
    nothing, and signs in nobody, until it answers a keepalive."""
    phone = UdpPhone(0, "70001")
    try:
        with cc_node(tmp_path, phones=FAST) as (nt, sip_port, http_port):
            phone.server = ("127.0.0.1", sip_port)
            assert phone.register() == 200
        with cc_node(tmp_path, phones=FAST) as (nt, sip_port, http_port):     # restarted, the phone still there
            alice = Api(http_port)
            alice.login("acme_alice")
            assert health(alice)["bindings"] == 1
            assert wait_for(lambda: alice.call("POST", "/api/agents/me/sign-in")[0] == 200, 10)
            assert health(alice)["keepalive"]["reachable"] == 1          # it proved itself
        phone.close()                                                     # the phone is gone while the node is down
        with cc_node(tmp_path, phones=FAST) as (nt, sip_port, http_port):
            alice = Api(http_port)
            alice.login("acme_alice")
            assert health(alice)["bindings"] == 1
            status, body = alice.call("POST", "/api/agents/me/sign-in")
            assert status == 409 and "phone_unreachable" in body["error"], body
            assert wait_for(lambda: health(alice)["keepalive"]["failures"] >= 2, 10)
            assert alice.call("POST", "/api/agents/me/sign-in")[0] == 409
    finally:
        phone.close()
