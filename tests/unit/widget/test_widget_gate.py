"""The click-to-dial policy on a fake clock: origins, nonce then token, expiry, single use, routes, rate limits,
and the `click_to_dial` YAML section's errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from softswitch.settings import parse_config
from softswitch.settings.source import ConfigError
from softswitch.transport.base import Target
from softswitch.widget.gate import CHANNEL, HEADER, Refusal, WidgetGate
from softswitch.widget.limits import RateLimit
from softswitch.widget.sip import admit_widget_call
from softswitch.widget.origins import OriginError, OriginList, normalize_origin, origin_of_url
from softswitch.widget.tokens import MAX_TICKET, Signer, TicketError
from tests.support.cc import config_text

SHOP = "https://shop.example"
C2D = """
  - {name: web_voice, type: voice_click_to_dial}
  - {name: web_video, type: video_click_to_dial}
called_routes:
  - {called: "4010", queue: web_voice}
  - {called: "4011", queue: web_video, media: video}
"""


def cfg_text(section: str) -> str:
    text = config_text(5060, 8080, "/tmp/x.db", 30000)
    text = text.replace("called_routes:\n", C2D, 1)
    return text.replace("ivr:\n  menu:", section + "ivr:\n  menu:", 1)


SECTION = f"""click_to_dial:
  token_ttl: 60s
  nonce_ttl: 30s
  per_address: 3
  per_node: 5
  widgets:
    - {{name: shop, origins: ["{SHOP}", "HTTP://Localhost:8000"], routes: ["4010", "4011"]}}
    - {{name: other, origins: ["https://other.example"], routes: ["4010"]}}
