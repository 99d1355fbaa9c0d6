"""Business-account password lifecycle against a running node: an account flagged must_change_password gets
403 password_change_required everywhere until it sets a new password (policy checked); the new hash is kept in
the node's state file and survives a restart and a reload; an admin reset flags the account again; the agent
page shows a change-password dialog (headless Chromium).
"""

from __future__ import annotations

import sqlite3
import urllib.error
import urllib.request
from contextlib import contextmanager

from tests.conftest import free_port
from tests.support.cc import ACCOUNTS, Api, _node_thread, _rtp_lo, browser_expect, config_text

ADMIN, ADMIN_PASSWORD = "acme_dana", "Dana-Admin-5!"
NEW = "Fresh-Start-7#"


@contextmanager
def node(tmp_path, flagged: bool = True, ws: bool = False):
    """tests.support.cc's node, its accounts flagged (or not), with an admin; the same tmp_path gives the same
    state file, so a second node here is the first one restarted."""
    def make_text():
        sip_port, http_port, ws_port = free_port(), free_port(), free_port()
        text = config_text(sip_port, http_port, str(tmp_path / "cc.db"), _rtp_lo(sip_port),
                           must_change_password=flagged)
        sam = text.index("  - {account: acme_sam")
        text = (text[:sam] + f'  - {{account: {ADMIN}, name: Dana, role: admin, password: "{ADMIN_PASSWORD}", '
                             "must_change_password: false}\n" + text[sam:])
        if ws:
            listen = f"listen: [udp:127.0.0.1:{sip_port}, tcp:127.0.0.1:{sip_port}]"
            text = text.replace(listen, listen[:-1] + f", ws:127.0.0.1:{ws_port}]")
        return text, (sip_port, http_port)
    with _node_thread(tmp_path, make_text) as (nt, (sip_port, http_port)):
        yield nt, http_port


def login(http_port: int, account: str, password: str, expect: int = 200) -> Api:
    api = Api(http_port)
    status, body = api.call("POST", "/api/login", {"account": account, "password": password})
    assert status == expect, (status, body)
    api.token = body.get("token") if status == 200 else None
    api.login_body = body
    return api


def get_raw(url: str, token: str) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def change(api: Api, old: str, new: str, expect: int) -> dict:
    return api.call("POST", "/api/me/password", {"old_password": old, "new_password": new}, expect=expect)[1]


def test_a_flagged_account_must_change_its_password_before_anything_else(tmp_path):
    with node(tmp_path) as (nt, http):
        old = ACCOUNTS["acme_alice"]
        alice = login(http, "acme_alice", old)
        assert alice.login_body["must_change_password"] is True
        for method, path in (("GET", "/api/agents/me"), ("POST", "/api/agents/me/sign-in"), ("GET", "/api/queues"),
                             ("GET", "/api/agents"), ("POST", "/api/agents/me/softphone-password")):
            status, body = alice.call(method, path, {})
            assert status == 403 and body["error"] == "password_change_required", (path, status, body)
            assert "POST /api/me/password" in body["detail"]
        assert get_raw(f"http://127.0.0.1:{http}/agent/config", alice.token) == 403

        # the policy's refusals, each named
        for new, why in (("Sh0rt!", "shorter than 8 characters"), ("longenough1!", "no upper-case letter"),
                         ("NoDigitsHere!", "no digit"), ("NoSpecial123", "no special character"),
                         (old, "the same as the current password")):
            body = change(alice, old, new, 400)
            assert why in body["error"] and "acme_alice" in body["error"], body
        body = change(alice, old, "acme_alice", 400)
        assert "equal to the account name" in body["error"]
        body = change(alice, old, "ecila_emca", 400)
        assert "equal to the account name reversed" in body["error"]
        assert change(alice, "Not-The-Password-1!", NEW, 403)["error"] == "the current password is wrong"
        assert alice.call("POST", "/api/me/password", {"new_password": NEW})[0] == 400
        assert alice.call("POST", "/api/me/password", {"old_password": old, "new_password": 7})[0] == 400
        assert alice.call("POST", "/api/me/password", {"old_password": old, "new_password": "x" * 5000})[0] == 400
        assert alice.call("GET", "/api/agents/me")[0] == 403           # nothing was changed by the refusals

        assert change(alice, old, NEW, 200) == {"ok": True, "account": "acme_alice", "must_change_password": False}
        assert alice.call("GET", "/api/agents/me", expect=200)[1]["state"] == "offline"     # the same session
        login(http, "acme_alice", old, expect=401)
        assert login(http, "acme_alice", NEW).login_body["must_change_password"] is False
        # an agent changes their own later too
        assert change(alice, NEW, NEW + "x", 200)["ok"]
        login(http, "acme_alice", NEW + "x")
        # other flagged accounts are still held
        assert login(http, "acme_bob", ACCOUNTS["acme_bob"]).call("GET", "/api/queues")[0] == 403


