"""The agent desktop in headless Chromium against a real node, with a pjsua2 customer: the current availability is
shown (and a Busy reason goes with Busy), the call timer runs, the keypad's digits reach the customer (RFC 4733),
the wrap-up (a disposition code of the queue's YAML list and notes) is stored with the CDR and found in
`records export`, the agent's last calls list the call, and a voice call shows no video window.
Screenshots at 1280 and 1920 px go to artifacts/desk-*.png at the repo root."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.cc import Api, browser_expect, sign_on, ws_node
from tests.integration.test_agent_page import MEDIA_FLAGS, TIMEOUT_MS, _until
from tests.integration.test_video_call import ARTIFACTS

CODES = "[sale, no sale, call back later]"
DISPOSITIONS = (("record: false}", f"record: false, dispositions: {CODES}}}"),)


def shot(page, name: str, width: int) -> str:
    """A full-page screenshot at `width` px (the height follows the page)."""
    page.set_viewport_size({"width": width, "height": 1000 if width < 1600 else 1080})
    page.wait_for_timeout(150)          # one layout pass after the resize
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"desk-{name}-{width}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    return str(path)


def pressed(page) -> dict:
    return {b: page.get_attribute(f"#btn-{b}", "aria-pressed") == "true" for b in ("idle", "rest", "busy")}


def test_desktop_state_timer_keypad_wrapup_history(tmp_path):
    from tools.browser import headless_chromium
    from tools.softphone import Softphones
    expect = browser_expect(TIMEOUT_MS)
    phones = Softphones.get()
    shots = []

    with ws_node(tmp_path, DISPOSITIONS) as (nt, sip_port, http_port, ws_port):
        base = f"http://127.0.0.1:{http_port}"
        api = Api(http_port)
        api.login("acme_alice")
        with headless_chromium(MEDIA_FLAGS) as browser:
            page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            page.set_default_timeout(TIMEOUT_MS)
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
            sign_on(page, base, "acme_alice", "70001", expect)

            # The current availability is the pressed button, and only it.
            expect(page.locator("#btn-idle")).to_have_attribute("aria-pressed", "true")
            assert pressed(page) == {"idle": True, "rest": False, "busy": False}
            expect(page.locator("#btn-sign-in")).to_be_disabled()
            page.fill("#busy-reason", "lunch")
            page.click("#btn-busy")
            expect(page.locator("#btn-busy")).to_have_attribute("aria-pressed", "true")
            assert pressed(page) == {"idle": False, "rest": False, "busy": True}
            expect(page.locator("#state-reason")).to_have_text("lunch")
            shots.append(shot(page, "busy", 1280))
            # Back to Idle: the reason goes with Busy (shown nowhere, the box emptied).
            page.click("#btn-idle")
            expect(page.locator("#btn-idle")).to_have_attribute("aria-pressed", "true")
            expect(page.locator("#state-reason")).to_have_text("")
            expect(page.locator("#busy-reason")).to_have_value("")
            assert api.state()["state"] == "idle" and api.state()["reason"] != "lunch"
            # the queue panel lists the agent's own queue, live
            expect(page.locator("#queue-rows tr[data-queue=support]")).to_have_count(1)
            expect(page.locator("#queue-rows tr[data-queue=sales]")).to_have_count(0)
            expect(page.locator("#queue-rows tr[data-queue=support] td").nth(3)).to_have_text("1")   # idle: me

            cust = phones.account("5559000", "x", f"127.0.0.1:{sip_port}", domain="cc.test", register=False,
                                  auto_answer=False, tone_hz=440)
            rec = None
            try:
                # Busy while a customer calls: the agent sees them waiting in the queue, live.
                page.click("#btn-busy")
                expect(page.locator("#btn-busy")).to_have_attribute("aria-pressed", "true")
                rec = cust.call(f"sip:4001@127.0.0.1:{sip_port}")
                assert _until(lambda: page.evaluate("window.agentDesk.queues.support") == 1, 15, phones), \
                    page.evaluate("window.agentDesk.queues")
                expect(page.locator("#queue-rows tr[data-queue=support] td").nth(1)).to_have_text("1")
                shots.append(shot(page, "waiting", 1280))
                page.click("#btn-idle")                 # ready: the waiting call is offered at once
                assert _until(lambda: page.evaluate("window.agentPage.call") in ("incoming", "active"), 15, phones)
                if page.evaluate("window.agentPage.call") == "incoming":      # auto-answer comes 2 s later
                    shots.append(shot(page, "ringing", 1280))
                assert _until(lambda: page.evaluate("window.agentPage.call") == "active", 30, phones), \
                    page.evaluate("window.agentPage")
                assert _until(lambda: page.evaluate("window.agentDesk.queues.support") == 0, 15, phones)
                assert _until(lambda: rec.state == "CONFIRMED", 5, phones), rec.states
                expect(page.locator("#caller")).to_have_text("5559000")
                # A voice call: no video window.
                expect(page.locator("#video-panel")).to_be_hidden()
                assert page.evaluate("window.agentDesk.videoPanel") is False

                # The call timer runs: it advances while the call lasts.
                first = page.evaluate("window.agentDesk.timer")
                assert _until(lambda: page.evaluate("window.agentDesk.timer") >= first + 2, 15, phones), \
                    page.evaluate("window.agentDesk")
                expect(page.locator("#call-timer")).to_have_class("timer running")

                # Keypad: digits go to the caller as RFC 4733 events through the switch.
                page.click("#btn-keypad")
                expect(page.locator("#keypad")).to_be_visible()
                for d in "47#":
                    page.click(f"#keypad [data-digit='{d}']")
                    phones.pump(0.4)
                expect(page.locator("#dtmf-sent")).to_have_text("47#")
                got = _until(lambda: "".join(rec.dtmf) == "47#" and rec.dtmf, 10, phones)
                assert got, (rec.dtmf, page.evaluate("window.agentDesk"))

                # Wrap-up during the call: the queue's codes from the YAML, and notes.
                options = page.eval_on_selector_all("#disposition option", "os => os.map(o => o.value)")
                assert options == ["", "sale", "no sale", "call back later"], options
                page.select_option("#disposition", "call back later")
                page.fill("#wrapup-notes", "wants a call on Tuesday, 10:00")
                shots += [shot(page, "talking", 1280), shot(page, "talking", 1920)]
                page.click("#btn-wrapup-save")
                expect(page.locator("#wrapup-status")).to_have_text("saved ✓")
                call_id = page.evaluate("window.agentDesk.wrapup.call_id")

                page.click("#btn-hangup")
                assert _until(lambda: rec.ended_at is not None, 5, phones), rec.states
                talked = page.evaluate("window.agentDesk.timer")
                assert talked >= first + 2
                expect(page.locator("#call-status")).to_have_text("call ended: you hung up")
                # The timer stops at the call's length.
                phones.pump(1.2)
                assert page.evaluate("window.agentDesk.timer") == talked
            finally:
                phones.remove(cust, unregister=False)
                if rec is not None:
                    rec.call = None
                rec = cust = None

            # My last calls: the call, its caller and its wrap-up.
            row = page.locator(f"#history-rows tr[data-call-id='{call_id}']")
            expect(row).to_have_count(1)
            expect(row).to_contain_text("5559000")
            expect(row).to_contain_text("call back later")
            expect(row).to_contain_text("wants a call on Tuesday")
            shots += [shot(page, "after-call", 1280), shot(page, "after-call", 1920)]

            # Log out of the desktop: no more calls from the queues either, and the phone is disconnected.
            page.click("#logout")
            expect(page.locator("#login-form")).to_be_visible()
            assert _until(lambda: api.state()["state"] == "offline" and not api.state()["registered"], 5), \
                api.state()
            assert not [p for p in problems if "pageerror" in p], problems

        nt.call(lambda: nt.node.records.flush(5))
        out = subprocess.run([sys.executable, "-m", "softswitch.cli", "records", "export", str(tmp_path / "cc.yaml"),
                              "--format", "json"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        (cdr,) = [r for r in json.loads(out.stdout) if r["call_id"] == call_id]
        assert (cdr["agent_id"], cdr["disposition"], cdr["notes"]) == \
            ("1001", "call back later", "wants a call on Tuesday, 10:00"), cdr
        out = subprocess.run([sys.executable, "-m", "softswitch.cli", "records", "export", str(tmp_path / "cc.yaml")],
                             capture_output=True, text=True, timeout=60)
        header = out.stdout.splitlines()[0].split(",")
        assert header[-2:] == ["disposition", "notes"] and "call back later" in out.stdout
    print("screenshots", *shots, sep="\n")