"""


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


class Req:
    """What the gate reads of an INVITE: one header."""
    def __init__(self, token: str | None) -> None:
        self.token = token

    def get(self, name: str):
        return self.token if name == HEADER else None


class Conn:
    def __init__(self, origin: str | None, widget: bool = True) -> None:
        self.origin, self.widget = origin, widget


def ws(origin: str | None, widget: bool = True) -> Target:
    return Target("ws", "127.0.0.1", 40000, Conn(origin, widget))


@pytest.fixture
def gate():
    cfg = parse_config(cfg_text(SECTION), "cc.yaml")
    clock = Clock()
    return WidgetGate(lambda: cfg, clock), clock


def token_for(gate: WidgetGate, origin: str = SHOP, address: str = "192.0.2.1", widget: str = "shop") -> str:
    n = gate.nonce(widget, origin, address)
    assert n.status == 200, n
    t = gate.token(widget, origin, address, n.body["nonce"], origin + "/contact?x=1")
    assert t.status == 200, t
    return t.body["token"]


def test_origins_are_compared_in_canonical_form():
    assert normalize_origin("HTTPS://Shop.Example:443") == SHOP
    assert normalize_origin("http://[::1]:8000") == "http://[::1]:8000"
    for bad in ("null", "*", "https://shop.example/", "ftp://x", "https://user@shop.example", "https://a..b",
                "https://shop.example:99999", "x" * 400, ""):
        with pytest.raises(OriginError):
            normalize_origin(bad)
    allowed = OriginList([SHOP])
    assert allowed.allows("https://shop.example:443") and not allowed.allows("https://shop.example.evil.com")
    assert not allowed.allows(None) and not allowed.allows("null")
    assert origin_of_url("https://shop.example/contact?a=b") == SHOP and origin_of_url("javascript:1") is None


def test_nonce_then_token_then_one_call(gate):
    g, clock = gate
    assert g.nonce("shop", "https://evil.example", "a").status == 403
    assert g.nonce("nope", SHOP, "a").status == 403
    token = token_for(g)
    # the INVITE: this origin's WebSocket, a route of the widget
    assert isinstance(g.check_invite(Req(token), ws("https://evil.example"), "4010"), Refusal)
    assert isinstance(g.check_invite(Req(token), Target("udp", "192.0.2.1", 5060), "4010"), Refusal)
    assert isinstance(g.check_invite(Req(token), ws(SHOP), "4001"), Refusal)
    t = g.check_invite(Req(token), ws(SHOP), "4010")
    assert not isinstance(t, Refusal) and t.widget == "shop" and t.page == SHOP + "/contact?x=1"
    assert g.cdr_fields(Req(token)) == {"channel": CHANNEL, "page": SHOP + "/contact?x=1"}
    assert isinstance(g.check_invite(Req(token), ws(SHOP), "4010"), Refusal)       # spent
    # no token: the usual rules, except on the widget's own WebSocket path
    assert g.check_invite(Req(None), ws(SHOP, widget=False), "4001") is None
    assert isinstance(g.check_invite(Req(None), ws(SHOP), "4010"), Refusal)
    assert g.cdr_fields(Req(None))["channel"] == "phone"


def test_tokens_expire_and_nonces_are_spent_once(gate):
    g, clock = gate
    token = token_for(g)
    clock.t += 60.0                                    # token_ttl
    assert isinstance(g.check_invite(Req(token), ws(SHOP), "4010"), Refusal)
    n = g.nonce("shop", SHOP, "a").body["nonce"]
    clock.t += 30.0                                    # nonce_ttl
    assert g.token("shop", SHOP, "a", n, SHOP + "/").status == 403
    n = g.nonce("shop", SHOP, "b").body["nonce"]
    assert g.token("shop", "http://localhost:8000", "b", n, "http://localhost:8000/").status == 403   # other origin
    assert g.token("other", "https://other.example", "b", n, "https://other.example/").status == 403  # other widget
    assert g.token("shop", SHOP, "b", n, "https://evil.example/").status == 400          # page of another origin
    assert g.token("shop", SHOP, "c", n, SHOP + "/").status == 200
    assert g.token("shop", SHOP, "c", n, SHOP + "/").status == 403                       # spent


def test_other_widgets_token_cannot_reach_routes_it_lacks(gate):
    g, clock = gate
    token = token_for(g, "https://other.example", widget="other")
    assert isinstance(g.check_invite(Req(token), ws("https://other.example"), "4011"), Refusal)
    assert not isinstance(g.check_invite(Req(token), ws("https://other.example"), "4010"), Refusal)


def test_forged_and_oversized_tickets():
    clock = Clock()
    a, b = Signer(b"k" * 32), Signer(b"j" * 32)
    tok = a.issue("t", "shop", SHOP, clock(), 60, ("4010",), SHOP + "/")
    assert a.read(tok, "t", clock()).routes == ("4010",)
    for bad in (b.issue("t", "shop", SHOP, clock(), 60, ("4010",)), tok[:-1] + ("A" if tok[-1] != "A" else "B"),
                tok.replace("v1.", "v2.", 1), "x" * (MAX_TICKET + 1), "v1..", "", "é" * 10):
        with pytest.raises(TicketError):
            a.read(bad, "t", clock())
    with pytest.raises(TicketError, match="wrong kind"):
        a.read(a.issue("n", "shop", SHOP, clock(), 30), "t", clock())


def test_rate_limits_per_address_and_node(gate):
    g, clock = gate                                    # per_address 3, per_node 5 a minute
    assert [g.nonce("shop", SHOP, "a").status for _ in range(4)] == [200, 200, 200, 429]
    r = g.nonce("shop", SHOP, "a")
    assert r.status == 429 and r.retry_after == 20     # one comes back every 60/3 s
    assert [g.nonce("shop", SHOP, "b").status for _ in range(3)] == [200, 200, 429]   # the node's 5 are gone
    clock.t += 20.0
    assert g.nonce("shop", SHOP, "a").status == 200
    assert g.stats["rate_limited"] == 3


def test_rate_limit_table_is_bounded():
    limit = RateLimit(1, 1_000_000, max_keys=100)
    for i in range(10_000):
        assert limit.allow(f"10.0.{i // 256}.{i % 256}", 0.0) == 0.0
    assert len(limit._by_address) == 100


@pytest.mark.parametrize("section, problem", [
    ("click_to_dial:\n  widgets:\n    - {name: s, origins: [\"https://a.example/x\"], routes: [\"4010\"]}\n",
     "click_to_dial.widgets[0].origins[0]: expected SCHEME://HOST[:PORT]"),
    ("click_to_dial:\n  widgets:\n    - {name: s, origins: [\"https://a.example\"], routes: [\"4001\"]}\n",
     "click_to_dial.widgets[0].routes[0]: route '4001' must go to a voice_click_to_dial or video_click_to_dial"),
    ("click_to_dial:\n  widgets:\n    - {name: s, origins: [\"https://a.example\"], routes: [\"4999\"]}\n",
     "click_to_dial.widgets[0].routes[0]: no called route '4999'"),
    ("click_to_dial:\n  secret: short\n  widgets: []\n", "click_to_dial.secret: must be at least 32 characters"),
    ("click_to_dial:\n  per_adress: 3\n  widgets: []\n", "click_to_dial.per_adress: unknown key (did you mean"),
    ("click_to_dial:\n  token_ttl: 1h\n  widgets: []\n", "click_to_dial.token_ttl: must be between 5s and 600s"),
])
def test_yaml_errors_name_file_line_and_key(section, problem):
    with pytest.raises(ConfigError) as err:
        parse_config(cfg_text(section), "cc.yaml")
    text = str(err.value)
    assert problem in text and "cc.yaml:" in text, text
    line = int(text.split(problem)[0].rsplit("cc.yaml:", 1)[1].split(":")[0])
    assert line > 0


def test_a_reload_changes_origins_and_routes_at_once():
    holder = {"cfg": parse_config(cfg_text(SECTION), "cc.yaml")}
    g = WidgetGate(lambda: holder["cfg"], Clock())
    token = token_for(g)
    assert g.ws_origin_allowed(SHOP)
    # the shop's origin and route 4011 are taken off the widget; its tokens stop working with them
    holder["cfg"] = parse_config(cfg_text(SECTION.replace(f'"{SHOP}", ', "").replace('"4010", "4011"', '"4010"')),
                                 "cc.yaml")
    assert not g.ws_origin_allowed(SHOP) and g.nonce("shop", SHOP, "a").status == 403
    assert isinstance(g.check_invite(Req(token), ws(SHOP), "4010"), Refusal)
    local = "http://localhost:8000"
    token = token_for(g, local)
    assert isinstance(g.check_invite(Req(token), ws(local), "4011"), Refusal)
    assert not isinstance(g.check_invite(Req(token), ws(local), "4010"), Refusal)


class Invite(Req):
    def __init__(self, token: str, call_id: str) -> None:
        super().__init__(token)
        self.call_id = call_id


def test_a_page_websocket_keeps_the_ids_of_its_live_calls_only(gate):
    """One visitor page's WebSocket that makes call after call: what the node keeps for it stays the calls
    still going (the flow's entry goes when the WebSocket closes)."""
    g, clock = gate
    calls = SimpleNamespace(widgets=g, calls={}, stats={"rejected": 0})
    target = ws(SHOP)
    for i in range(20):
        clock.t += 60                                   # within the rate limits
        call_id = f"call-{i}"
        tx = SimpleNamespace(context=target)
        assert admit_widget_call(calls, tx, Invite(token_for(g), call_id), "4010")
        calls.calls = {call_id: object()}              # the earlier calls are over
    assert g.flows[target.conn] == {"call-18", "call-19"}     # the one live when the last came, and the last
