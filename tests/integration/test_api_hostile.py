"""Hostile HTTP API requests over a real socket: every JSON endpoint and query string, fed adversarial shapes
(deep nesting, non-objects, huge numbers and strings, invalid UTF-8, long runs of one character then a byte
that breaks it), answers 4xx (or 2xx) and never 500; the node goes on serving."""

from __future__ import annotations

import urllib.error
import urllib.request

from tests.support.cc import Api, cc_node

BODIES = [b"[" * 100_000, b'{"a":' * 50_000, b"[]", b'"x"', b"null", b"true", b"1e999", b"9" * 5000, b"\xff\xfe",
          b"{", b"", b'{"state": []}', b'{"account": [], "password": {}}', b'{"mode": 5}', b'{"to": {}}',
          b'{"to": "' + b"a" * 100_000 + b'"}', b'{"new_password": "' + b"x" * 100_000 + b'"}',
          b'{"disposition": 5}', b'{"notes": "' + b"\\u0000" * 10_000 + b'"}', b'{"widget": "' + b"\\" * 5000 + b'"}',
          b'{"widget": "w", "nonce": "' + b"v1." * 2000 + b'", "page": "http://' + b"a." * 3000 + b'"}',
          b'{"state": "' + b"\\ud800" * 2000 + b'"}', b"  " * 50_000 + b"{}", b"\x00" * 1000]
POSTS = ["/api/login", "/api/agents/me/state", "/api/agents/me/sign-in", "/api/agents/1001/state",
         "/api/calls/x/supervise", "/api/calls/x/transfer", "/api/calls/x/consult", "/api/calls/x/swap",
         "/api/calls/x/wrap-up", "/api/me/password", "/api/accounts/acme_bob/password", "/widget/nonce",
         "/widget/token", "/api/admin/reload"]
GETS = ["/api/agents/me/calls?limit=" + "9" * 5000, "/api/agents/me/calls?limit=-1", "/api/agents/me/calls?limit=1e9",
        "/api/queues/" + "%ff" * 100, "/api/agents/" + "a" * 5000, "/api/agents/%00",
        "/api/wallboard/trends?minutes=" + "9" * 5000, "/api/wallboard/trends?queue=%00", "/api/wallboard?x=" + "[" * 1000,
        "/chat/?queue=" + "%ff" * 1000, "/api/chat", "/api/calls?x=" + "%" * 3000, "/agent/config?token=%ff",
        "/api/events?token=" + "a" * 5000, "/api/queues/support?" + "a=b&" * 2000]


def request(port: int, method: str, path: str, body: bytes | None, token: str | None):
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    r = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_json_bodies_and_query_strings_never_get_500(tmp_path):
    with cc_node(tmp_path) as (nt, sip_port, http_port):
        failures = []
        for account in ("acme_alice", "acme_sam"):          # an agent, and a supervisor (who may supervise)
            api = Api(http_port)
            api.login(account)
            for path in POSTS:
                for body in BODIES:
                    status, payload = request(http_port, "POST", path, body, api.token)
                    if status >= 500:
                        failures.append((account, path, body[:30], status, payload[:80]))
            for path in GETS:
                status, payload = request(http_port, "GET", path, None, api.token)
                if status >= 500:
                    failures.append((account, path[:60], status, payload[:80]))
        assert failures == []
        # the answers say what is wrong, and the node still serves
        status, payload = request(http_port, "POST", "/api/agents/me/state", b"[" * 100_000, api.token)
        assert status == 400 and b"JSON object" in payload
        status, payload = request(http_port, "POST", "/api/login", b'{"a":' * 50_000, None)
        assert status == 400 and b"expected JSON" in payload
        # the widget's CORS preflight and POSTs with hostile Origin headers: refused, never 500
        for origin in ("http://" + "a." * 3000 + "b", "https://" + "[" * 500, "null", "http://x:" + "9" * 500,
                       "https://shop.example/" + "%" * 2000, "HTTP://" + "-" * 60 + ".example"):
            for method, path, body in (("OPTIONS", "/widget/nonce", None), ("POST", "/widget/nonce", b'{"widget":"w"}'),
                                       ("POST", "/widget/token", b'{"widget":"w","nonce":"x","page":"' +
                                        origin.encode() + b'/p"}')):
                r = urllib.request.Request(f"http://127.0.0.1:{http_port}{path}", data=body, method=method,
                                           headers={"Origin": origin, "Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(r, timeout=30) as resp:
                        status = resp.status
                except urllib.error.HTTPError as e:
                    status = e.code
                assert 400 <= status < 500, (method, path, origin[:40], status)
        assert request(http_port, "GET", "/health", None, None)[0] == 200
