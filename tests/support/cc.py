"""A contact-center node for end-to-end tests: config on free ports, the API as a client, pjsua2 phones."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

from softswitch.node.compose import Node, credentials_from_config, options_from_config
from softswitch.settings import parse_config
from tests.conftest import NodeThread, free_port, start_with_free_ports

PASSWORDS = {"70001": "Phone-Pass-1!", "70002": "Phone-Pass-2!", "70003": "Phone-Pass-3!", "70004": "Phone-Pass-4!"}
ACCOUNTS = {"acme_alice": "Alice-Pass-1!", "acme_bob": "Bob-Pass-2!", "acme_carol": "Carol-Pass-3!",
            "acme_sam": "Sam-Pass-4!"}


def config_text(sip_port: int, http_port: int, db: str, rtp_lo: int = 0, ring_timeout: str = "4s", wrap_up: str = "1s",
                strategy: str = "linear", extra_queue: str = "", record: bool = False, support_extra: str = "",
                security: str = "", tls_port: int = 0, tls: str = "", node_id: str = "test-node",
                state: str = "memory", must_change_password: bool = False, phones: str = "") -> str:
    # the accounts are used at once by most tests; the password lifecycle's own tests ask for the flag
    flag = "" if must_change_password else ", must_change_password: false"
    return f"""
server:
  node_id: {node_id}
  sip: {{listen: [udp:127.0.0.1:{sip_port}, tcp:127.0.0.1:{sip_port}{f", tls:127.0.0.1:{tls_port}" if tls_port else ""}],
        domain: cc.test, session_expires: 120s{security}{tls}}}
  http: {{listen: 127.0.0.1:{http_port}}}
  storage: {{cdr: "sqlite:///{db}", state: "{state}"}}
  media: {{address: 127.0.0.1, rtp_ports: {rtp_lo}-{rtp_lo + 998}}}
employees:
  - {{account: acme_alice, name: Alice, password: "{ACCOUNTS['acme_alice']}"{flag}}}
  - {{account: acme_bob, name: Bob, password: "{ACCOUNTS['acme_bob']}"{flag}}}
  - {{account: acme_carol, name: Carol, password: "{ACCOUNTS['acme_carol']}"{flag}}}
  - {{account: acme_sam, name: Sam, role: supervisor, password: "{ACCOUNTS['acme_sam']}"{flag}}}
agents:
  - {{id: "1001", account: acme_alice, softphone: "70001", softphone_password: "{PASSWORDS['70001']}", queues: [support]}}
  - {{id: "1002", account: acme_bob, softphone: "70002", softphone_password: "{PASSWORDS['70002']}", queues: [support, sales]}}
  - {{id: "1003", account: acme_carol, softphone: "70003", softphone_password: "{PASSWORDS['70003']}", queues: [sales]}}
  - {{id: "1004", account: acme_sam, softphone: "70004", softphone_password: "{PASSWORDS['70004']}", queues: []}}
skill_queues:
  - {{name: support, strategy: {strategy}, ring_timeout: {ring_timeout}, wrap_up: {wrap_up}, max_wait: 30s,
     record: {str(record).lower()}{support_extra}}}
  - {{name: sales, strategy: {strategy}, ring_timeout: {ring_timeout}, wrap_up: {wrap_up}, max_wait: 30s}}
{extra_queue}
called_routes:
  - {{called: "4001", queue: support}}
  - {{called: "4002", queue: sales}}
  - {{called: "4009", ivr: menu}}
