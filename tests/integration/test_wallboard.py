"""The wallboard page in headless Chromium against a real node: a supervisor signs in and sees queues, agents and
calls, the board follows changes live (WebSocket events, no reload), nothing overflows its card from 1280 to
3840 px, and Listen calls the supervisor's phone. Screenshots go to artifacts/ at the repo root."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import urllib.request
from pathlib import Path

from softswitch.node.compose import Node, credentials_from_config, options_from_config
from softswitch.settings import parse_config
from benchmarks.tenant import TENANT_PASSWORD, write_tenant
from tests.conftest import NodeThread, free_port, start_with_free_ports
from tests.support.cc import ACCOUNTS, PASSWORDS, Api, _rtp_lo, browser_expect, cc_node, config_text, wait_for
from tests.support.sipclient import UdpClient
from tests.support.sipp import SCENARIOS, SIPP
from tools.agents_load import register_agents
from tools.browser import headless_chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TIMEOUT_MS = 15_000


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, dict(r.headers), r.read()


def _screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"wallboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)
    assert path.stat().st_size > 10_000, f"{path} looks empty ({path.stat().st_size} bytes)"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return ARTIFACTS / path.name


SDP = ("v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0\r\na=sendrecv\r\n")


class Customer:
    """A customer's phone on a raw UDP socket: calls a number, answers whatever the switch asks in the dialog
    with 200 (session refreshes), hangs up."""

    def __init__(self, sip_port: int, number: str, called: str, name: str = "", call_id: str = "") -> None:
        self.sip_port, self.number, self.called, self.name = sip_port, number, called, name
        self.client = UdpClient(("127.0.0.1", sip_port))
        self.call_id = call_id or f"wb-{number}-{called}"
        self.to_tag = ""
        self.responses: list = []
        self.stop = False
        self.thread: threading.Thread | None = None

    def request(self, method: str, cseq: int) -> bytes:
        body = SDP if method == "INVITE" else ""
        to = f"<sip:{self.called}@cc.test>" + (f";tag={self.to_tag}" if self.to_tag else "")
        who = f'"{self.name}" ' if self.name else ""
        port = self.client.addr[1]
        return (f"{method} sip:{self.called}@127.0.0.1:{self.sip_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{self.call_id}-{method}-{cseq};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: {who}<sip:{self.number}@x.test>;tag=wb{self.number}\r\nTo: {to}\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:{self.number}@127.0.0.1:{port}>\r\n"
                + ("Content-Type: application/sdp\r\n" if body else "")
                + f"Content-Length: {len(body)}\r\n\r\n{body}").encode()

    def _final(self, method: str):
        for _ in range(20):
            m = self.client.recv(3)
            if m is not None and getattr(m, "status", 0) >= 200 and method in (m.get("CSeq") or ""):
                return m
        raise AssertionError(f"no final response to {method}")

    def dial(self) -> "Customer":
        self.client.send(self.request("INVITE", 1))
        ok = self._final("INVITE")
        assert ok.status == 200, ok.status            # the switch answers queued callers itself
        self.to_tag = ok.to.tag
        self.client.send(self.request("ACK", 1))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self) -> None:
        while not self.stop:
            data = self.client.recv_raw(0.2)
            if data is None:
                continue
            head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
            first, *lines = head.split("\r\n")
            if first.startswith("SIP/2.0"):
                self.responses.append(first)
                continue
            keep = [h for h in lines if h.split(":", 1)[0].strip().lower() in ("via", "from", "to", "call-id", "cseq")]
            self.client.send(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode())

    def hang_up(self) -> None:
        self.client.send(self.request("BYE", 2))

    def close(self) -> None:
        self.stop = True
        if self.thread is not None:
            self.thread.join(2)
        self.client.close()


class Refuser:
    """A phone that turns every call down (486 Busy Here)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.invites = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                data, src = self.sock.recvfrom(65535)
            except OSError:
                continue
            if not data.startswith(b"INVITE "):
                continue
            self.invites += 1
            lines = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")[1:]
            name = lambda h: h.split(":", 1)[0].strip().lower()      # noqa: E731
            keep = [h for h in lines if name(h) in ("via", "from", "call-id", "cseq")]
            keep += [h + ";tag=refuser" for h in lines if name(h) == "to"]
            self.sock.sendto(("SIP/2.0 486 Busy Here\r\n" + "\r\n".join(keep) +
                              "\r\nContent-Length: 0\r\n\r\n").encode(), src)

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.sock.close()


