"""Web chat end to end in headless Chromium: visitors on a customer's website (another origin, a strict CSP) open the
node's widget; agents answer from the chat panel of the agent page. Three chats at once to one agent, a fourth
waiting for room, typing and delivered/read marks, a visitor who closes the tab, a transfer to another agent,
transcripts in the records database and `softswitch records export --kind chats`; a page on an origin that is not
allowed, bad frames and a flood from one visitor. Screenshots: artifacts/chat-*.png at 1280 and 1920 px."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from softswitch.records.store import RecordStore
from tests.conftest import free_port
from tests.support.cc import ACCOUNTS, browser_expect, wait_for
from tests.support.chat_site import chat_node, ready_agent, website

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TIMEOUT_MS = 15_000


def _shot(page, tmp_path: Path, name: str, width: int, full_page: bool = False) -> None:
    page.set_viewport_size({"width": width, "height": 1000 if width < 1900 else 1080})
    path = tmp_path / f"chat-{name}-{width}.png"
    page.screenshot(path=str(path), full_page=full_page)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def _watch(page, problems: list[str]) -> None:
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    # (the agent page has no icon: Chromium's own /favicon.ico request is not the page's problem)
    page.on("console", lambda m: problems.append(f"console: {m.text} at {m.location.get('url')}")
            if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico") else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)


def _agent_page(browser, base: str, account: str, problems: list[str]):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    _watch(page, problems)
    page.goto(base + "/agent")
    page.fill("#account", account)
    page.fill("#password", ACCOUNTS[account])
    page.click("#login-submit")
    return page


def _visitor(browser, url: str, problems: list[str]):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    _watch(page, problems)
    page.goto(url)
    page.click(".ssw-chat-launcher")
    return page


def _say(page, text: str, input_sel: str = ".ssw-chat-input") -> None:
    page.fill(input_sel, text)
    page.press(input_sel, "Enter")


def test_three_chats_typing_marks_closed_tab_transfer_and_transcripts(tmp_path):
    expect = browser_expect(TIMEOUT_MS)
    from tools.browser import headless_chromium
    site_port = free_port()
    with chat_node(tmp_path, site_port) as (nt, sip_port, http_port, ws_port), \
            website(http_port, site_port) as site, headless_chromium() as browser:
        base = f"http://127.0.0.1:{http_port}"
        alice_api = ready_agent(sip_port, http_port, "acme_alice", "70001")
        problems: list[str] = []
        alice = _agent_page(browser, base, "acme_alice", problems)
        panel = alice.locator("#chat-panel")
        expect(panel).to_be_visible()
        expect(panel.locator(".chat-count")).to_have_text("0 / 3")

        visitors = [_visitor(browser, site, problems) for _ in range(3)]
        for i, v in enumerate(visitors):
            expect(v.locator(".ssw-chat")).to_have_attribute("data-state", "chatting")
            expect(v.locator(".ssw-chat-status")).to_have_text("Chatting with Alice")
            _say(v, f"hello from visitor {i}")
        cards = panel.locator(".chat-card")
        expect(cards).to_have_count(3)
        expect(panel.locator(".chat-count")).to_have_text("3 / 3")
        for i in range(3):
            expect(panel.locator(".chat-card", has_text=f"hello from visitor {i}")).to_have_count(1)
        # each visitor's message was handed to the agent and read (the panel is on screen)
        for v in visitors:
            expect(v.locator(".ssw-from-visitor").last).to_have_attribute("data-mark", "read")

        # a fourth visitor waits: Alice is full (Bob has no chat panel open)
        fourth = _visitor(browser, site + "?session=secret123", problems)
        expect(fourth.locator(".ssw-chat")).to_have_attribute("data-state", "queued")
        expect(fourth.locator(".ssw-chat-status")).to_contain_text("Waiting for an agent")

        # typing shows on the agent's card, the agent answers one visitor only
        card0 = panel.locator(".chat-card", has_text="hello from visitor 0")
        visitors[0].locator(".ssw-chat-input").press_sequentially("wher", delay=30)
        expect(card0.locator(".chat-typing")).to_be_visible()
        card1 = panel.locator(".chat-card", has_text="hello from visitor 1")
        card1.locator(".chat-input").press_sequentially("Hi", delay=30)
        expect(visitors[1].locator(".ssw-chat-typing")).to_be_visible()
        card1.locator(".chat-input").press("Enter")
        expect(visitors[1].locator(".ssw-from-agent .ssw-text")).to_have_text(["Hi"])
        expect(visitors[1].locator(".ssw-from-agent .ssw-meta")).to_contain_text("Alice · ")
        expect(card1.locator(".from-agent").last).to_have_attribute("data-mark", "read")
        for v in (visitors[0], visitors[2], fourth):
            expect(v.locator(".ssw-from-agent")).to_have_count(0)

        for w in (1280, 1920):
            _shot(visitors[1], tmp_path, "visitor", w)
            _shot(alice, tmp_path, "agent", w)

        # visitor 2 closes the tab: the chat ends on Alice's panel, and the waiting visitor gets her place
        visitors[2].context.close()
        expect(panel.locator(".chat-card", has_text="hello from visitor 2").locator(".chat-status")).to_have_text(
            "the visitor left")
        expect(fourth.locator(".ssw-chat")).to_have_attribute("data-state", "chatting")
        _say(fourth, "finally")
        expect(panel.locator(".chat-card", has_text="finally")).to_have_count(1)

        # transfer visitor 0 to Bob, who opens his panel: he gets the transcript, the visitor is told
        ready_agent(sip_port, http_port, "acme_bob", "70002")
        bob = _agent_page(browser, base, "acme_bob", problems)
        expect(bob.locator("#chat-panel .chat-count")).to_have_text("0 / 3")
        card0.locator(".chat-agent").fill("1002")
        card0.locator(".chat-transfer").click()
        expect(card0.locator(".chat-status")).to_have_text("transferred")
        bob_card = bob.locator("#chat-panel .chat-card", has_text="hello from visitor 0")
        expect(bob_card).to_have_count(1)
        expect(bob_card.locator(".chat-status")).to_have_text("transferred to you")
        expect(visitors[0].locator(".ssw-chat-status")).to_have_text("Chatting with Bob")
        bob_card.locator(".chat-input").fill("Bob here")
        bob_card.locator(".chat-input").press("Enter")
        expect(visitors[0].locator(".ssw-from-agent .ssw-text")).to_have_text(["Bob here"])
        # the supervisor's figures: chats with agents, how many per agent
        sam = _api(http_port, "acme_sam")
        k = sam.call("GET", "/api/chat", expect=200)[1]
        assert (k["active"], k["waiting"], k["agents_online"]) == (3, 0, 2), k
        assert k["max_concurrency"] == 2 and k["queues"][0]["answered"] == 4 and k["average_speed_of_answer"] >= 0
        assert {c["agent_id"] for c in k["chats"]} == {"1001", "1002"}
        board = sam.call("GET", "/api/wallboard", expect=200)[1]
        assert board["chat"]["active"] == 3
        wall = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        wall.set_default_timeout(TIMEOUT_MS)
        _watch(wall, problems)
        wall.goto(base + "/wallboard")
        wall.fill("#account", "acme_sam")
        wall.fill("#password", ACCOUNTS["acme_sam"])
        wall.click("#login-submit")
        expect(wall.locator("#chat-tile")).to_be_visible()
        expect(wall.locator('[data-field="chat_active"]')).to_have_text("3")
        expect(wall.locator('[data-field="chat_waiting"]')).to_have_text("0")
        wall.locator("#chat-tile").scroll_into_view_if_needed()
        _shot(wall, tmp_path, "wallboard", 1280, full_page=True)
        wall.context.close()

        # the visitor ends one, the agent ends another, the rest close their tabs
        visitors[0].click(".ssw-chat-end")
        expect(visitors[0].locator(".ssw-chat")).to_have_attribute("data-state", "ended")
        panel.locator(".chat-card", has_text="hello from visitor 1").locator(".chat-end").click()
        expect(visitors[1].locator(".ssw-chat-status")).to_have_text("The agent ended the chat")
        fourth.context.close()
        visitors[1].context.close()
        assert wait_for(lambda: _api_get(alice_api, "/api/chat")["active"] == 0, 15)
        assert not problems, problems

    # transcripts are records, exported like CDRs
    store = RecordStore(f"sqlite:///{tmp_path}/cc.db")
    try:
        rows = store.chats()
    finally:
        store.close()
    assert len(rows) == 4, rows
    by_first = {r["transcript"][0]["text"]: r for r in rows}
    r0 = by_first["hello from visitor 0"]
    assert (r0["agents"], r0["agent_id"], r0["end_reason"], r0["outcome"]) == (["1001", "1002"], "1002",
                                                                               "visitor ended", "answered")
    assert [m["text"] for m in r0["transcript"]] == ["hello from visitor 0", "Bob here"]
    r1 = by_first["hello from visitor 1"]
    assert r1["end_reason"] == "agent ended" and r1["transcript"][1]["read_at"] is not None
    assert by_first["hello from visitor 2"]["end_reason"] == "visitor left"
    assert by_first["finally"]["wait_s"] > 0 and by_first["finally"]["origin"] == f"http://localhost:{site_port}"
    assert by_first["finally"]["page"] == f"http://localhost:{site_port}/"      # the page's query is not sent
    out = subprocess.run([sys.executable, "-m", "softswitch.cli", "records", "export", str(tmp_path / "cc.yaml"),
                          "--kind", "chats", "--format", "json"], capture_output=True, text=True, timeout=60,
                         env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    exported = json.loads(out.stdout)
    assert len(exported) == 4 and {e["queue"] for e in exported} == {"web"}
    assert all(e["started_at"].endswith("+00:00") for e in exported)


def test_other_origin_bad_frames_and_a_flood_from_one_visitor(tmp_path):
    expect = browser_expect(TIMEOUT_MS)
    from tools.browser import headless_chromium
    site_port = free_port()
    chat = "  rate: {messages: 5, burst: 10}\n  cut_off_after: 20\n  max_frame: 4096\n"
    with chat_node(tmp_path, site_port, chat) as (nt, sip_port, http_port, ws_port), \
            website(http_port, site_port) as site, headless_chromium() as browser:
        base = f"http://127.0.0.1:{http_port}"
        ready_agent(sip_port, http_port, "acme_alice", "70001")
        problems: list[str] = []
        alice = _agent_page(browser, base, "acme_alice", problems)
        panel = alice.locator("#chat-panel")
        expect(panel.locator(".chat-count")).to_have_text("0 / 3")

        # the node's own chat page (to link to): the widget opens by itself, the node's origin is always allowed
        own = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        own.set_default_timeout(TIMEOUT_MS)
        _watch(own, problems)
        own.goto(base + "/chat/?queue=web")
        expect(own.locator(".ssw-chat")).to_have_attribute("data-state", "chatting")
        _say(own, "from the node's page")
        expect(panel.locator(".chat-card", has_text="from the node's page")).to_have_count(1)
        _shot(own, tmp_path, "page", 1280)
        own.context.close()
        expect(panel.locator(".chat-card", has_text="from the node's page").locator(".chat-status")).to_have_text(
            "the visitor left")

        # the same site reached as 127.0.0.1:PORT is another origin, not in chat.origins: refused by the node
        other = _visitor(browser, site.replace("localhost", "127.0.0.1"), [])
        expect(other.locator(".ssw-chat-status")).to_have_text("Chat is not available right now")
        expect(panel.locator(".chat-card:not([data-over])")).to_have_count(0)

        # one visitor's page sends garbage, then floods; another visitor's chat is not disturbed
        calm = _visitor(browser, site, problems)
        expect(calm.locator(".ssw-chat")).to_have_attribute("data-state", "chatting")
        _say(calm, "just a question")
        flooder = _visitor(browser, site, problems)
        expect(flooder.locator(".ssw-chat")).to_have_attribute("data-state", "chatting")
        result = flooder.evaluate(f"""async () => {{
            const ws = new WebSocket("ws://127.0.0.1:{http_port}/chat/ws?queue=web");
            const got = [];
            let closed = null;
            ws.onmessage = (ev) => got.push(JSON.parse(ev.data));
            ws.onclose = (ev) => {{ closed = ev.code; }};
            await new Promise((ok) => {{ ws.onopen = ok; }});
            const pause = (ms) => new Promise((ok) => setTimeout(ok, ms));
            for (const bad of ["x".repeat(5000), "{{not json", JSON.stringify({{type: "shout"}}),
                               JSON.stringify({{type: "message", text: "y".repeat(3000)}})]) {{
                ws.send(bad);
                await pause(250);
            }}
            ws.send(new Uint8Array([1, 2, 3]));
            await pause(300);
            const errorsBefore = got.filter((f) => f.type === "error").map((f) => f.error);
            const stillOpen = ws.readyState === WebSocket.OPEN;
            for (let i = 0; i < 300 && ws.readyState === WebSocket.OPEN; i++) ws.send(JSON.stringify({{type: "message", text: "spam " + i}}));
            for (let i = 0; i < 100 && closed === null; i++) await pause(50);
            return {{errorsBefore, stillOpen, closed, ended: got.filter((f) => f.type === "ended").map((f) => f.reason),
                     sent: got.filter((f) => f.type === "message").length}};
        }}""")
        assert result["stillOpen"], result
        errs = result["errorsBefore"]
        assert any("too large" in e for e in errs) and any("not JSON" in e for e in errs), errs
        assert any("unknown frame type" in e for e in errs) and any("too long" in e for e in errs), errs
        assert any("JSON text" in e for e in errs) and len(errs) == 5, errs
        assert result["closed"] == 1000 and result["ended"] == ["flood"], result
        assert 1 <= result["sent"] <= 15, result          # the burst got through, the flood did not
        # the flooder's address is refused for a while; the chats already open go on
        again = _visitor(browser, site, [])
        expect(again.locator(".ssw-chat-status")).to_have_text("Chat is not available right now")
        expect(panel.locator(".chat-card", has_text="just a question")).to_have_count(1)
        assert panel.locator(".chat-msg", has_text="spam 50").count() == 0
        calm_card = panel.locator(".chat-card", has_text="just a question")
        calm_card.locator(".chat-input").fill("ok, ask away")
        calm_card.locator(".chat-input").press("Enter")
        expect(calm.locator(".ssw-from-agent .ssw-text")).to_have_text(["ok, ask away"])
        k = _api(http_port, "acme_sam").call("GET", "/api/chat", expect=200)[1]
        assert k["cut_off"] == 1 and k["bad_frames"] == 5 and k["refused"] >= 2, k
        assert not problems, problems


def _api(http_port: int, account: str):
    from tests.support.cc import Api
    api = Api(http_port)
    api.login(account)
    return api


def _api_get(api, path: str) -> dict:
    return api.call("GET", path, expect=200)[1]
