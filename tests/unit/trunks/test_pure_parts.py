"""Trunk identification, number handling, inbound routing, the dial plan with failover, the call caps and the OPTIONS up/down
state, each on a fake clock; and the package stays pure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from softswitch.b2bua.routing import Router
from softswitch.settings.model import CalledRoute
from softswitch.settings.trunks import Trunk
from softswitch.trunks.caps import CallCaps, TokenBucket
from softswitch.trunks.codecs import restrict
from softswitch.trunks.dialplan import CallerIds, DialPlan, Failover, Route, matches
from softswitch.trunks.identify import TrunkIndex
from softswitch.trunks.inbound import called_source, caller_number, route, uri_user
from softswitch.trunks.numbers import NumberPlan
from softswitch.trunks.ping import TABLE, Arm, Changed, Ping, PingState, answered

PKG = Path(__file__).resolve().parents[3] / "softswitch" / "trunks"


def test_pure_modules_import_no_io_clock_or_randomness():
    for path in PKG.glob("*.py"):
        if path.name in ("service.py", "clients.py"):      # the asyncio shell
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for n in names:
                assert n.split(".")[0] not in {"asyncio", "socket", "time", "random", "os", "secrets"}, path.name


# --- identification ----------------------------------------------------------------------------------------
def test_identified_by_address_network_and_resolved_host_only():
    idx = TrunkIndex.build({"carrier": ("203.0.113.10", "198.51.100.0/24"), "sbc": ("192.0.2.7", "10.0.0.0/8"),
                            "narrow": ("10.1.2.0/24",), "named": ("sbc.example.net",)})
    assert idx.by_source("203.0.113.10") == "carrier"
    assert idx.by_source("198.51.100.77") == "carrier"
    assert idx.by_source("10.1.2.3") == "narrow"          # the most specific network wins
    assert idx.by_source("10.9.9.9") == "sbc"
    assert idx.by_source("::ffff:203.0.113.10") == "carrier"
    assert idx.by_source("203.0.113.11") is None and idx.by_source("not-an-ip") is None
    # an INVITE naming a trunk from an address of another (or of none) is nobody's
    assert idx.identify("203.0.113.10", claimed="carrier") == "carrier"
    assert idx.identify("192.0.2.7", claimed="carrier") is None
    assert idx.identify("203.0.113.99", claimed="carrier") is None
    assert idx.identify("192.0.2.7") == "sbc"


# --- numbers -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, e164", [("030 555-4001", "+49305554001"), ("0049305554001", "+49305554001"),
                                       ("+44 20 7946 0000", "+442079460000"), ("99#0305554001", "+49305554001"),
                                       ("4001", "4001"), ("0", "0")])
def test_inbound_numbers_become_e164(raw, e164):
    assert NumberPlan(country_code="49", strip="99#").inbound(raw) == e164


@pytest.mark.parametrize("send_as, add, number, wire", [
    ("e164", "", "+49305554001", "+49305554001"), ("digits", "", "+49305554001", "49305554001"),
    ("international", "", "+442079460000", "00442079460000"), ("national", "", "+49305554001", "0305554001"),
    ("national", "", "+442079460000", "00442079460000"), ("e164", "1234#", "0305554001", "1234#+49305554001")])
def test_outbound_numbers_are_written_as_the_carrier_wants(send_as, add, number, wire):
    assert NumberPlan(country_code="49", add=add, send_as=send_as).outbound(number) == wire


# --- dial plan and failover --------------------------------------------------------------------------------
def test_patterns_and_first_matching_route():
    assert matches("+49*", "+49301") and not matches("+49*", "+4") and matches("*", "")
    assert matches("+1XXXXXXXXXX", "+12025550123") and not matches("+1XXXXXXXXXX", "+1202555012")
    plan = DialPlan((Route("+4930*", ("local",)), Route("+49*", ("a", "b")), Route("*", ("b",))),
                    CallerIds("+4930555000", {"support": "+4930555100"}, {"1001": "+4930555101"}))
    assert plan.trunks_for("+4930123") == ("local",) and plan.trunks_for("+4989123") == ("a", "b")
    assert plan.trunks_for("+33123") == ("b",)
    assert plan.caller_ids.choose(queue="support", agent="1001") == "+4930555101"
    assert plan.caller_ids.choose(queue="support", agent="1002") == "+4930555100"
    assert plan.caller_ids.choose(queue="sales") == "+4930555000"


@pytest.mark.parametrize("outcome, next_trunk", [(408, "b"), (500, "b"), (503, "b"), ("timeout", "b"),
                                                 ("network_error", "b"), (486, None), (404, None),
                                                 (603, None), (200, None)])
def test_failover_on_408_5xx_and_timeouts_only(outcome, next_trunk):
    f = Failover(("a", "b"), lambda n: True)
    assert f.first() == "a"
    assert f.result(outcome) == next_trunk


def test_down_or_capped_trunks_are_skipped_and_the_walk_ends():
    usable = {"a": False, "b": True, "c": True}
    f = Failover(("a", "b", "c"), usable.__getitem__)
    assert f.first() == "b" and f.skipped == ["a"]
    assert f.result(503) == "c"
    assert f.result("timeout") is None
    assert f.tried == [("b", 503), ("c", "timeout")]
    assert f.result(503) is None


# --- caps ----------------------------------------------------------------------------------------------
def test_token_bucket_refills_at_its_rate_up_to_the_burst():
    b = TokenBucket(rate=2, burst=3)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.take(0.5) and not b.take(0.5)
    assert [b.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert not b.take(50.0)          # a clock going back adds nothing


def test_call_caps_rate_and_concurrency_count_each_call_once():
    caps = CallCaps(calls_per_second=10, burst=2, max_calls=3)
    assert caps.admit("c1", 0.0) is None and caps.admit("c1", 0.0) is None    # a retransmission
    assert caps.admit("c2", 0.0) is None
    assert caps.admit("c3", 0.0) == "rate"
    assert caps.admit("c3", 0.1) is None
    assert caps.admit("c4", 1.0) == "calls"
    caps.keep_only({"c1", "c3"})
    assert caps.admit("c4", 1.0) is None
    caps.release("c4")
    assert caps.active == {"c1", "c3"}
    assert caps.stats == {"admitted": 4, "over_rate": 1, "over_calls": 1}
    caps.retune(0, 1, 0)
    assert all(caps.admit(f"x{i}", 2.0) is None for i in range(50))


# --- OPTIONS up/down ---------------------------------------------------------------------------------------
def test_down_after_threshold_misses_then_up_on_the_first_answer():
    p = PingState(interval=10, threshold=3, timeout=2)
    assert p.start(0) == [Ping(2)]
    assert p.result(True, 0.1) == [Arm(10.1)] and p.state == "up"
    assert p.result(False, 12) == [Arm(22)] and p.usable
    assert p.result(False, 34) == [Arm(44)] and p.usable
    assert p.result(False, 56) == [Changed("down", 56), Arm(66)] and not p.usable
    assert p.result(False, 68) == [Arm(78)] and p.state == "down"
    assert p.due(78) == [Ping(2)]
    assert p.result(True, 78.01) == [Changed("up", 78.01), Arm(88.01)] and p.usable
    assert p.stats == {"pings": 2, "misses": 4, "downs": 1, "ups": 1}


def test_a_miss_between_answers_does_not_take_a_trunk_down():
    p = PingState(interval=1, threshold=2, timeout=1)
    for i in range(10):
        p.result(i % 2 == 0, float(i))
    assert p.state == "up"


@pytest.mark.parametrize("status, ok", [(200, True), (404, True), (405, True), (408, False), (503, False),
                                        (500, False), (None, False)])
def test_what_counts_as_an_answer(status, ok):
    assert answered(status) is ok


def test_ping_table_is_total():
    assert {(s, e) for s in ("unknown", "up", "down") for e in ("ok", "fail", "fail_last")} == set(TABLE)


def test_header_numbers_are_read_in_linear_time_and_garbage_gives_none():
    assert uri_user('"Jo" <sip:+4930555@x.example>;tag=1') == "+4930555"
    assert uri_user("<tel:+4930555;phone-context=x>") == "+4930555"
    assert uri_user("<" + " " * 100000 + "x") is None and uri_user(None) is None


def test_a_trunks_call_is_routed_by_its_number_plan_and_reach():
    router = Router([CalledRoute("+49305554001", None, "queue", "support"), CalledRoute("4009", None, "ivr", "menu")],
                    {"70001": "1001"})
    t = Trunk("c", ("192.0.2.1",), numbers=NumberPlan(country_code="49", strip="99#"), reach=("acd", "agents"))
    d, n = route(t, router, "99#0305554001")
    assert (d.kind, d.target, n) == ("queue", "support", "+49305554001")
    d, n = route(t, router, "4009")
    assert (d.kind, d.status, d.reason) == ("reject", 403, "Trunk may not reach the IVR")
    assert route(t, router, "70001")[0].kind == "agent" and route(t, router, "5")[0].status == 404
    assert route(Trunk("x", ("192.0.2.2",)), router, "70001")[0].kind == "agent"         # reach: all
    assert route(Trunk("y", ("192.0.2.3",), reach=("acd",)), router, "70001")[0].status == 403
    assert route(t, router, None)[0].status == 404
    headers = {"P-Called-Party-ID": "<sip:0305554001@carrier>", "Diversion": "<tel:4009>;reason=unconditional"}
    assert called_source(Trunk("p", called_number="p-called-party-id"), "x", headers) == "0305554001"
    assert called_source(Trunk("d", called_number="diversion"), "x", headers) == "4009"
    assert called_source(Trunk("d", called_number="to"), "x", {}) == "x"
    assert caller_number(t, "<sip:anonymous@x>", "<sip:0301234@carrier>", trusted=True) == "+49301234"
    assert caller_number(t, "<sip:0305@x>", "<sip:0301234@carrier>", trusted=False) == "+49305"


def test_a_caller_number_that_is_no_number_leaves_the_from_alone():
    t = Trunk("c", ("192.0.2.1",))
    assert caller_number(t, '<sip:+4930@x>', '<sip:a"b<c@carrier>', trusted=True) == "+4930"
    assert caller_number(t, '<sip:%00@x>', None, trusted=True) is None
    assert caller_number(t, "<sip:" + "1" * 100 + "@x>", None, trusted=False) is None


# --- codecs ------------------------------------------------------------------------------------------------
OFFER = ("v=0\r\no=c 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
         "m=audio 4000 RTP/AVP 0 8 18 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\n"
         "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
         "m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n").encode()


def audio_of(body: bytes) -> tuple[str, list[str]]:
    lines = body.decode().split("\r\n")
    m = next(line for line in lines if line.startswith("m=audio"))
    section = lines[lines.index(m) + 1:]
    section = section[:next((i for i, x in enumerate(section) if x.startswith("m=")), len(section))]
    return m, section


@pytest.mark.parametrize("codecs, answer, m_line", [
    (("PCMA", "PCMU", "telephone-event"), False, "m=audio 4000 RTP/AVP 8 0 101"),
    (("PCMA", "PCMU", "telephone-event"), True, "m=audio 4000 RTP/AVP 8 101"),
    (("PCMU",), False, "m=audio 4000 RTP/AVP 0"),
    (("PCMU", "PCMA"), True, "m=audio 4000 RTP/AVP 0"),
])
def test_sdp_for_a_trunk_lists_only_its_codecs_in_its_order(codecs, answer, m_line):
    body = restrict(OFFER, codecs, answer=answer)
    m, section = audio_of(body)
    assert m == m_line
    kept = m.split(" ")[3:]
    assert all(line.split(":", 1)[1].split(" ")[0] in kept for line in section
               if line.startswith(("a=rtpmap:", "a=fmtp:")))        # G.729's lines went with it
    assert "a=sendrecv" in section and "m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000" in body.decode()


def test_an_offer_without_any_of_the_trunks_codecs_is_none_and_no_audio_is_left_alone():
    g729 = OFFER.replace(b"RTP/AVP 0 8 18 101", b"RTP/AVP 18 101")
    assert restrict(g729, ("PCMU", "PCMA", "telephone-event")) is None
    assert restrict(OFFER.replace(b"RTP/AVP 0 8 18 101", b"RTP/AVP 0"), ("PCMA",), answer=True) is None
    video_only = b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=video 4002 RTP/AVP 96\r\n"
    assert restrict(video_only, ("PCMA",)) == video_only
    # the static payload types need no rtpmap (8 is PCMA by RFC 3551)
    m, _ = audio_of(restrict(OFFER.replace(b"a=rtpmap:0 PCMU/8000\r\n", b""), ("PCMU", "PCMA")))
    assert m == "m=audio 4000 RTP/AVP 0 8"
