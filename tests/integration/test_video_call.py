"""A video call between two browsers through a video queue: a JsSIP customer page in headless Chromium calls 4005
(route media: video -> queue video_support) over the node's ws: SIP listener; the agent page (acme_carol, softphone
70003, "Video calls" checked) auto-answers with video. Both legs are WebRtcLegs: audio goes through the media engine,
video is relayed leg to leg by aiortc. Both browsers must decode the other's video and receive audio.
Screenshots go to artifacts/video-*.png at the repo root."""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode


from tests.support.cc import Api, browser_expect, sign_on, ws_node
from tests.integration.test_agent_page import MEDIA_FLAGS, TIMEOUT_MS, _until

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CUSTOMER_PAGE = Path(__file__).resolve().parents[1] / "data" / "video_customer.html"

# Injected before the agent page's own scripts (CDP, not subject to its CSP): remembers its peer connections so the
# test can read video stats (window.agentPage.stats() reports audio only).
TRACK_PCS = """(() => {
  const Orig = window.RTCPeerConnection; if (!Orig) return;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) { const pc = new Orig(...args); window.__pcs.push(pc); return pc; };
  window.RTCPeerConnection.prototype = Orig.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Orig);
})();"""

RTC_STATS = Path(__file__).resolve().parents[1] / "data" / "rtc_stats.js"     # the customer page loads it too


def agent_page(browser, base: str, expect, problems: list, *, height: int, video: bool,
               account: str = "acme_carol", softphone: str = "70003"):
    """An agent's page (acme_carol's unless said), 1280 px wide: logged in, softphone registered, "Accept video
    calls" as `video` says, taking calls (idle); peer connections and their stats tracked, page errors into
    `problems`."""
    actx = browser.new_context(viewport={"width": 1280, "height": height})
    actx.add_init_script(TRACK_PCS)
    actx.add_init_script(path=RTC_STATS)
    agent = actx.new_page()
    agent.set_default_timeout(TIMEOUT_MS)
    agent.on("pageerror", lambda exc: problems.append(f"agent pageerror: {exc}"))
    sign_on(agent, base, account, softphone, expect, video)
    return agent
AGENT_STATS = "window.rtcStats(window.__pcs || [])"


@contextmanager
def video_node(tmp_path):
    """ws_node plus a video queue (video_support, agent 1003) and route 4005 -> it."""
    with ws_node(tmp_path, (
            ("queues: [sales]}", "queues: [sales, video_support]}"),
            ("called_routes:\n",
             "  - {name: video_support, type: video, ring_timeout: 10s, wrap_up: 0s, max_wait: 30s}\ncalled_routes:\n"),
            ('  - {called: "4002", queue: sales}\n',
             '  - {called: "4002", queue: sales}\n  - {called: "4005", queue: video_support, media: video}\n'),
    )) as node:
        yield node