# --- geometry checks, run in the page ------------------------------------------------------------------------
OVERFLOW_JS = """() => {
  const bad = [];
  const visible = (e) => e.getClientRects().length > 0;
  for (const card of document.querySelectorAll('.queue, .panel, .tile')) {
    if (!visible(card)) continue;
    const c = card.getBoundingClientRect();
    for (const e of card.querySelectorAll('*')) {
      if (!visible(e)) continue;
      const r = e.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      if (r.left < c.left - 1 || r.right > c.right + 1 || r.top < c.top - 1 || r.bottom > c.bottom + 1) {
        bad.push(`${e.tagName.toLowerCase()}.${e.getAttribute('class') || ''}[${e.dataset.field || ''}]` +
                 ` "${(e.textContent || '').trim().slice(0, 30)}" outside ${card.className}`);
      }
    }
    if (card.scrollWidth > card.clientWidth + 1) bad.push(`${card.className} scrolls sideways`);
  }
  for (const e of document.querySelectorAll('.tile .value, .tile .label, .chip, td, th')) {
    if (visible(e) && e.scrollWidth > e.clientWidth + 1) {
      bad.push(`clipped: ${e.getAttribute('class') || e.tagName} "${e.textContent.trim().slice(0, 30)}"`);
    }
  }
  if (document.documentElement.scrollWidth > window.innerWidth) bad.push('the page scrolls sideways');
  return bad;
}"""

FILL_JS = """() => {
  const box = document.getElementById('queues').getBoundingClientRect();
  const cards = [...document.querySelectorAll('.queue')].map((c) => c.getBoundingClientRect());
  return {width: innerWidth, box_left: box.left, box_right: box.right,
          right: Math.max(...cards.map((r) => r.right)), left: Math.min(...cards.map((r) => r.left))};
}"""


def _fits(page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 1080 if width <= 1920 else 2160})
    page.wait_for_timeout(300)                  # one layout pass and a tick of the clocks
    assert page.evaluate(OVERFLOW_JS) == [], width
    fill = page.evaluate(FILL_JS)
    # the cards span the width of the screen, bar the page's margins
    assert fill["left"] - 0 < 0.04 * width and width - fill["right"] < 0.04 * width, fill


