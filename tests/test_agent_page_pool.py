"""The agent page in pool mode, in headless Chromium against two real nodes (`softswitch serve`) sharing a real
redis-server: the connection bar registers one browser phone to each node of pool.nodes with the one softphone
password and shows both; a node that goes away leaves its phone `failed`, and a click on it registers it again
once the node is back; a customer queued on node 2 rings on the page (node 2 offers on its own binding) and is
answered with audio; logging out unregisters both phones (neither node's registrar keeps a binding).
Screenshots go to artifacts/agent-pool-*.png at 1280 and 1920 px."""

from __future__ import annotations

import json

import pytest

from softswitch.settings.load import parse_config
from softswitch.settings.source import ConfigError
from tests.conftest import free_port
from tests.support.cc import ACCOUNTS, PASSWORDS, Api, browser_expect, config_text
from tests.support.serve import Served, wait_admitting
from tests.test_agent_page import MEDIA_FLAGS, TIMEOUT_MS, _get, _screenshot, _until
from tools.redisserver import redis_server


def _bindings(http_port: int) -> int:
    status, _, raw = _get(f"http://127.0.0.1:{http_port}/health")
    assert status == 200, raw
    return json.loads(raw)["bindings"]


def _write_nodes(tmp_path, redis_url):
    """Two nodes' YAML: udp/tcp and ws SIP listeners, Redis state, and pool.nodes naming both ws listeners."""
    ports = [(free_port(), free_port(), free_port()) for _ in range(2)]
    pool = ", ".join(f'"ws://127.0.0.1:{ws}"' for _, _, ws in ports)
    paths = []
    for i, (sip, http, ws) in enumerate(ports):
        d = tmp_path / f"n{i + 1}"
        d.mkdir()
        text = config_text(sip, http, str(d / "cc.db"), 30000 + 1000 * ((sip % 15) * 2 + i), node_id=f"n{i + 1}",
                           state=redis_url, wrap_up="0s")
        listen = f"listen: [udp:127.0.0.1:{sip}, tcp:127.0.0.1:{sip}]"
        assert text.count(listen) == 1
        text = text.replace(listen, listen[:-1] + f", ws:127.0.0.1:{ws}]") + f"pool: {{nodes: [{pool}]}}\n"
        (d / "cc.yaml").write_text(text)
        paths.append(d / "cc.yaml")
    return paths, ports