ivr:
  menu:
    - menu: {{"1": support, "2": sales}}
      timeout: 3s
      retries: 0
    - hangup: true
{phones}
"""


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = None

    def call(self, method: str, path: str, body=None, expect=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {self.token}"} if self.token else {})})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, payload = r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            status, payload = e.code, json.loads(e.read() or b"null")
        if expect is not None:
            assert status == expect, (status, payload)
        return status, payload

    def login(self, account: str) -> dict:
        _, p = self.call("POST", "/api/login", {"account": account, "password": ACCOUNTS[account]}, expect=200)
        self.token = p["token"]
        return p

    def state(self, agent="me") -> dict:
        return self.call("GET", f"/api/agents/{agent}", expect=200)[1]


@contextmanager
def _node_thread(tmp_path, make_text):
    """A node running make_text()'s config (written to tmp_path/cc.yaml) in its own thread. make_text() ->
    (text, ports) picks free ports; it is called again while a port turns out taken."""
    def build():
        text, ports = make_text()
        (tmp_path / "cc.yaml").write_text(text)
        cfg = parse_config(text, str(tmp_path / "cc.yaml"))
        return NodeThread(lambda loop: Node(options_from_config(cfg), cfg, loop, credentials_from_config(cfg))), ports
    nt, ports = start_with_free_ports(build)
    try:
        yield nt, ports
    finally:
        nt.stop()


def _rtp_lo(sip_port: int) -> int:
    # each node its own RTP range, so nodes of parallel or back-to-back tests never contend for ports
    return 30000 + 1000 * (sip_port % 30)


@contextmanager
def cc_node(tmp_path, **kw):
    def make_text():
        sip_port, http_port = free_port(), free_port()
        return config_text(sip_port, http_port, str(tmp_path / "cc.db"), _rtp_lo(sip_port), **kw), \
            (sip_port, http_port)
    with _node_thread(tmp_path, make_text) as (nt, (sip_port, http_port)):
        yield nt, sip_port, http_port


@contextmanager
def ws_node(tmp_path, edits: tuple[tuple[str, str], ...] = ()):
    """cc_node's node with a SIP WebSocket listener (ws:127.0.0.1:PORT) beside udp and tcp; `edits` are further
    (old, new) replacements in the config text, each of which must match exactly once."""
    def make_text():
        sip_port, http_port, ws_port = free_port(), free_port(), free_port()
        text = config_text(sip_port, http_port, str(tmp_path / "cc.db"), _rtp_lo(sip_port))
        listen = f"listen: [udp:127.0.0.1:{sip_port}, tcp:127.0.0.1:{sip_port}]"
        for old, new in ((listen, listen[:-1] + f", ws:127.0.0.1:{ws_port}]"), *edits):
            assert text.count(old) == 1, f"tests.support.cc.config_text changed: {old!r}"
            text = text.replace(old, new)
        return text, (sip_port, http_port, ws_port)
    with _node_thread(tmp_path, make_text) as (nt, (sip_port, http_port, ws_port)):
        yield nt, sip_port, http_port, ws_port


def browser_expect(timeout_ms: int):
    """Playwright's expect with `timeout_ms`, once Chromium is known to be there: a missing browser fails the
    test (make test installs it), it never skips it."""
    import pytest
    from tools.browser import BrowserMissing, check
    try:
        check()
    except BrowserMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    from playwright.sync_api import expect
    expect.set_options(timeout=timeout_ms)
    return expect


def sign_on(page, base: str, account: str, softphone: str, expect, video: bool = False) -> None:
    """On the agent page: log in, register the softphone, accept video calls if `video`, sign in (idle)."""
    page.goto(base + "/agent")
    page.fill("#account", account)
    page.fill("#password", ACCOUNTS[account])
    page.click("#login-submit")
    expect(page.locator("#sp-number")).to_have_text(softphone)
    page.fill("#sp-password", PASSWORDS[softphone])
    page.click("#sp-connect")
    expect(page.locator("#sip-status")).to_have_attribute("data-sip", "registered")
    if video:
        page.check("#video")
    page.click("#btn-sign-in")
    expect(page.locator("#state")).to_have_attribute("data-state", "idle")


def wait_for(pred, timeout=5.0, phones=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        if phones is not None:
            phones.pump(0.05)
        else:
            time.sleep(0.05)
    return bool(pred())


def agent_on_break(sip_port: int, http_port: int) -> Api:
    """Alice registered (to a port nobody answers) and signed in but on a break: callers stay queued."""
    from tools.agents_load import register_agents
    assert register_agents(sip_port, [("70001", PASSWORDS["70001"])], "cc.test", free_port()) == 1
    api = Api(http_port)
    api.login("acme_alice")
    api.call("POST", "/api/agents/me/sign-in", expect=200)
    api.call("POST", "/api/agents/me/state", {"state": "rest", "reason": "break"}, expect=200)
    return api