def test_wallboard_live_in_headless_chromium(tmp_path):
    expect = browser_expect(TIMEOUT_MS)

    with cc_node(tmp_path) as (nt, sip_port, http_port):
        base = f"http://127.0.0.1:{http_port}"
        # Alice (agent 1001, queue support) registered and signed in: idle.
        assert register_agents(sip_port, [("70001", PASSWORDS["70001"])], "cc.test", free_port()) == 1
        alice = Api(http_port)
        alice.login("acme_alice")
        alice.call("POST", "/api/agents/me/sign-in", expect=200)
        assert alice.state()["state"] == "idle"

        # The page and its assets need no token; the API still does.
        status, headers, body = _get(base + "/wallboard")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert b"/wallboard/static/wallboard.js" in body and "script-src 'self'" in headers["Content-Security-Policy"]
        for asset, kind in (("wallboard.js", "javascript"), ("wallboard-chart.js", "javascript"),
                            ("wallboard.css", "text/css")):
            status, headers, _ = _get(f"{base}/wallboard/static/{asset}")
            assert status == 200 and kind in headers["Content-Type"], (asset, headers)
        assert Api(http_port).call("GET", "/api/queues")[0] == 401
        assert Api(http_port).call("GET", "/api/wallboard")[0] == 401
        assert Api(http_port).call("GET", "/api/wallboard/trends")[0] == 401

        with headless_chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(TIMEOUT_MS)
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))

            page.goto(base + "/wallboard")
            page.wait_for_selector("#login-form")
            _screenshot(page, tmp_path, "1-sign-in")

            # A wrong password is refused on the form.
            page.fill("#account", "acme_sam")
            page.fill("#password", "not-the-password")
            page.click("#login-submit")
            expect(page.locator("#login-error")).to_contain_text("wrong account or password")
            problems.clear()    # the refused login logs a 401 in the console: expected

            page.fill("#account", "acme_sam")
            page.fill("#password", ACCOUNTS["acme_sam"])
            page.click("#login-submit")

            support = page.locator('section[data-queue="support"]')
            support.wait_for()
            expect(page.locator("#login-view")).to_be_hidden()
            assert page.locator('section[data-queue="sales"]').count() == 1
            row = page.locator('tr[data-agent="1001"]')
            expect(row.locator('[data-field="name"]')).to_have_text("Alice")
            expect(row.locator('[data-field="state"]')).to_have_text("ready")
            expect(row.locator('[data-field="reason"]')).to_have_text("signed in")
            expect(page.locator("#conn")).to_have_attribute("data-conn", "live")
            expect(support.locator('[data-state="idle"]')).to_have_attribute("data-count", "1")
            expect(support.locator('[data-field="waiting"]')).to_have_text("0")
            expect(row.locator('[data-field="registered"]')).to_have_text("registered")
            bob = page.locator('tr[data-agent="1002"]')
            expect(bob.locator('[data-field="state"]')).to_have_text("offline")
            expect(bob.locator('[data-field="reason"]')).to_have_text("not signed in")
            # nobody serves sales: said, in red
            sales = page.locator('section[data-queue="sales"]')
            expect(sales.locator('[data-kpi="agents_needed"]')).to_have_attribute("data-level", "alarm")
            expect(sales.locator('[data-sub="agents_needed"]')).to_have_text("nobody signed in")
            expect(row.locator('[data-field="time_in_state"]')).to_have_text(re.compile(r"^\d+:\d\d$"))
            shot_idle = _screenshot(page, tmp_path, "2-idle")

            # Live: Alice goes busy (lunch) through the API; the page follows without a reload, by its WebSocket.
            page.evaluate("window.__same_document = true")
            events_before = page.evaluate("window.wallboard.events")
            alice.call("POST", "/api/agents/me/state", {"state": "busy", "reason": "lunch"}, expect=200)
            expect(row.locator('[data-field="state"]')).to_have_text("busy")
            expect(row.locator('[data-field="reason"]')).to_have_text("lunch")
            assert page.evaluate("window.__same_document === true"), "the page reloaded"
            # the change notice comes at most once a second: the fallback poll may show the change first
            page.wait_for_function("n => window.wallboard.events > n", arg=events_before)
            expect(row).to_have_attribute("data-state", "busy")
            expect(row.locator('[data-field="state"] .chip')).to_have_class(re.compile(r"\bstate-busy\b"))
            expect(support.locator('[data-state="busy"]')).to_have_attribute("data-count", "1")
            expect(support.locator('[data-state="idle"]')).to_have_attribute("data-count", "0")
            # back to ready: the reason is a word, not the state table's event name
            alice.call("POST", "/api/agents/me/state", {"state": "idle"}, expect=200)
            expect(row.locator('[data-field="reason"]')).to_have_text("ready")
            alice.call("POST", "/api/agents/me/state", {"state": "busy", "reason": "lunch"}, expect=200)
            expect(row.locator('[data-field="reason"]')).to_have_text("lunch")
            shot_busy = _screenshot(page, tmp_path, "3-busy-lunch")

            # A customer calls support while nobody is free: queued; the card shows the caller and the longest
            # wait ticks up client-side between refreshes. Then they hang up (a short abandon: under 5 s is
            # likely, but either way the counts say it).
            cust = Customer(sip_port, "5550100", "4001").dial()
            try:
                expect(support.locator('[data-field="waiting"]')).to_have_text("1")
                expect(support).to_have_class(re.compile(r"\bhas-waiting\b"))
                longest = support.locator('[data-field="longest_wait"]')
                expect(longest).to_have_text(re.compile(r"^(?!0:00$)\d+:\d\d$"))      # waiting for a while now
                first = longest.inner_text()
                expect(longest).not_to_have_text(first)                # and it ticks up
                expect(support.locator('[data-field="counts"]')).to_contain_text("entered 1")
                expect(page.locator('#waiting-calls tr[data-call="wb-5550100-4001"] [data-field="caller"]')
                       ).to_have_text("5550100")
                shot_waiting = _screenshot(page, tmp_path, "4-caller-waiting")
                cust.hang_up()
                expect(support.locator('[data-field="waiting"]')).to_have_text("0")
                expect(support.locator('[data-field="counts"]')).to_contain_text("abandoned 1")
                expect(longest).to_have_text("0:00")
                expect(page.locator("#no-waiting")).to_be_visible()
            finally:
                cust.close()

            assert not problems, problems

    for shot in (shot_idle, shot_busy, shot_waiting):
        assert shot.exists() and shot.stat().st_size > 10_000


