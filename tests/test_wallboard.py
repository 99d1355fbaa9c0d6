"""The wallboard page in headless Chromium: a supervisor signs in, sees queues and agents, and the board follows
an agent's state change live (WebSocket events, no reload). Screenshots go to artifacts/ at the repo root."""

from __future__ import annotations

import re
import shutil
import urllib.request
from pathlib import Path


from tests.support.cc import ACCOUNTS, PASSWORDS, Api, browser_expect, cc_node
from tests.conftest import free_port
from tests.support.sipclient import UdpClient

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TIMEOUT_MS = 10_000


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


def _request(method: str, port: int, client: UdpClient, call_id: str, cseq: int, to_tag: str = "") -> bytes:
    """A customer's request to the support number 4001 (INVITE with SDP, ACK, BYE)."""
    body = SDP if method == "INVITE" else ""
    to = "<sip:4001@cc.test>" + (f";tag={to_tag}" if to_tag else "")
    return (f"{method} sip:4001@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{client.addr[1]};"
            f"branch=z9hG4bK-{call_id}-{method}-{cseq};rport\r\nMax-Forwards: 70\r\n"
            f"From: <sip:cust@x.test>;tag=wb\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: <sip:cust@127.0.0.1:{client.addr[1]}>\r\n"
            + ("Content-Type: application/sdp\r\n" if body else "")
            + f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def _final(client: UdpClient, method: str):
    for _ in range(20):
        m = client.recv(3)
        if m is not None and getattr(m, "status", 0) >= 200 and method in (m.get("CSeq") or ""):
            return m
    raise AssertionError(f"no final response to {method}")


def test_wallboard_live_in_headless_chromium(tmp_path):
    from tools.agents_load import register_agents
    from tools.browser import headless_chromium
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
        for asset, kind in (("wallboard.js", "javascript"), ("wallboard.css", "text/css")):
            status, headers, _ = _get(f"{base}/wallboard/static/{asset}")
            assert status == 200 and kind in headers["Content-Type"], (asset, headers)
        assert Api(http_port).call("GET", "/api/queues")[0] == 401

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
            expect(row.locator('[data-field="state"]')).to_have_text("idle")
            expect(page.locator("#conn")).to_have_attribute("data-conn", "live")
            expect(support.locator('[data-state="idle"]')).to_have_attribute("data-count", "1")
            expect(support.locator('[data-field="waiting"]')).to_have_text("0")
            expect(row.locator('[data-field="registered"]')).to_have_text("yes")
            expect(page.locator('tr[data-agent="1002"] [data-field="state"]')).to_have_text("offline")
            expect(row.locator('[data-field="time_in_state"]')).to_have_text(re.compile(r"^\d+:\d\d$"))
            shot_idle = _screenshot(page, tmp_path, "2-idle")

            # Live: Alice goes busy (lunch) through the API; the page follows without a reload, by its WebSocket.
            page.evaluate("window.__same_document = true")
            events_before = page.evaluate("window.wallboard.events")
            alice.call("POST", "/api/agents/me/state", {"state": "busy", "reason": "lunch"}, expect=200)
            expect(row.locator('[data-field="state"]')).to_have_text("busy")
            expect(row.locator('[data-field="reason"]')).to_have_text("lunch")
            assert page.evaluate("window.__same_document === true"), "the page reloaded"
            assert page.evaluate("window.wallboard.events") > events_before, "no WebSocket event reached the page"
            expect(row).to_have_attribute("data-state", "busy")
            expect(row.locator('[data-field="state"] .chip')).to_have_class(re.compile(r"\bstate-busy\b"))
            expect(support.locator('[data-state="busy"]')).to_have_attribute("data-count", "1")
            expect(support.locator('[data-state="idle"]')).to_have_attribute("data-count", "0")
            shot_busy = _screenshot(page, tmp_path, "3-busy-lunch")

            # A customer calls support while nobody is free: queued (the switch answers queued callers); the card
            # shows the caller and the longest wait ticks up client-side between refreshes. Then they hang up.
            client = UdpClient(("127.0.0.1", sip_port))
            try:
                client.send(_request("INVITE", sip_port, client, "wb-1", 1))
                ok = _final(client, "INVITE")
                assert ok.status == 200, ok.status
                client.send(_request("ACK", sip_port, client, "wb-1", 1, ok.to.tag))
                expect(support.locator('[data-field="waiting"]')).to_have_text("1")
                expect(support).to_have_class(re.compile(r"\bhas-waiting\b"))
                longest = support.locator('[data-field="longest_wait"]')
                expect(longest).to_have_text(re.compile(r"^(?!0:00$)\d+:\d\d$"))      # waiting for a while now
                first = longest.inner_text()
                expect(longest).not_to_have_text(first)                # and it ticks up
                expect(support.locator('[data-field="counts"]')).to_contain_text("entered 1")
                shot_waiting = _screenshot(page, tmp_path, "4-caller-waiting")
                client.send(_request("BYE", sip_port, client, "wb-1", 2, ok.to.tag))
                assert _final(client, "BYE").status == 200
                expect(support.locator('[data-field="waiting"]')).to_have_text("0")
                expect(support.locator('[data-field="counts"]')).to_contain_text("abandoned 1")
                expect(longest).to_have_text("0:00")
            finally:
                client.close()

            assert not problems, problems

    for shot in (shot_idle, shot_busy, shot_waiting):
        assert shot.exists() and shot.stat().st_size > 10_000