@contextmanager
def customer_page_server():
    """tests/data over HTTP on 127.0.0.1 (a thread), for the customer page."""
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = partial(Quiet, directory=str(CUSTOMER_PAGE.parent))
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"video-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def test_browser_customer_video_call_to_browser_agent(tmp_path):
    from tools.browser import headless_chromium
    expect = browser_expect(TIMEOUT_MS)

    with video_node(tmp_path) as (nt, sip_port, http_port, ws_port):
        base = f"http://127.0.0.1:{http_port}"
        ws_url = f"ws://127.0.0.1:{ws_port}"
        api = Api(http_port)
        api.login("acme_carol")

        with headless_chromium(MEDIA_FLAGS) as browser, customer_page_server() as page_server:
            problems: list[str] = []

            # --- the agent: sign in, register 70003, video on, ACD idle
            agent = agent_page(browser, base, expect, problems, height=900, video=True)

            # --- the customer: a static page served from 127.0.0.1 (a secure context, and the same local address
            # space as the node's ws: listener), JsSIP loaded from the node
            cctx = browser.new_context(viewport={"width": 1100, "height": 560})
            customer = cctx.new_page()
            customer.set_default_timeout(TIMEOUT_MS)
            customer.on("pageerror", lambda exc: problems.append(f"customer pageerror: {exc}"))
            customer.on("console", lambda m: problems.append(f"customer console {m.type}: {m.text}"))
            customer.on("requestfailed", lambda r: problems.append(f"customer request failed: {r.url}"))
            page_url = f"http://127.0.0.1:{page_server.server_port}/{CUSTOMER_PAGE.name}"
            query = urlencode({"ws": ws_url, "jssip": base + "/agent/static/vendor/jssip.min.js",
                               "to": "sip:4005@cc.test"})
            customer.goto(f"{page_url}?{query}")

            invite = _until(lambda: agent.evaluate("window.agentPage.lastInvite"), 10)
            if not invite:
                _shot(agent, "agent-no-call")
                _shot(customer, "customer-no-call")
                raise AssertionError(f"no INVITE reached the agent: customer {customer.evaluate('window.customer')}; "
                                     f"API {api.state()}; {problems}")
            assert invite["queue"] == "video_support" and invite["video"] is True, invite
            assert _until(lambda: agent.evaluate("window.agentPage.autoAnswered"), 6), "the agent did not auto-answer"
            assert _until(lambda: agent.evaluate("window.agentPage.call") == "active", 10), \
                agent.evaluate("window.agentPage")
            assert _until(lambda: customer.evaluate("window.customer.state") == "connected", 5), \
                customer.evaluate("window.customer")

            def both_ok():
                a, c = agent.evaluate(AGENT_STATS), customer.evaluate("window.customer.stats()")
                ok = all(s["videoFramesDecoded"] > 0 and s["audioBytesReceived"] > 0 for s in (a, c))
                return (a, c) if ok else None

            got = _until(both_ok, 30, step=0.25)

            def more_frames():      # still flowing later (not just a key frame); and more on screen for the shots
                a, c = agent.evaluate(AGENT_STATS), customer.evaluate("window.customer.stats()")
                return (a, c) if got and a["videoFramesDecoded"] > got[0]["videoFramesDecoded"] + 10 and \
                    c["videoFramesDecoded"] > got[1]["videoFramesDecoded"] + 10 else None
            later = _until(more_frames, 30, step=0.25)
            a_stats, c_stats = later or (agent.evaluate(AGENT_STATS), customer.evaluate("window.customer.stats()"))
            shots = [_shot(agent, "agent"), _shot(customer, "customer")]
            print("agent stats", a_stats, "\ncustomer stats", c_stats, "\nscreenshots", *shots)
            assert got, f"video/audio not flowing both ways: agent {a_stats}, customer {c_stats}; {problems}"
            assert a_stats["videoFramesDecoded"] > got[0]["videoFramesDecoded"], (got, a_stats)
            assert c_stats["videoFramesDecoded"] > got[1]["videoFramesDecoded"], (got, c_stats)
            assert a_stats["audioBytesReceived"] > 0 and c_stats["audioBytesReceived"] > 0
            assert api.state()["state"] == "talking", api.state()

            # The customer hangs up; the agent's call ends.
            customer.evaluate("window.customer.hangup()")
            assert _until(lambda: agent.evaluate("window.agentPage.call") == "ended", 5), \
                agent.evaluate("window.agentPage")
            assert not [p for p in problems if "pageerror" in p], problems


SHARE_FLAGS = MEDIA_FLAGS + ["--auto-select-desktop-capture-source=Entire screen"]


def _shape(width: int, height: int) -> float:
    return width / height if height else 0.0


def _same_shape(stats: dict, width: int, height: int) -> bool:
    return abs(_shape(stats["videoFrameWidth"], stats["videoFrameHeight"]) - _shape(width, height)) < 0.05


def _desk_shot(page, name: str, width: int) -> Path:
    page.set_viewport_size({"width": width, "height": 1000 if width < 1600 else 1080})
    page.wait_for_timeout(150)
    return _shot(page, f"{name}-{width}")


