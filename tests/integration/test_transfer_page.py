"""The agent page's transfer buttons in headless Chromium: a browser agent consults a pjsua2 agent, makes it a
conference, and leaves; the customer and the consulted agent talk on (tones checked), and a blind transfer from
the page sends another customer to a queue."""

from __future__ import annotations

import time

from tests.support.cc import PASSWORDS, browser_expect, sign_on, ws_node
from tests.integration.test_agent_page import MEDIA_FLAGS, TIMEOUT_MS, _until
from tests.integration.test_audio import tone_levels
from tests.integration.test_calls import connected, ended, hang_up, signed_in
from tests.integration.test_transfer import caller


def test_page_consult_conference_then_leave(tmp_path):
    from tools.browser import headless_chromium
    from tools.softphone import Softphones
    expect = browser_expect(TIMEOUT_MS)
    phones = Softphones.get()
    with ws_node(tmp_path) as (nt, sip_port, http_port, ws_port):
        base = f"http://127.0.0.1:{http_port}"
        carol_ph = phones.account("70003", PASSWORDS["70003"], f"127.0.0.1:{sip_port}", domain="cc.test",
                                  tone_hz=2000)
        assert phones.wait(lambda: carol_ph.registered, 5)
        carol = signed_in(http_port, "acme_carol")
        cust = caller(phones, sip_port, "5553007")
        try:
            with headless_chromium(MEDIA_FLAGS) as browser:
                page = browser.new_context().new_page()
                page.set_default_timeout(TIMEOUT_MS)
                problems: list[str] = []
                page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
                sign_on(page, base, "acme_alice", "70001", expect)
                expect(page.locator("#btn-transfer")).to_be_disabled()          # no call yet
                rec = cust.call(f"sip:4001@127.0.0.1:{sip_port}")
                assert _until(lambda: page.evaluate("window.agentPage.call") == "active", 30, phones)
                assert _until(lambda: connected(rec), 5, phones)
                (call_id,) = nt.call(lambda: list(nt.node.calls.calls))
                expect(page.locator("#btn-consult")).to_be_enabled()
                page.click("#btn-consult")                                      # nothing typed: said so
                expect(page.locator("#transfer-error")).not_to_have_text("")
                page.fill("#xfer-to", "1003")
                page.click("#btn-consult")
                expect(page.locator("#btn-conference")).to_be_enabled()
                assert _until(lambda: carol_ph.calls and connected(carol_ph.calls[-1]), 15, phones)
                mode = lambda: nt.call(lambda: getattr(nt.node.calls.calls[call_id].consult, "mode", None))  # noqa
                assert _until(lambda: mode() == "talking", 5, phones)
                phones.pump(1.0)
                page.click("#btn-conference")
                assert _until(lambda: mode() == "conference", 5, phones)
                expect(page.locator("#transfer-status")).to_contain_text("conference")
                marks = {"conference": time.monotonic()}
                phones.pump(1.5)
                page.click("#btn-hangup")                                       # the agent leaves
                assert _until(lambda: page.evaluate("window.agentPage.call") != "active", 10, phones)
                marks["left"] = time.monotonic()
                phones.pump(2.0)
                assert connected(rec) and connected(carol_ph.calls[-1])
                assert nt.call(lambda: nt.node.center.acd.talking[call_id][0]) == "1003"
                assert carol.state()["state"] == "talking"
                hang_up(rec)
                assert _until(lambda: ended(rec) and ended(carol_ph.calls[-1]), 5, phones)
                phones.pump(0.3)
                consulted = carol_ph.calls[-1]
                # a blind transfer from the page: the next customer goes to the sales queue (carol takes it)
                rec2 = cust.call(f"sip:4001@127.0.0.1:{sip_port}")
                assert _until(lambda: page.evaluate("window.agentPage.call") == "active", 30, phones)
                expect(page.locator("#btn-transfer")).to_be_enabled()
                page.fill("#xfer-to", "sales")
                page.click("#btn-transfer")
                assert _until(lambda: page.evaluate("window.agentTransfer.last"), 5, phones)["ok"] is True
                assert _until(lambda: page.evaluate("window.agentPage.call") != "active", 10, phones)
                assert _until(lambda: len(carol_ph.calls) == 2 and connected(carol_ph.calls[-1]), 20, phones)
                assert connected(rec2)
                hang_up(rec2)
                assert _until(lambda: ended(carol_ph.calls[-1]), 5, phones)
                assert not problems, problems
            c0, k0 = rec.answered_at, consulted.answered_at
            conf = tone_levels(rec.recording, marks["conference"] - c0 + 0.4, marks["conference"] - c0 + 1.3)
            assert conf[2000] > 1000, conf                                   # the customer hears carol too
            start = marks["left"] - c0 + 0.4
            after = tone_levels(rec.recording, start, start + 1.2)
            assert after[2000] > 1000, after                                 # and still after alice left
            start = marks["left"] - k0 + 0.4
            assert tone_levels(consulted.recording, start, start + 1.2)[440] > 1000
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(carol_ph)
