"""The wallboard's trunk card in headless Chromium against a real node: a trunk whose OPTIONS go unanswered shows
down (in red), comes up when a SIPp peer answers its pings, and its outbound calls and failures are counted;
the board JSON carries the same. Waits are for conditions; their deadlines only bound a hang."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import free_port
from tests.support.cc import ACCOUNTS, Api, browser_expect, cc_node, wait_for
from tests.support.sipp import SIPP
from tools.browser import headless_chromium

TIMEOUT_MS = 30_000
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "sipp")


def trunks(a_port: int, b_port: int) -> str:
    return f"""
trunks:
  - name: carrier_a
    proxy: 127.0.0.1:{a_port}
    options: {{interval: 300ms, threshold: 2, timeout: 200ms}}
  - name: carrier_b
    proxy: 127.0.0.1:{b_port}
dial_plan:
  routes: [{{numbers: "+49*", trunks: [carrier_a, carrier_b]}}]
"""


def test_trunk_card_shows_a_trunk_down_then_up(tmp_path):
    expect = browser_expect(TIMEOUT_MS)
    a_port, b_port = free_port(), free_port()
    peer = None
    with cc_node(tmp_path, phones=trunks(a_port, b_port)) as (nt, sip_port, http_port):
        api = Api(http_port)
        api.login("acme_sam")
        def by_name() -> dict:
            return {t["trunk"]: t for t in api.call("GET", "/api/wallboard", expect=200)[1]["trunks"]}
        assert wait_for(lambda: by_name()["carrier_a"]["state"] == "down", 30)
        assert by_name()["carrier_b"] == {"trunk": "carrier_b", "state": "unknown", "registration": None, "calls": 0,
                                          "outbound": 0, "failures": 0}
        try:
            with headless_chromium() as browser:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.set_default_timeout(TIMEOUT_MS)
                problems: list[str] = []
                page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
                page.goto(f"http://127.0.0.1:{http_port}/wallboard")
                page.fill("#account", "acme_sam")
                page.fill("#password", ACCOUNTS["acme_sam"])
                page.click("#login-submit")
                card = page.locator("#trunk-tile")
                expect(card).to_be_visible()
                a = card.locator('[data-trunk="carrier_a"]')
                expect(a).to_have_attribute("data-level", "alarm")
                expect(a.locator('[data-field="state"]')).to_have_text("down")
                expect(a.locator('[data-field="counts"]')).to_have_text("0 calls now, 0 failed outbound")
                expect(page.locator("#trunk-sub")).to_have_text("1 down")
                expect(card.locator('[data-trunk="carrier_b"] [data-field="state"]')).to_have_text("unknown")
                # a peer answers carrier_a's pings: the card follows without a reload
                peer = subprocess.Popen([SIPP, "-sf", os.path.join(DATA, "trunk_503.xml"), "-i", "127.0.0.1", "-p",
                                         str(a_port), "-aa", "-nostdin"], cwd=tmp_path,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                expect(a.locator('[data-field="state"]')).to_have_text("up")
                expect(a).to_have_attribute("data-level", "ok")
                expect(page.locator("#trunk-sub")).to_have_text("0 down")
                assert problems == []
        finally:
            if peer is not None:
                peer.kill()
                peer.wait(10)