def _busy_node(tmp_path):
    """cc_node's tenant with sales judged more strictly (90% goal, abandons under 60 s apart) and wallboard
    thresholds of its own (support: amber from 1 waiting, red from 2)."""
    def make():
        sip_port, http_port = free_port(), free_port()
        text = config_text(sip_port, http_port, str(tmp_path / "cc.db"), _rtp_lo(sip_port))
        old = "{name: sales, strategy: linear, ring_timeout: 4s, wrap_up: 1s, max_wait: 30s}"
        assert text.count(old) == 1, "tests.support.cc.config_text changed"
        text = text.replace(old, old[:-1] + ", service_level_goal: 90%, short_abandon: 60s}")
        text += ("wallboard:\n  thresholds: {abandon_rate: {warn: 5%, alarm: 10%}}\n"
                 "  queues:\n    support: {thresholds: {waiting: {warn: 1, alarm: 2}}}\n")
        (tmp_path / "cc.yaml").write_text(text)
        cfg = parse_config(text, str(tmp_path / "cc.yaml"))
        return NodeThread(lambda loop: Node(options_from_config(cfg), cfg, loop, credentials_from_config(cfg))), \
            (sip_port, http_port)
    return start_with_free_ports(make)


def test_wallboard_with_calls_supervise_and_layout(tmp_path):
    expect = browser_expect(TIMEOUT_MS)
    assert SIPP, "sipp is not installed (make test installs the sip-tester package)"
    nt, (sip_port, http_port) = _busy_node(tmp_path)
    uas_port = free_port()
    # Agents' phones (and later the supervisor's): one SIPp that answers every offer at once.
    uas = subprocess.Popen([SIPP, "-sf", f"{SCENARIOS}/agent_uas.xml", "-i", "127.0.0.1", "-p", str(uas_port),
                            "-nostdin", "-trace_err"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    customers: list[Customer] = []
    try:
        base = f"http://127.0.0.1:{http_port}"
        assert register_agents(sip_port, [(u, PASSWORDS[u]) for u in ("70001", "70003")], "cc.test", uas_port) == 2
        alice, carol = Api(http_port), Api(http_port)
        alice.login("acme_alice")
        alice.call("POST", "/api/agents/me/sign-in", expect=200)
        carol.login("acme_carol")
        carol.call("POST", "/api/agents/me/sign-in", expect=200)
        carol.call("POST", "/api/agents/me/state", {"state": "busy", "reason": "team meeting"}, expect=200)
        sam = Api(http_port)
        sam.login("acme_sam")

        def board():
            return sam.call("GET", "/api/wallboard", expect=200)[1]

        # Ann calls support: Alice's phone answers; two callers wait (sales has nobody ready, support's only
        # agent is talking); one more calls sales and hangs up at once (a short abandon there: under 60 s).
        customers.append(Customer(sip_port, "5550101", "4001", "Ann Lee", "ann-1").dial())
        assert wait_for(lambda: len(board()["calls"]["active"]) == 1, 20), board()["calls"]
        customers.append(Customer(sip_port, "5550102", "4002", "Ben Ortiz", "ben-1").dial())
        customers.append(Customer(sip_port, "5550104", "4001", call_id="dee-1").dial())
        quitter = Customer(sip_port, "5550103", "4002", call_id="quit-1").dial()
        quitter.hang_up()
        customers.append(quitter)
        assert wait_for(lambda: len(board()["calls"]["waiting"]) == 2, 20), board()["calls"]
        b = board()
        (active,) = b["calls"]["active"]
        assert active["caller"] == {"number": "5550101", "name": "Ann Lee"} and active["agent_name"] == "Alice"
        assert b["supervisor_phone"] == "70004" and b["can_supervise"] is True
        sales = next(q for q in b["queues"] if q["name"] == "sales")
        assert (sales["short_abandoned"], sales["service_level_goal"]) == (1, 0.9)

        # An agent's account sees the board without callers' numbers
        bob = Api(http_port)
        bob.login("acme_bob")
        seen = bob.call("GET", "/api/wallboard", expect=200)[1]
        assert seen["can_supervise"] is False
        assert all("caller" not in c for c in seen["calls"]["waiting"] + seen["calls"]["active"])
        assert "5550101" not in repr(seen)
        trends = sam.call("GET", "/api/wallboard/trends", expect=200)[1]
        assert trends["minutes"] == 60 and trends["queues"]["support"][-1]["waiting_max"] >= 1

        with headless_chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 1080})
            page.set_default_timeout(TIMEOUT_MS)
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.goto(base + "/wallboard")
            page.fill("#account", "acme_sam")
            page.fill("#password", ACCOUNTS["acme_sam"])
            page.click("#login-submit")
            support = page.locator('section[data-queue="support"]')
            sales_card = page.locator('section[data-queue="sales"]')
            support.wait_for()

            # agents by name, reasons in words
            expect(page.locator('tr[data-agent="1001"] [data-field="name"]')).to_have_text("Alice")
            expect(page.locator('tr[data-agent="1001"] [data-field="reason"]')).to_have_text("on a call")
            expect(page.locator('tr[data-agent="1003"] [data-field="name"]')).to_have_text("Carol")
            expect(page.locator('tr[data-agent="1003"] [data-field="reason"]')).to_have_text("team meeting")
            expect(page.locator('tr[data-agent="1002"] [data-field="reason"]')).to_have_text("not signed in")
            # service level with its goal, from each queue's settings
            expect(support.locator('[data-field="goal"]')).to_have_text("goal 80% in 20 s")
            expect(sales_card.locator('[data-sub="service_level"]')).to_have_text("goal 90% in 20 s")
            expect(support.locator('[data-field="service_level"]')).to_have_text("100%")
            # the short abandon is shown, counted apart
            expect(sales_card.locator('[data-sub="abandon_rate"]')).to_have_text("0 abandoned + 1 short (under 1 min, not in the rate)")
            expect(sales_card.locator('[data-field="counts"]')).to_contain_text("abandoned 1 (1 short)")
            # threshold colours: support has 1 waiting (amber from 1), sales too but with the tenant's default
            expect(support.locator('[data-kpi="waiting"]')).to_have_attribute("data-level", "warn")
            expect(support.locator('[data-kpi="service_level"]')).to_have_attribute("data-level", "ok")
            # waiting and active calls with their times
            waiting = page.locator("#waiting-calls tbody tr")
            expect(waiting).to_have_count(2)
            ben = page.locator('#waiting-calls tr[data-call="ben-1"]')
            expect(ben.locator('[data-field="caller"]')).to_contain_text("5550102")
            expect(ben.locator('[data-field="caller"]')).to_contain_text("Ben Ortiz")
            expect(ben.locator('[data-field="queue"]')).to_have_text("sales")
            expect(ben.locator('[data-field="wait"]')).to_have_text(re.compile(r"^\d+:\d\d$"))
            ann = page.locator('#active-calls tr[data-call="ann-1"]')
            expect(ann.locator('[data-field="agent"]')).to_have_text("Alice")
            expect(ann.locator('[data-field="caller"]')).to_contain_text("5550101")
            talk = ann.locator('[data-field="talk"]')
            expect(talk).to_have_text(re.compile(r"^\d+:\d\d$"))
            before = talk.inner_text()
            expect(talk).not_to_have_text(before)                    # ticks
            # the trend chart has points
            chart = support.locator("svg.trend-chart")
            expect(chart).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))
            assert support.locator("svg.trend-chart circle.pt-waiting").count() >= 1

            # nothing overflows its card, and the cards fill the screen, from 1280 to 3840 px
            _fits(page, 1280)
            shot_1280 = _screenshot(page, tmp_path, "1280")
            _fits(page, 1920)
            shot_1920 = _screenshot(page, tmp_path, "1920")
            for width in (1440, 2560, 3840):
                _fits(page, width)
            _screenshot(page, tmp_path, "3840")
            page.set_viewport_size({"width": 1920, "height": 1080})

            # Listen before the supervisor's phone is registered: a clear error on the page, nothing started
            ann.locator('button[data-mode="listen"]').click()
            error = page.locator("#supervise-error")
            expect(error).to_be_visible()
            expect(error).to_contain_text("Listen failed: the supervisor's softphone is not registered")
            expect(error).to_contain_text("70004")
            assert all(s is None for s in nt.call(lambda: [c.supervisor for c in nt.node.calls.calls.values()]))
            shot_error = _screenshot(page, tmp_path, "supervise-error")
            assert problems == ["console error: Failed to load resource: the server responded with a status of 409 "
                                "(Conflict)"], problems
            problems.clear()    # the refused request logs its 409 in the console: expected

            # Sam's phone registered but turning the call down: the page says so instead of "calling" for ever
            refuser = Refuser()
            try:
                assert register_agents(sip_port, [("70004", PASSWORDS["70004"])], "cc.test", refuser.port) == 1
                ann.locator('button[data-mode="listen"]').click()
                expect(error).to_be_hidden()
                expect(error).to_contain_text("Listen failed: phone 70004 was called but did not answer")
                assert refuser.invites >= 1
            finally:
                refuser.close()
            shot_refused = _screenshot(page, tmp_path, "supervise-refused")

            # with Sam's phone registered (its newest binding), Listen calls it and the switch puts it on the call
            assert register_agents(sip_port, [("70004", PASSWORDS["70004"])], "cc.test", uas_port) == 1
            ann.locator('button[data-mode="listen"]').click()
            expect(error).to_be_hidden()

            def supervised():
                return nt.call(lambda: [(c.supervisor.state, c.supervisor_mode) for c in nt.node.calls.calls.values()
                                        if c.supervisor is not None])
            assert wait_for(lambda: supervised() == [("confirmed", "listen")], 20), supervised()
            expect(ann.locator('[data-field="supervise-status"]')).to_have_text("supervisor listening · hang up phone 70004 to stop")
            expect(ann.locator('button[data-mode="listen"]')).to_have_attribute("aria-pressed", "true")
            shot_listen = _screenshot(page, tmp_path, "listening")
            assert not problems, problems

            # an agent signed in on the board: no buttons, no callers' numbers
            agent_page = browser.new_page(viewport={"width": 1280, "height": 900})
            agent_page.set_default_timeout(TIMEOUT_MS)
            agent_page.goto(base + "/wallboard")
            agent_page.fill("#account", "acme_bob")
            agent_page.fill("#password", ACCOUNTS["acme_bob"])
            agent_page.click("#login-submit")
            agent_page.locator('section[data-queue="support"]').wait_for()
            expect(agent_page.locator("#active-calls tbody tr")).to_have_count(1)
            expect(agent_page.locator('#active-calls [data-field="agent"]')).to_have_text("Alice")
            assert agent_page.locator("#active-calls button:visible").count() == 0
            assert agent_page.locator('[data-field="caller"]:visible').count() == 0
            assert "5550101" not in agent_page.content()
    finally:
        for c in customers:
            c.hang_up()
            c.close()
        uas.terminate()
        uas.wait(10)
        nt.stop()

    for shot in (shot_1280, shot_1920, shot_error, shot_refused, shot_listen):
        assert shot.exists() and shot.stat().st_size > 10_000


