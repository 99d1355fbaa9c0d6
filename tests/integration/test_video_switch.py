"""A voice call switched to video and back mid-call, in Chromium with fake media: a JsSIP customer page calls the
voice queue 4002 with audio only; the agent page answers (WebRTC phone 70003) and presses "Switch to video". The
page re-INVITEs with a video m-line added; the node (media anchored: both legs are WebRtcLegs) re-INVITEs the
customer with video, answers the agent with what the customer accepted and relays the video leg to leg. Both
browsers must decode the other's video; "Switch to voice" puts video inactive and frames stop, audio goes on; a
second switch to video uses the same m-line again. Screenshots of the agent page at 1280 and 1920 px go to
artifacts/video-agent-switched-*.png."""

from __future__ import annotations

from urllib.parse import urlencode

from tests.support.cc import Api, browser_expect
from tests.integration.test_agent_page import MEDIA_FLAGS, TIMEOUT_MS, _until
from tests.integration.test_video_call import (AGENT_STATS, CUSTOMER_PAGE, _desk_shot, _shot, agent_page,
                                               customer_page_server, video_node)


def _flowing(stats_of, key: str, more: int = 10, timeout: float = 30):
    """Stats once `key` grew by more than `more` from now (None if it never did)."""
    start = stats_of()[key]
    return _until(lambda: (lambda s: s if s[key] > start + more else None)(stats_of()), timeout, step=0.25)


def _switch(agent, expect, n: int, to: str, phones=None) -> dict:
    """Press the switch button and wait for the page to record the n-th switch."""
    button = agent.locator("#btn-switch-video")
    expect(button).to_be_enabled()
    expect(button).to_have_text("Switch to video" if to == "video" else "Switch to voice")
    button.click()
    done = _until(lambda: len(agent.evaluate("window.agentDesk.switches")) >= n, 20, phones)
    assert done, (agent.evaluate("window.agentDesk"), agent.evaluate("window.agentPage"))
    return agent.evaluate("window.agentDesk.switches")[n - 1]


def _agent_page(browser, base: str, expect, problems: list):
    """The agent page of acme_carol with softphone 70003 registered and taking calls (not "Accept video calls")."""
    agent = agent_page(browser, base, expect, problems, height=1000, video=False)
    expect(agent.locator("#btn-switch-video")).to_be_disabled()        # no call yet
    return agent


def test_voice_call_switched_to_video_and_back(tmp_path):
    from tools.browser import headless_chromium
    expect = browser_expect(TIMEOUT_MS)

    with video_node(tmp_path) as (nt, sip_port, http_port, ws_port):
        base = f"http://127.0.0.1:{http_port}"
        api = Api(http_port)
        api.login("acme_carol")
        with headless_chromium(MEDIA_FLAGS) as browser, customer_page_server() as page_server:
            problems: list[str] = []
            agent = _agent_page(browser, base, expect, problems)

            customer = browser.new_context(viewport={"width": 1100, "height": 560}).new_page()
            customer.set_default_timeout(TIMEOUT_MS)
            customer.on("pageerror", lambda exc: problems.append(f"customer pageerror: {exc}"))
            customer.on("console", lambda m: problems.append(f"customer console {m.type}: {m.text}"))
            query = urlencode({"ws": f"ws://127.0.0.1:{ws_port}", "to": "sip:4002@cc.test", "video": "0",
                               "jssip": base + "/agent/static/vendor/jssip.min.js"})
            customer.goto(f"http://127.0.0.1:{page_server.server_port}/{CUSTOMER_PAGE.name}?{query}")

            # --- a voice call: no video m-line, no video panel
            assert _until(lambda: agent.evaluate("window.agentPage.call") == "active", 40), \
                (agent.evaluate("window.agentPage"), customer.evaluate("window.customer"), problems)
            assert _until(lambda: customer.evaluate("window.customer.state") == "connected", 10)
            invite = agent.evaluate("window.agentPage.lastInvite")
            assert invite["queue"] == "sales" and invite["video"] is False, invite
            cstats = lambda: customer.evaluate("window.customer.stats()")       # noqa: E731
            astats = lambda: agent.evaluate(AGENT_STATS)                         # noqa: E731
            assert _flowing(cstats, "audioBytesReceived", 1000) and _flowing(astats, "audioBytesReceived", 1000), \
                (cstats(), astats())
            assert cstats()["videoFramesDecoded"] == 0 and astats()["videoFramesDecoded"] == 0
            expect(agent.locator("#video-panel")).to_be_hidden()

            # --- switch to video: the customer got a re-INVITE with video; both decode the other's camera
            first = _switch(agent, expect, 1, "video")
            assert first["video"] is True, (first, problems)
            assert customer.evaluate("window.customer.reinvites")[-1]["video"] is True
            expect(agent.locator("#video-panel")).to_be_visible()
            expect(agent.locator("#btn-switch-video")).to_have_text("Switch to voice")
            seen_by_customer = _flowing(cstats, "videoFramesDecoded")
            seen_by_agent = _flowing(astats, "videoFramesDecoded")
            assert seen_by_customer and seen_by_agent, (cstats(), astats(), problems)
            assert seen_by_customer["videoFrameWidth"] and seen_by_agent["videoFrameWidth"]
            assert api.state()["state"] == "talking", api.state()
            shots = [_desk_shot(agent, "agent-switched", 1280), _desk_shot(agent, "agent-switched", 1920),
                     _shot(customer, "customer-switched")]

            # --- back to voice: the video panel goes, no more frames either way, the audio goes on
            second = _switch(agent, expect, 2, "voice")
            assert second["video"] is False, second
            assert customer.evaluate("window.customer.reinvites")[-1]["video"] is False
            expect(agent.locator("#video-panel")).to_be_hidden()
            agent.wait_for_timeout(1000)          # frames already in flight
            c0, a0 = cstats()["videoFramesDecoded"], astats()["videoFramesDecoded"]
            assert _flowing(cstats, "audioBytesReceived", 2000) and _flowing(astats, "audioBytesReceived", 2000)
            assert cstats()["videoFramesDecoded"] == c0 and astats()["videoFramesDecoded"] == a0, \
                "video still decoded after switching to voice"

            # --- and to video again: the same m-line comes back to life
            third = _switch(agent, expect, 3, "video")
            assert third["video"] is True, third
            assert _flowing(cstats, "videoFramesDecoded") and _flowing(astats, "videoFramesDecoded"), \
                (cstats(), astats())

            # hold and resume on the switched call (re-INVITEs the leg answers alone, from its new session)
            agent.click("#btn-hold")
            assert _until(lambda: agent.evaluate("window.agentPage.call") == "held", 10), \
                agent.evaluate("window.agentPage")
            expect(agent.locator("#btn-switch-video")).to_be_disabled()
            agent.click("#btn-hold")
            assert _until(lambda: agent.evaluate("window.agentPage.call") == "active", 10), \
                agent.evaluate("window.agentPage")
            assert _flowing(cstats, "videoFramesDecoded") and _flowing(astats, "audioBytesReceived", 2000)

            customer.evaluate("window.customer.hangup()")
            assert _until(lambda: agent.evaluate("window.agentPage.call") == "ended", 10)
            expect(agent.locator("#video-panel")).to_be_hidden()
            print("screenshots", *shots, sep="\n")
            assert not [p for p in problems if "pageerror" in p], problems


