"""Click-to-dial end to end: a company page on another origin (its own HTTP server) embeds the node's widget; headless
Chromium is the website visitor who presses the button, and the agent page (JsSIP, auto-answer) is the agent.

- voice: the visitor's call goes into a voice_click_to_dial queue, the agent auto-answers, the agent hears the
  visitor's (fake) microphone and the visitor receives audio; the recording holds sound; the CDR says channel
  click_to_dial and the page's URL. A page on an origin the widget does not list gets no token, and its call never
  starts.
- video: into a video_click_to_dial queue, both browsers decode the other's video.
- refusals without a browser: the token endpoints' origin, nonce and page checks, rate limits, and INVITEs over the
  SIP WebSocket with a forged, spent or other-route token, another origin's connection, or no token on /widget.
Screenshots of the widget on the page at 1280 and 1920 px go to artifacts/c2d-*.png."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from tests.support.cc import Api, browser_expect, ws_node
from tests.integration.test_agent_page import MEDIA_FLAGS, TIMEOUT_MS, _loudest_rms, _until
from tests.integration.test_video_call import agent_page, customer_page_server

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
PAGE = "c2d_shop.html"
AGENT_STATS = "window.rtcStats(window.__pcs || [])"
VISITOR_STATS = "window.rtcStats(window.clickToDial.pc ? [window.clickToDial.pc] : [])"


@contextmanager
def c2d_node(tmp_path, origins: list[str], per_address: int = 50):
    """ws_node plus click-to-dial queues web_voice (Alice, recorded) and web_video (Carol), routes 4010 and 4011,
    and a widget `shop` for `origins` with both routes."""
    listed = ", ".join(f'"{o}"' for o in origins)
    with ws_node(tmp_path, (
            ('softphone_password: "Phone-Pass-1!", queues: [support]}',
             'softphone_password: "Phone-Pass-1!", queues: [support, web_voice]}'),
            ("queues: [sales]}", "queues: [sales, web_video]}"),
            ("called_routes:\n",
             "  - {name: web_voice, type: voice_click_to_dial, ring_timeout: 10s, wrap_up: 0s, max_wait: 30s,"
             " record: true}\n"
             "  - {name: web_video, type: video_click_to_dial, ring_timeout: 10s, wrap_up: 0s, max_wait: 30s}\n"
             "called_routes:\n"),
            ('  - {called: "4002", queue: sales}\n',
             '  - {called: "4002", queue: sales}\n  - {called: "4010", queue: web_voice}\n'
             '  - {called: "4011", queue: web_video, media: video}\n'),
            ("ivr:\n  menu:",
             f"click_to_dial:\n  per_address: {per_address}\n  per_node: 1000\n"
             f"  widgets:\n    - {{name: shop, origins: [{listed}], routes: [\"4010\", \"4011\"]}}\n"
             "ivr:\n  menu:"),
    )) as node:
        yield node


def _post(url: str, body, origin: str | None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "text/plain", **({"Origin": origin} if origin else {})}
    req = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"null")


def _token(base: str, origin: str, page: str | None = None) -> dict:
    status, _, n = _post(base + "/widget/nonce", {"widget": "shop"}, origin)
    assert status == 200, n
    status, _, t = _post(base + "/widget/token", {"widget": "shop", "nonce": n["nonce"],
                                                  "page": page or origin + "/contact"}, origin)
    assert status == 200, t
    return t


def _cdrs(db: Path) -> list[dict]:
    with sqlite3.connect(db) as c:
        c.row_factory = sqlite3.Row
        return [dict(r) for r in c.execute("SELECT * FROM cdr")]


def _shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"c2d-{name}.png"
    page.screenshot(path=str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def _visitor(browser, page_url: str, width: int, problems):
    ctx = browser.new_context(viewport={"width": width, "height": 900 if width < 1600 else 1080})
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("pageerror", lambda exc: problems.append(f"visitor pageerror: {exc}"))
    page.goto(page_url)
    page.locator("[data-click-to-dial] .call").wait_for()
    return page


def test_click_to_dial_voice_call_from_another_origin(tmp_path):
    from tools.browser import headless_chromium
    expect = browser_expect(TIMEOUT_MS)
    with customer_page_server() as shop, customer_page_server() as other:
        shop_origin = f"http://127.0.0.1:{shop.server_port}"
        with c2d_node(tmp_path, [shop_origin]) as (nt, sip_port, http_port, ws_port), \
                headless_chromium(MEDIA_FLAGS) as browser:
            base = f"http://127.0.0.1:{http_port}"
            problems: list[str] = []
            api = Api(http_port)
            api.login("acme_alice")
            agent = agent_page(browser, base, expect, problems, height=900, video=False, account="acme_alice",
                               softphone="70001")

            # A page on an origin the widget does not list: the button is there, the node refuses it a token.
            stranger = _visitor(browser, f"http://127.0.0.1:{other.server_port}/{PAGE}?" +
                                urlencode({"node": base, "route": "4010"}), 1280, problems)
            stranger.click("[data-click-to-dial] .call")
            assert _until(lambda: stranger.evaluate("window.clickToDial.state") == "failed", 10), \
                stranger.evaluate("window.clickToDial")
            _shot(stranger, "refused-origin")
            assert agent.evaluate("window.agentPage.lastInvite") is None

            # The company's page, at two widths: the button before the call.
            query = urlencode({"node": base, "route": "4010", "label": "Call us"})
            page_url = f"{shop_origin}/{PAGE}?{query}"
            wide = _visitor(browser, page_url, 1920, problems)
            _shot(wide, "button-1920")
            wide.context.close()
            visitor = _visitor(browser, page_url, 1280, problems)
            _shot(visitor, "button-1280")
            visitor.click("[data-click-to-dial] .call")

            invite = _until(lambda: agent.evaluate("window.agentPage.lastInvite"), 15)
            assert invite, f"no INVITE reached the agent: {visitor.evaluate('window.clickToDial')}; {problems}"
            assert invite["queue"] == "web_voice" and invite["video"] is False and invite["answerAfter"] == 2, invite
            assert _until(lambda: agent.evaluate("window.agentPage.autoAnswered"), 6), "no auto-answer"
            assert _until(lambda: agent.evaluate("window.agentPage.call") == "active", 10)
            assert visitor.evaluate("window.clickToDial.state") == "connected", visitor.evaluate("window.clickToDial")
            # the agent hears the visitor's microphone; the visitor receives the agent's audio
            assert _until(lambda: agent.evaluate("window.agentPage.stats()")["audioEnergy"] > 0.01, 15), \
                agent.evaluate("window.agentPage.stats()")
            assert _until(lambda: visitor.evaluate(VISITOR_STATS)["audioBytesReceived"] > 2000, 10), \
                visitor.evaluate(VISITOR_STATS)
            assert api.state()["state"] == "talking", api.state()
            _until(lambda: False, 2)          # a couple of seconds of talk in the recording and on the timer
            _shot(visitor, "call-1280")
            visitor.set_viewport_size({"width": 1920, "height": 1080})
            _shot(visitor, "call-1920")

            visitor.click("[data-click-to-dial] .hang")
            assert _until(lambda: agent.evaluate("window.agentPage.call") == "ended", 10)
            assert _until(lambda: visitor.evaluate("window.clickToDial.state") == "ended", 5)
            _shot(visitor, "ended-1920")

            rows = _until(lambda: [r for r in _cdrs(tmp_path / "cc.db") if r["queue"] == "web_voice"], 10)
            assert rows and len(rows) == 1, _cdrs(tmp_path / "cc.db")
            cdr = rows[0]
            assert cdr["channel"] == "click_to_dial" and cdr["page"] == page_url, cdr
            assert cdr["outcome"] == "answered" and cdr["agent_id"] == "1001" and cdr["called"] == "4010", cdr
            assert cdr["recording"] and _loudest_rms(cdr["recording"]) > 300, cdr

            # A visitor who closes the tab, with an agent: the call ends at once, with its CDR.
            visitor.context.close()
            gone = _visitor(browser, page_url, 1280, problems)
            gone.click("[data-click-to-dial] .call")
            assert _until(lambda: agent.evaluate("window.agentPage.call") == "active", 20), \
                gone.evaluate("window.clickToDial")
            gone.context.close()
            assert _until(lambda: agent.evaluate("window.agentPage.call") == "ended", 10)
            rows = _until(lambda: [r for r in _cdrs(tmp_path / "cc.db") if r["queue"] == "web_voice"][1:], 10)
            assert rows and rows[0]["end_reason"] == "customer connection closed", rows
            assert rows[0]["outcome"] == "answered" and rows[0]["channel"] == "click_to_dial", rows
            # ... and while queued (the agent on a break): abandoned, with its CDR.
            api.call("POST", "/api/agents/me/state", {"state": "rest", "reason": "break"}, expect=200)
            gone = _visitor(browser, page_url, 1280, problems)
            gone.click("[data-click-to-dial] .call")
            assert _until(lambda: gone.evaluate("window.clickToDial.state") == "connected", 15)
            assert _until(lambda: api.call("GET", "/api/queues/web_voice")[1]["waiting"] == 1, 10), \
                api.call("GET", "/api/queues/web_voice")
            gone.context.close()
            rows = _until(lambda: [r for r in _cdrs(tmp_path / "cc.db") if r["queue"] == "web_voice"][2:], 10)
            assert rows and rows[0]["end_reason"] == "customer connection closed", rows
            assert rows[0]["outcome"] == "abandoned" and rows[0]["agent_id"] is None, rows
            assert not [p for p in problems if "pageerror" in p], problems


def test_click_to_dial_video_call(tmp_path):
    from tools.browser import headless_chromium
    expect = browser_expect(TIMEOUT_MS)
    with customer_page_server() as shop:
        shop_origin = f"http://127.0.0.1:{shop.server_port}"
        with c2d_node(tmp_path, [shop_origin]) as (nt, sip_port, http_port, ws_port), \
                headless_chromium(MEDIA_FLAGS) as browser:
            base = f"http://127.0.0.1:{http_port}"
            problems: list[str] = []
            agent = agent_page(browser, base, expect, problems, height=900, video=True)
            visitor = _visitor(browser, f"{shop_origin}/{PAGE}?" + urlencode(
                {"node": base, "route": "4011", "label": "Video call"}), 1280, problems)
            visitor.click("[data-click-to-dial] .call")
            invite = _until(lambda: agent.evaluate("window.agentPage.lastInvite"), 15)
            assert invite, f"no INVITE reached the agent: {visitor.evaluate('window.clickToDial')}; {problems}"
            assert invite["queue"] == "web_video" and invite["video"] is True, invite
            assert _until(lambda: agent.evaluate("window.agentPage.call") == "active", 15)

            def frames():
                a, v = agent.evaluate(AGENT_STATS), visitor.evaluate(VISITOR_STATS)
                ok = a["videoFramesDecoded"] > 10 and v["videoFramesDecoded"] > 10 and a["audioBytesReceived"] > 0 \
                    and v["audioBytesReceived"] > 0
                return (a, v) if ok else None
            got = _until(frames, 30, step=0.25)
            assert got, (agent.evaluate(AGENT_STATS), visitor.evaluate(VISITOR_STATS), problems)
            _shot(visitor, "video-1280")
            visitor.set_viewport_size({"width": 1920, "height": 1080})
            _shot(visitor, "video-1920")
            visitor.click("[data-click-to-dial] .hang")
            assert _until(lambda: agent.evaluate("window.agentPage.call") == "ended", 10)
            rows = _until(lambda: [r for r in _cdrs(tmp_path / "cc.db") if r["queue"] == "web_video"], 10)
            assert rows and rows[0]["channel"] == "click_to_dial" and rows[0]["outcome"] == "answered", rows
            assert not [p for p in problems if "pageerror" in p], problems


# --- refusals, without a browser -------------------------------------------------------------------------------
INVITE = ("INVITE sip:{number}@cc.test SIP/2.0\r\nVia: SIP/2.0/WS visitor.invalid;branch=z9hG4bK{id};rport\r\n"
          "Max-Forwards: 70\r\nTo: <sip:{number}@cc.test>\r\nFrom: <sip:web-visitor@cc.test>;tag={id}\r\n"
          "Call-ID: {id}\r\nCSeq: 1 INVITE\r\nContact: <sip:v@visitor.invalid;transport=ws>\r\n{extra}"
          "Content-Length: 0\r\n\r\n")


async def _ws_invite(ws_port: int, origin: str, number: str, token: str | None, path: str = "/widget") -> int:
    """The first response status to an INVITE sent over a SIP WebSocket opened with `origin`; or the HTTP status
    of a refused upgrade (as a negative number)."""
    extra = f"X-Widget-Token: {token}\r\n" if token is not None else ""
    async with aiohttp.ClientSession() as s:
        try:
            ws = await s.ws_connect(f"ws://127.0.0.1:{ws_port}{path}", protocols=("sip",), origin=origin)
        except aiohttp.WSServerHandshakeError as exc:
            return -exc.status
        async with ws:
            await ws.send_str(INVITE.format(number=number, id=uuid.uuid4().hex, extra=extra))
            msg = await asyncio.wait_for(ws.receive(), 10)
            return int(msg.data.split(" ", 2)[1])


def test_click_to_dial_refusals(tmp_path):
    good = "http://shop.example:8000"
    with c2d_node(tmp_path, [good], per_address=8) as (nt, sip_port, http_port, ws_port):
        base = f"http://127.0.0.1:{http_port}"
        # token endpoints: origin allow-list (exact), CORS only for it, page on the same origin, nonce checks
        status, headers, body = _post(base + "/widget/nonce", {"widget": "shop"}, "http://evil.example")
        assert status == 403 and "Access-Control-Allow-Origin" not in headers, (status, headers, body)
        assert _post(base + "/widget/nonce", {"widget": "shop"}, None)[0] == 403
        assert _post(base + "/widget/nonce", {"widget": "other"}, good)[0] == 403
        assert _post(base + "/widget/nonce", b"{not json", good)[0] == 400
        assert _post(base + "/widget/nonce", b"x" * 5000, good)[0] == 413
        status, headers, n = _post(base + "/widget/nonce", {"widget": "shop"}, good)
        assert status == 200 and headers["Access-Control-Allow-Origin"] == good, headers
        assert _post(base + "/widget/token", {"widget": "shop", "nonce": n["nonce"], "page": "http://evil.example/"},
                     good)[0] == 400
        forged = n["nonce"][:-3] + ("AAA" if not n["nonce"].endswith("AAA") else "BBB")
        assert _post(base + "/widget/token", {"widget": "shop", "nonce": forged, "page": good + "/"}, good)[0] == 403
        status, _, t = _post(base + "/widget/token", {"widget": "shop", "nonce": n["nonce"], "page": good + "/c"},
                             good)
        assert status == 200 and t["ws_url"] == f"ws://127.0.0.1:{ws_port}/widget", t
        assert t["routes"] == [{"called": "4010", "video": False}, {"called": "4011", "video": True}], t
        assert _post(base + "/widget/token", {"widget": "shop", "nonce": n["nonce"], "page": good + "/"},
                     good)[0] == 403           # a nonce is spent once
        req = urllib.request.Request(base + "/widget/token", method="OPTIONS", headers={
            "Origin": good, "Access-Control-Request-Method": "POST"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == good

        async def sip_checks():
            token = t["token"]
            # the WebSocket at /widget: only from listed origins, and only with a token
            assert await _ws_invite(ws_port, "http://evil.example", "4010", token) == -403
            assert await _ws_invite(ws_port, good, "4010", None) == 403
            # a token from another origin's connection (the plain path lets any page connect)
            assert await _ws_invite(ws_port, "http://evil.example", "4010", token, path="/") == 403
            assert await _ws_invite(ws_port, good, "4010", token[:-2] + "xx") == 403           # forged
            assert await _ws_invite(ws_port, good, "4010", "v1.e30." + "A" * 43) == 403        # made up
            assert await _ws_invite(ws_port, good, "4001", token) == 403     # a route the widget does not have
            assert await _ws_invite(ws_port, good, "70001", token) == 403    # an agent's number: 403, no challenge
            assert await _ws_invite(ws_port, good, "4010", token) == 100     # its own route: the call goes ahead
            assert await _ws_invite(ws_port, good, "4010", token) == 403     # ... once
        asyncio.run(sip_checks())

        # rate limit per address: 8 a minute in this config; some went above, the rest until 429
        codes = [_post(base + "/widget/nonce", {"widget": "shop"}, good) for _ in range(15)]
        limited = [c for c in codes if c[0] == 429]
        assert limited and all(c[0] in (200, 429) for c in codes), [c[0] for c in codes]
        assert int(limited[0][1]["Retry-After"]) >= 1 and limited[0][1]["Access-Control-Allow-Origin"] == good
        with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
            metrics = r.read().decode()
        figures = {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                   if line.startswith("softswitch_click_to_dial_total{")}
        assert figures["calls"] == 1 and figures["calls_refused"] == 7 and figures["tokens"] == 1, figures
        assert figures["rate_limited"] == len(limited), figures