def _shots(page, tmp_path, name):
    """The same state at 1280 and 1920 px wide."""
    for width, height in ((1280, 900), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        _screenshot(page, tmp_path, f"pool-{name}-{width}")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_pool_connection_bar_two_phones_failover_call_and_log_out(tmp_path):
    expect = browser_expect(TIMEOUT_MS)
    from tools.browser import headless_chromium
    from tools.softphone import Softphones
    phones = Softphones.get()
    with redis_server() as redis_url:
        paths, ports = _write_nodes(tmp_path, redis_url)
        (sa, ha, wa), (sb, hb, wb) = ports
        nodes = [Served(p) for p in paths]
        cust = rec = None
        try:
            base = f"http://127.0.0.1:{ha}"
            api_a, api_b = Api(ha), Api(hb)
            api_a.login("acme_alice")
            api_b.login("acme_alice")
            # /agent/config lists the pool's nodes in order; the page may connect to both (and nowhere else)
            status, headers, raw = _get(base + "/agent/config", api_a.token)
            cfg = json.loads(raw)
            assert status == 200 and cfg["pool"] == [f"ws://127.0.0.1:{wa}", f"ws://127.0.0.1:{wb}"], cfg
            csp = _get(base + "/agent")[1]["Content-Security-Policy"]
            assert f"connect-src 'self' ws://127.0.0.1:{wa} ws://127.0.0.1:{wb};" in csp, csp

            with headless_chromium(MEDIA_FLAGS) as browser:
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                page.set_default_timeout(TIMEOUT_MS)
                problems: list[str] = []
                page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
                page.goto(base + "/agent")
                page.fill("#account", "acme_alice")
                page.fill("#password", ACCOUNTS["acme_alice"])
                page.click("#login-submit")
                expect(page.locator("#console")).to_be_visible()
                expect(page.locator("#sp-server")).to_contain_text("2 phones")

                # one password, two phones: both registered, each at its own node
                page.fill("#sp-password", PASSWORDS["70001"])
                page.click("#sp-connect")
                chip1, chip2 = page.locator('#sip-phones [data-phone="1"]'), page.locator('#sip-phones [data-phone="2"]')
                expect(chip1).to_have_attribute("data-sip", "registered")
                expect(chip2).to_have_attribute("data-sip", "registered")
                expect(chip1).to_contain_text("phone 1: registered")
                assert page.evaluate("window.agentPage.sip") == "registered"
                assert [p["url"] for p in page.evaluate("window.agentPage.phones")] == cfg["pool"]
                assert _until(lambda: api_a.state()["registered"] and api_b.state()["registered"], 10)
                assert _bindings(ha) == 1 and _bindings(hb) == 1
                page.click("#btn-sign-in")
                expect(page.locator("#state")).to_have_attribute("data-state", "idle")
                assert _until(lambda: api_b.state()["state"] == "idle", 10), api_b.state()
                _shots(page, tmp_path, "1-both-registered")

                # node 2 goes away: its phone shows failed (and stays so), phone 1 stays registered
                assert nodes[1].stop() == 0
                expect(chip2).to_have_attribute("data-sip", "failed")
                expect(chip2).to_be_enabled()
                expect(chip1).to_have_attribute("data-sip", "registered")
                expect(page.locator("#sp-error")).to_contain_text(f"phone 2 (ws://127.0.0.1:{wb}): its node cannot be")
                _shots(page, tmp_path, "2-phone-2-failed")

                # node 2 is back (same config): nothing happens until the agent clicks the failed phone
                nodes[1] = Served(paths[1])
                api_b.login("acme_alice")
                page.wait_for_timeout(1000)
                assert page.get_attribute('#sip-phones [data-phone="2"]', "data-sip") == "failed"
                # the node may still hold the binding of the old connection (kept in Redis across its restart)
                assert _bindings(hb) <= 1
                chip2.click()
                expect(chip2).to_have_attribute("data-sip", "registered")
                expect(page.locator("#sp-error")).to_have_text("")
                assert _until(lambda: api_b.state()["registered"], 10), api_b.state()
                assert _bindings(hb) == 1          # the phone's instance id: the new binding replaced the old one

                # a customer queued on node 2 rings on the page (node 2 offers on its own binding) and is answered
                assert _until(lambda: api_b.state()["state"] == "idle", 15), api_b.state()
                wait_admitting(hb)
                cust = phones.account("5559002", "x", f"127.0.0.1:{sb}", domain="cc.test", register=False,
                                      auto_answer=False, tone_hz=440)
                rec = cust.call(f"sip:4001@127.0.0.1:{sb}")
                invite = _until(lambda: page.evaluate("window.agentPage.lastInvite"), 15, phones)
                assert invite and invite["queue"] == "support" and "5559002" in invite["from"], \
                    (invite, api_b.state(), problems)
                assert invite["via"] == f"ws://127.0.0.1:{wb}"         # on phone 2, node 2's own binding
                assert _until(lambda: page.evaluate("window.agentPage.call") == "active"
                              or page.evaluate("window.agentPage.endCause"), 20, phones)
                assert page.evaluate("window.agentPage.call") == "active", page.evaluate("window.agentPage")
                assert _until(lambda: rec.state == "CONFIRMED", 5, phones), rec.states
                assert _until(lambda: api_b.state()["state"] == "talking", 5, phones), api_b.state()
                assert _until(lambda: api_a.state()["elsewhere"] is True, 5, phones), api_a.state()
                # the agent hears the caller's tone through node 2
                assert _until(lambda: page.evaluate("window.agentPage.stats()")["audioEnergy"] > 0.01, 8, phones), \
                    page.evaluate("window.agentPage.stats()")
                # the page's node (1) knows only that the agent is engaged at node 2: the page shows the call
                expect(page.locator("#state")).to_have_attribute("data-state", "talking")
                phones.pump(1.5)
                _shots(page, tmp_path, "3-talking-via-node-2")
                page.click("#btn-hangup")
                assert _until(lambda: rec.ended_at is not None, 5, phones), rec.states
                expect(page.locator("#call-panel")).to_have_attribute("data-call", "ended")

                # logging out signs both phones out: neither node keeps a binding
                page.click("#logout")
                expect(page.locator("#login-view")).to_be_visible()
                assert _until(lambda: _bindings(ha) == 0 and _bindings(hb) == 0, 10), (_bindings(ha), _bindings(hb))
                assert not api_a.state()["registered"] and not api_b.state()["registered"]
                assert page.evaluate("window.agentPage.sip") == "unregistered"
                assert page.evaluate("window.agentPage.phones") == []
                assert not [p for p in problems if "pageerror" in p], problems
        finally:
            if cust is not None:
                phones.remove(cust, unregister=False)
            if rec is not None:
                rec.call = None
            rec = cust = None
            for n in nodes:
                if n.proc.poll() is None:
                    n.stop()


def test_pool_outbound_through_the_first_phone_and_sign_out_signs_both_out(tmp_path):
    """Outbound calls leave through the first registered phone (node 1: the callee is registered there only);
    "When you sign out, the two phones sign out at the same time": Stop taking calls unregisters both."""
    expect = browser_expect(TIMEOUT_MS)
    from tools.browser import headless_chromium
    from tools.softphone import Softphones
    phones = Softphones.get()
    with redis_server() as redis_url:
        paths, ports = _write_nodes(tmp_path, redis_url)
        (sa, ha, wa), (_, hb, _) = ports
        nodes = [Served(p) for p in paths]
        callee = None
        try:
            callee = phones.account("70003", PASSWORDS["70003"], f"127.0.0.1:{sa}", domain="cc.test", tone_hz=1000)
            assert phones.wait(lambda: callee.registered, 5)
            with headless_chromium(MEDIA_FLAGS) as browser:
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(f"http://127.0.0.1:{ha}/agent")
                page.fill("#account", "acme_bob")
                page.fill("#password", ACCOUNTS["acme_bob"])
                page.click("#login-submit")
                # a wrong softphone password: both phones fail, each says why, and the password box is back
                page.fill("#sp-password", "not-the-password")
                page.click("#sp-connect")
                for i in (1, 2):
                    expect(page.locator(f'#sip-phones [data-phone="{i}"]')).to_have_attribute("data-sip", "failed")
                expect(page.locator("#sp-error")).to_contain_text("phone 2 (ws://")
                assert page.locator("#sp-error").inner_text().count("wrong softphone password") == 2
                expect(page.locator("#sp-password")).to_be_visible()
                assert _bindings(ha) == 1 and _bindings(hb) == 0            # the callee's only
                page.fill("#sp-password", PASSWORDS["70002"])
                page.click("#sp-connect")
                for i in (1, 2):
                    expect(page.locator(f'#sip-phones [data-phone="{i}"]')).to_have_attribute("data-sip", "registered")
                # node 1 also holds the callee's binding
                assert _until(lambda: _bindings(ha) == 2 and _bindings(hb) == 1, 10), (_bindings(ha), _bindings(hb))
                page.click("#btn-sign-in")
                expect(page.locator("#state")).to_have_attribute("data-state", "idle")

                wait_admitting(ha)
                page.fill("#dial-number", "70003")
                page.click("#btn-dial")
                assert _until(lambda: callee.calls and callee.calls[-1].state == "CONFIRMED", 10, phones), \
                    page.evaluate("window.agentPage")
                assert page.evaluate("window.agentPage.dialedVia") == f"ws://127.0.0.1:{wa}"
                assert _until(lambda: page.evaluate("window.agentPage.call") == "active", 5, phones)
                page.click("#btn-hangup")
                assert _until(lambda: callee.calls[-1].ended_at is not None, 5, phones)
                expect(page.locator("#call-panel")).to_have_attribute("data-call", "ended")

                page.click("#btn-sign-out")
                expect(page.locator("#state")).to_have_attribute("data-state", "offline")
                expect(page.locator("#sip-status")).to_have_attribute("data-sip", "unregistered")
                assert _until(lambda: _bindings(ha) == 1 and _bindings(hb) == 0, 10), (_bindings(ha), _bindings(hb))
                # the password box is back: the agent connects again before taking calls again
                expect(page.locator("#sp-password")).to_be_visible()
                expect(page.locator("#sip-status")).to_be_visible()
        finally:
            if callee is not None:
                for r in callee.calls:
                    r.call = None
                phones.remove(callee)
            callee = None
            for n in nodes:
                if n.proc.poll() is None:
                    n.stop()


@pytest.mark.parametrize("nodes, problem", [
    ('["http://127.0.0.1:5066"]', "ws://HOST:PORT"),
    ('["ws://127.0.0.1:5066", "ws://127.0.0.1:5066"]', "listed twice"),
    ('["ws://a:1", "ws://b:1", "ws://c:1", "ws://d:1", "ws://e:1"]', "at most 4"),
    ('["ws://x:1; script-src *"]', "ws://HOST:PORT"),
    ('["ws://127.0.0.1:70000"]', "ws://HOST:PORT"),
])
def test_pool_nodes_must_be_websocket_urls(nodes, problem):
    text = config_text(5060, 8080, "/tmp/unused.db", 30000) + f"pool: {{nodes: {nodes}}}\n"
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "cc.yaml")
    assert "pool.nodes" in str(exc.value) and problem in str(exc.value), str(exc.value)
    good = config_text(5060, 8080, "/tmp/unused.db", 30000) + \
        'pool: {nodes: ["ws://127.0.0.1:5066", "wss://n2.example.com:8089/ws", "wss://[::1]:8089"]}\n'
    assert parse_config(good, "cc.yaml").pool_nodes == ("ws://127.0.0.1:5066", "wss://n2.example.com:8089/ws",
                                                        "wss://[::1]:8089")