def test_video_window_controls_and_screen_sharing(tmp_path):
    """On a video call the agent page shows the video window (never on voice calls, see test_agent_desk) and its
    controls: stop/start my video, zoom, hide, full screen, and sharing the screen (getDisplayMedia, replaceTrack
    on the video sender): the customer's browser decodes frames of the shared screen (its frame size), then of
    the camera again."""
    from tools.browser import headless_chromium
    expect = browser_expect(TIMEOUT_MS)

    with video_node(tmp_path) as (nt, sip_port, http_port, ws_port):
        base = f"http://127.0.0.1:{http_port}"
        with headless_chromium(SHARE_FLAGS) as browser, customer_page_server() as page_server:
            problems: list[str] = []
            # a 16:9 window: the shared "screen" of headless Chromium is the page's, unlike the 4:3 fake camera
            agent = agent_page(browser, base, expect, problems, height=720, video=True)
            expect(agent.locator("#video-panel")).to_be_hidden()

            customer = browser.new_context(viewport={"width": 1100, "height": 560}).new_page()
            customer.set_default_timeout(TIMEOUT_MS)
            customer.on("pageerror", lambda exc: problems.append(f"customer pageerror: {exc}"))
            query = urlencode({"ws": f"ws://127.0.0.1:{ws_port}", "jssip": base + "/agent/static/vendor/jssip.min.js",
                               "to": "sip:4005@cc.test"})
            customer.goto(f"http://127.0.0.1:{page_server.server_port}/{CUSTOMER_PAGE.name}?{query}")
            assert _until(lambda: agent.evaluate("window.agentPage.call") == "active", 30), \
                agent.evaluate("window.agentPage")
            expect(agent.locator("#video-panel")).to_be_visible()
            cstats = lambda: customer.evaluate("window.customer.stats()")       # noqa: E731
            astats = lambda: agent.evaluate(AGENT_STATS)                         # noqa: E731
            camera = _until(lambda: (lambda s: s if s["videoFramesDecoded"] > 10 and s["videoFrameWidth"] else None)(
                cstats()), 30, step=0.25)
            assert camera, (cstats(), problems)

            # Zoom, hide and show, full screen.
            small = agent.locator("#video-stage").bounding_box()["width"]
            agent.click("#btn-zoom")
            expect(agent.locator("#video-stage")).to_have_class("stage zoomed")
            assert agent.locator("#video-stage").bounding_box()["width"] > small
            agent.click("#btn-hide-video")
            expect(agent.locator("#video-stage")).to_be_hidden()
            expect(agent.locator("#btn-hide-video")).to_have_text("Show video")
            agent.click("#btn-hide-video")
            expect(agent.locator("#video-stage")).to_be_visible()
            agent.click("#btn-fullscreen")
            assert _until(lambda: agent.evaluate("document.fullscreenElement && document.fullscreenElement.id"), 5) \
                == "video-stage"
            agent.evaluate("document.exitFullscreen()")
            assert _until(lambda: agent.evaluate("document.fullscreenElement") is None, 5)

            # Share the screen: the customer decodes frames of another source, of the screen's size.
            agent.click("#btn-share")
            assert _until(lambda: agent.evaluate("window.agentDesk.sharing"), 10), \
                (agent.evaluate("window.agentDesk"), problems)
            # The sources are told apart by the shape of the decoded picture (the sender may scale it down).
            screen = agent.evaluate("window.agentDesk.shareSettings")
            assert screen and screen["width"] and abs(_shape(screen["width"], screen["height"]) - _shape(
                camera["videoFrameWidth"], camera["videoFrameHeight"])) > 0.1, (screen, camera)
            base_frames = cstats()["videoFramesDecoded"]
            shared = _until(lambda: (lambda s: s if _same_shape(s, screen["width"], screen["height"])
                                     and s["videoFramesDecoded"] > base_frames + 10 else None)(cstats()), 30, step=0.25)
            assert shared, (cstats(), screen, camera)
            expect(agent.locator("#btn-share")).to_have_text("Stop sharing")
            shots = [_desk_shot(agent, "agent-sharing", 1280), _desk_shot(agent, "agent-sharing", 1920),
                     _shot(customer, "customer-sees-screen")]

            # Stop sharing: the camera again.
            agent.click("#btn-share")
            assert _until(lambda: _same_shape(cstats(), camera["videoFrameWidth"], camera["videoFrameHeight"]), 30,
                          step=0.25), \
                f"customer {cstats()} camera {camera} screen {screen} agent {astats()}"

            # Stop my video: nothing is encoded any more; start it: the customer decodes the camera again.
            agent.click("#btn-camera")
            expect(agent.locator("#btn-camera")).to_have_text("Start my video")
            assert agent.evaluate("window.agentDesk.sendingVideo") is False
            agent.wait_for_timeout(500)          # frames already in flight
            before = astats()["videoFramesEncoded"]
            agent.wait_for_timeout(1000)
            assert astats()["videoFramesEncoded"] == before, "the page still encodes video after Stop my video"
            agent.click("#btn-camera")
            expect(agent.locator("#btn-camera")).to_have_text("Stop my video")
            again = cstats()["videoFramesDecoded"]
            assert _until(lambda: cstats()["videoFramesDecoded"] > again + 10, 30, step=0.25), cstats()

            customer.evaluate("window.customer.hangup()")
            assert _until(lambda: agent.evaluate("window.agentPage.call") == "ended", 5)
            expect(agent.locator("#video-panel")).to_be_hidden()
            print("screenshots", *shots, sep="\n")
            assert not [p for p in problems if "pageerror" in p], problems