def _site_node(tmp_path, agents: int, queues: int):
    """A generated tenant (benchmarks/tenant.py) in a node thread: many agents, many queues."""
    def make():
        t = write_tenant(str(tmp_path / "site.yaml"), agents=agents, queues=queues, sip_port=free_port(),
                         http_port=free_port(), workdir=str(tmp_path))
        cfg = parse_config(Path(t.path).read_text(), t.path)
        return NodeThread(lambda loop: Node(options_from_config(cfg), cfg, loop, credentials_from_config(cfg))), t
    return start_with_free_ports(make)


def test_wallboard_of_a_big_site_is_a_page_of_agents_and_compact_queues(tmp_path):
    """600 agents, 8 queues, 12 signed in: the board carries counts, not agents; the panel lists a page
    (signed-in agents first on a big site), filters and searches server-side, pages; the queue cards are compact
    and open one at a time; nothing overflows at 1280 and 1920 px."""
    expect = browser_expect(TIMEOUT_MS)
    nt, t = _site_node(tmp_path, 600, 8)
    customers: list[Customer] = []
    try:
        base = f"http://127.0.0.1:{t.http_port}"
        assert register_agents(t.sip_port, t.phones[:12], t.realm, free_port()) == 12
        sup = Api(t.http_port)
        sup.token = sup.call("POST", "/api/login", {"account": t.supervisor[0], "password": TENANT_PASSWORD},
                             expect=200)[1]["token"]
        for agent_id in t.agent_ids[:12]:
            sup.call("POST", f"/api/agents/{agent_id}/sign-in", expect=200)
        sup.call("POST", f"/api/agents/{t.agent_ids[3]}/state", {"state": "rest", "reason": "lunch"}, expect=200)

        status, _, raw = _get_auth(base + "/api/wallboard", sup.token)
        board = json.loads(raw)
        assert status == 200 and "agents" not in board and len(raw) < 40_000, len(raw)
        assert board["agent_counts"]["total"] == 600 and board["agent_counts"]["signed_in"] == 12
        assert board["agent_counts"]["by_state"]["rest"] == 1 and board["account"] == t.supervisor[0]
        page = sup.call("GET", "/api/wallboard/agents?state=signed_in&limit=5", expect=200)[1]
        assert page["total"] == 12 and [a["name"] for a in page["agents"]] == \
            ["Agent 0", "Agent 1", "Agent 2", "Agent 3", "Agent 4"]           # numbers read as numbers
        assert sup.call("GET", "/api/wallboard/agents?q=AGENT%20599", expect=200)[1]["total"] == 1
        assert sup.call("GET", "/api/wallboard/agents?queue=q2&state=offline", expect=200)[1]["total"] == 75 - 2   # agents 2 and 10 signed in
        for bad in ("limit=0", "limit=10000", "offset=-3", "state=sleeping", "queue=nope", "sort=x", "q=" + "z" * 65):
            status, body = sup.call("GET", "/api/wallboard/agents?" + bad)
            assert status == 400 and body["error"], (bad, body)
        assert Api(t.http_port).call("GET", "/api/wallboard/agents")[0] == 401

        with headless_chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 1080})
            page.set_default_timeout(TIMEOUT_MS)
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.goto(base + "/wallboard")
            page.fill("#account", t.supervisor[0])
            page.fill("#password", TENANT_PASSWORD)
            page.click("#login-submit")
            page.locator('section[data-queue="q7"]').wait_for()
            expect(page.locator("#queues")).to_have_class(re.compile(r"\bcompact\b"))
            expect(page.locator("#conn")).to_have_attribute("data-conn", "live")
            # a big site starts with the agents signed in
            expect(page.locator("#filter-state")).to_have_value("signed_in")
            expect(page.locator("#agents tbody tr")).to_have_count(12)
            expect(page.locator("#agents-count")).to_have_text("12 of 600 signed in")
            expect(page.locator('#agent-states [data-state="rest"]')).to_have_attribute("data-count", "1")
            expect(page.locator(f'tr[data-agent="{t.agent_ids[3]}"] [data-field="reason"]')).to_have_text("lunch")
            _fits(page, 1280)
            _screenshot(page, tmp_path, "site-1280")
            _fits(page, 1920)
            _screenshot(page, tmp_path, "site-1920")
            # every agent, a page at a time
            page.select_option("#filter-state", "")
            expect(page.locator("#page-info")).to_have_text("1–50 of 600 listed")
            expect(page.locator("#page-prev")).to_be_disabled()
            page.click("#page-next")
            expect(page.locator("#page-info")).to_have_text("51–100 of 600 listed")
            expect(page.locator("#agents tbody tr")).to_have_count(50)
            # a search, answered by the server
            page.fill("#filter-q", "agent 59")
            expect(page.locator("#page-info")).to_have_text("1–11 of 11 listed")
            expect(page.locator("#agents tbody tr").first.locator('[data-field="name"]')).to_have_text("Agent 59")
            # a state chip lists that state's agents
            page.fill("#filter-q", "")
            page.locator('#agent-states [data-state="rest"]').click()
            expect(page.locator("#agents tbody tr")).to_have_count(1)
            expect(page.locator("#filter-state")).to_have_value("rest")
            # many callers waiting: the longest twelve, and a button for the rest
            for agent_id in (t.agent_ids[0], t.agent_ids[8]):            # q0's signed-in agents: busy
                sup.call("POST", f"/api/agents/{agent_id}/state", {"state": "busy", "reason": "meeting"}, expect=200)
            for k in range(14):
                customers.append(Customer(t.sip_port, f"55502{k:02d}", "4001", call_id=f"many-{k}").dial())
            expect(page.locator("#waiting-count")).to_have_text("14")
            expect(page.locator("#waiting-calls tbody tr")).to_have_count(12)
            expect(page.locator("#waiting-calls tbody tr").first).to_have_attribute("data-call", "many-0")
            expect(page.locator("#more-waiting")).to_have_text("show 2 more")
            page.click("#more-waiting")
            expect(page.locator("#waiting-calls tbody tr")).to_have_count(14)
            _fits(page, 1280)
            _screenshot(page, tmp_path, "site-callers-1280")
            # a compact card opens with all its figures and its trend
            q0 = page.locator('section[data-queue="q0"]')
            expect(q0.locator("svg.trend-chart")).to_be_hidden()
            q0.locator("button.more").click()
            expect(q0.locator("svg.trend-chart")).to_be_visible()
            expect(q0.locator('[data-kpi="agents_needed"]')).to_be_visible()
            _fits(page, 1920)
            assert not problems, problems
    finally:
        for c in customers:
            c.hang_up()
            c.close()
        nt.stop()


def _get_auth(url: str, token: str):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, dict(r.headers), r.read()