def test_admin_reset_flags_the_account_again_and_only_admins_reset(tmp_path):
    with node(tmp_path, flagged=False) as (nt, http):
        alice = login(http, "acme_alice", ACCOUNTS["acme_alice"])
        assert alice.login_body["must_change_password"] is False
        alice.call("GET", "/api/agents/me", expect=200)
        temp = "Temp-Pass-42!"
        status, body = alice.call("POST", "/api/accounts/acme_bob/password", {"password": temp})
        assert status == 403 and body["error"] == "admins only"
        dana = login(http, ADMIN, ADMIN_PASSWORD)
        assert dana.call("POST", "/api/accounts/nobody/password", {"password": temp})[0] == 404
        body = dana.call("POST", "/api/accounts/acme_alice/password", {"password": "weak"}, expect=400)[1]
        assert "shorter than 8 characters" in body["error"]
        dana.call("POST", "/api/accounts/acme_alice/password", {"password": temp}, expect=200)
        # Alice's session and her next sign-in are both held until she sets her own
        assert alice.call("GET", "/api/agents/me")[0] == 403
        login(http, "acme_alice", ACCOUNTS["acme_alice"], expect=401)
        again = login(http, "acme_alice", temp)
        assert again.login_body["must_change_password"] is True
        change(again, temp, NEW, 200)
        again.call("GET", "/api/agents/me", expect=200)
        dana.call("GET", "/api/agents", expect=200)                     # the admin was never held


def test_the_changed_password_survives_a_restart_and_a_reload(tmp_path):
    with node(tmp_path) as (nt, http):
        alice = login(http, "acme_alice", ACCOUNTS["acme_alice"])
        change(alice, ACCOUNTS["acme_alice"], NEW, 200)
    # the hash is in the node's state file, not in the YAML (which is left as it was)
    with sqlite3.connect(tmp_path / "cc.db") as db:
        ((stored, must),) = db.execute("SELECT password_hash, must_change FROM account_passwords "
                                       "WHERE account = 'acme_alice'").fetchall()
    assert stored.startswith("pbkdf2_sha256$") and must == 0 and NEW not in stored
    assert "must_change_password: false" not in (tmp_path / "cc.yaml").read_text().split("acme_alice")[1][:80]

    with node(tmp_path) as (nt, http):                 # restarted: same state file
        login(http, "acme_alice", ACCOUNTS["acme_alice"], expect=401)
        alice = login(http, "acme_alice", NEW)
        assert alice.login_body["must_change_password"] is False
        alice.call("GET", "/api/agents/me", expect=200)
        assert login(http, "acme_bob", ACCOUNTS["acme_bob"]).login_body["must_change_password"] is True
        # a reload (the YAML re-read, its hashes included) keeps the stored password in force
        dana = login(http, ADMIN, ADMIN_PASSWORD)
        assert dana.call("POST", "/api/admin/reload", expect=200)[1]["ok"]
        login(http, "acme_alice", ACCOUNTS["acme_alice"], expect=401)
        assert login(http, "acme_alice", NEW).login_body["must_change_password"] is False
        alice.call("GET", "/api/agents/me", expect=200)


def test_the_agent_page_asks_for_a_new_password_then_signs_in(tmp_path):
    from tools.browser import headless_chromium
    expect = browser_expect(10_000)
    with node(tmp_path, ws=True) as (nt, http):
        with headless_chromium([]) as browser:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(10_000)
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
            page.goto(f"http://127.0.0.1:{http}/agent")
            page.fill("#account", "acme_alice")
            page.fill("#password", ACCOUNTS["acme_alice"])
            page.click("#login-submit")
            dialog = page.locator("#pw-dialog")
            expect(dialog).to_be_visible()
            expect(page.locator("#console")).to_be_hidden()
            # a new password the policy refuses: the dialog stays, saying why
            page.fill("#pw-new", "password")
            page.fill("#pw-repeat", "password")
            page.click("#pw-submit")
            expect(page.locator("#pw-error")).to_contain_text("breaks the password policy")
            page.fill("#pw-new", NEW)
            page.fill("#pw-repeat", NEW + "?")
            page.click("#pw-submit")
            expect(page.locator("#pw-error")).to_have_text("the two new passwords differ")
            page.fill("#pw-repeat", NEW)
            page.click("#pw-submit")
            expect(dialog).to_be_hidden()
            expect(page.locator("#console")).to_be_visible()           # signed in with the new password
            expect(page.locator("#sp-number")).to_have_text("70001")
            assert problems == [], problems
        login(http, "acme_alice", NEW)
        login(http, "acme_alice", ACCOUNTS["acme_alice"], expect=401)


def test_in_pool_mode_a_password_changed_at_one_node_signs_in_at_the_other(tmp_path):
    from tests.support.cc import cc_node, wait_for
    from tools.redisserver import redis_server
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with redis_server() as url, \
            cc_node(tmp_path / "a", node_id="n1", state=url, must_change_password=True) as (na, _, ha), \
            cc_node(tmp_path / "b", node_id="n2", state=url, must_change_password=True) as (nb, _, hb):
        at_a = login(ha, "acme_alice", ACCOUNTS["acme_alice"])
        at_b = login(hb, "acme_alice", ACCOUNTS["acme_alice"])
        assert at_b.call("GET", "/api/agents/me")[0] == 403
        change(at_a, ACCOUNTS["acme_alice"], NEW, 200)
        login(hb, "acme_alice", ACCOUNTS["acme_alice"], expect=401)
        assert login(hb, "acme_alice", NEW).login_body["must_change_password"] is False
        # the session opened at node 2 before the change is let through once node 2 has read it
        assert wait_for(lambda: at_b.call("GET", "/api/agents/me")[0] == 200, 15)