def test_switch_to_video_with_a_sip_phone_customer_is_refused_and_the_call_goes_on(tmp_path):
    """The customer is a SIP phone (pjsua, audio only): the node cannot carry the browser's video to it, so the
    re-INVITE is answered with the video m-line refused (port 0); the page says so, keeps the call as a voice call
    (its camera off again) and the audio goes on."""
    from tools.browser import headless_chromium
    from tools.softphone import Softphones
    expect = browser_expect(TIMEOUT_MS)
    phones = Softphones.get()

    with video_node(tmp_path) as (nt, sip_port, http_port, ws_port):
        base = f"http://127.0.0.1:{http_port}"
        api = Api(http_port)
        api.login("acme_carol")
        with headless_chromium(MEDIA_FLAGS) as browser:
            problems: list[str] = []
            agent = _agent_page(browser, base, expect, problems)
            cust = phones.account("5559000", "x", f"127.0.0.1:{sip_port}", domain="cc.test", register=False,
                                  auto_answer=False, tone_hz=440)
            call = None
            try:
                call = cust.call(f"sip:4002@127.0.0.1:{sip_port}")
                assert _until(lambda: agent.evaluate("window.agentPage.call") == "active", 40, phones), \
                    (agent.evaluate("window.agentPage"), problems)
                assert _until(lambda: call.state == "CONFIRMED", 10, phones), call.states
                astats = lambda: agent.evaluate(AGENT_STATS)                         # noqa: E731
                start = astats()["audioBytesReceived"]
                assert _until(lambda: astats()["audioBytesReceived"] > start + 1000, 20, phones), astats()

                switched = _switch(agent, expect, 1, "video", phones)
                assert switched["video"] is False, switched
                expect(agent.locator("#call-error")).to_have_text("the other side did not take video")
                expect(agent.locator("#video-panel")).to_be_hidden()
                expect(agent.locator("#btn-switch-video")).to_have_text("Switch to video")
                assert agent.evaluate("window.agentPage.call") == "active"
                assert agent.evaluate("window.agentPage.desk.localStream().getVideoTracks().length") == 0
                assert call.state == "CONFIRMED" and api.state()["state"] == "talking", (call.states, api.state())
                more = astats()["audioBytesReceived"]
                assert _until(lambda: astats()["audioBytesReceived"] > more + 2000, 20, phones), astats()

                agent.click("#btn-hangup")
                assert _until(lambda: call.ended_at is not None, 10, phones), call.states
            finally:
                phones.remove(cust, unregister=False)
                if call is not None:        # no pjsua2 object may outlive the library (see test_agent_page)
                    call.call = None
                call = cust = None
            assert not [p for p in problems if "pageerror" in p], problems
