"""Overload control: the pure policy (ages are plain numbers), the raw 503, and a real node whose UDP
listener is told datagrams are old by moving the clock it compares kernel receive stamps with."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import aiohttp
from hypothesis import given, settings
from hypothesis import strategies as st

from softswitch.security.overload import ADMIT, DROP, REJECT, OverloadOptions, OverloadPolicy, peek, service_unavailable
from softswitch.sip.errors import SipError
from softswitch.sip.parser import parse_message
from tests.support.cc import cc_node, wait_for
from tests.conftest import running_node
from tests.support.nodes import ACCOUNTS, REALM, authorize, registrar_node
from tests.support.sipclient import TcpClient, UdpClient, options_request
from softswitch.transport.ws import listen_ws


def register(user: str = "70001", n: int = 1, auth: str = "", extra: str = "", compact: bool = False) -> bytes:
    via, frm, to, cid = ("v", "f", "t", "i") if compact else ("Via", "From", "To", "Call-ID")
    return (f"REGISTER sip:{REALM} SIP/2.0\r\n"
            f"{via}: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-r{n};rport\r\n"
            f"{via}: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-lower{n}\r\n"
            f"{frm}: <sip:{user}@{REALM}>;tag=ft{n}\r\n{to}: <sip:{user}@{REALM}>\r\n"
            f"{cid}: reg-{n}@test\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@127.0.0.1:6000>\r\n{auth}{extra}"
            f"Max-Forwards: 70\r\nExpires: 600\r\nUser-Agent: TestPhone\r\nContent-Length: 0\r\n\r\n").encode()


def invite(n: int = 1, to_tag: str = "", number: str = "4001") -> bytes:
    tag = f";tag={to_tag}" if to_tag else ""
    return (f"INVITE sip:{number}@cc.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-i{n};rport\r\n"
            f"From: <sip:+15550100@carrier.test>;tag=c{n}\r\nTo: <sip:{number}@cc.test>{tag}\r\n"
            f"Call-ID: inv-{n}@test\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:6001>\r\n"
            f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


# --- classification without the parser ----------------------------------------------------------------------
def test_peek_sorts_new_work_from_work_in_progress():
    assert peek(register()).kind == "new"
    assert peek(register(compact=True)).kind == "new"
    assert peek(register(auth='Authorization: Digest username="70001"\r\n')).kind == "continuing"
    assert peek(register(auth='proxy-AUTHORIZATION : Digest x\r\n')).kind == "continuing"
    assert peek(invite()).kind == "new"
    assert peek(invite(to_tag="abc")).kind == "continuing"          # in-dialog (a re-INVITE)
    for method in ("ACK", "BYE", "CANCEL", "PRACK", "NOTIFY"):
        assert peek(invite().replace(b"INVITE", method.encode())).kind == "continuing"
    assert peek(b"SIP/2.0 180 Ringing\r\nVia: x\r\n\r\n").kind == "response"
    assert peek(register()).user_agent == "TestPhone"
    for junk in (b"", b"\x00" * 50, b"REGISTER\r\n\r\n", b"REGISTER sip:x SIP/3.0\r\n\r\n",
                 b"REGISTER sip:x SIP/2.0\r\nno colon here\r\n\r\n", b"RE GISTER x SIP/2.0\r\n\r\n"):
        assert peek(junk) is None


def test_peek_reads_folded_headers_and_ignores_the_body():
    folded = register().replace(b"To: <sip:70001@cc.test>", b"To: <sip:70001@cc.test>\r\n  ;tag=x")
    assert peek(folded).kind == "continuing"
    body = register().replace(b"Content-Length: 0\r\n\r\n", b"Content-Length: 30\r\n\r\nAuthorization: Digest x\r\n")
    assert peek(body).kind == "new"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_peek_and_the_503_never_raise_on_any_bytes(data):
    for sample in (data, register()[:len(data)] + data, b"REGISTER sip:a SIP/2.0\r\n" + data):
        p = peek(sample)
        if p is not None:
            out = service_unavailable(p, "tag1", 5)
            if out is not None:
                try:
                    parse_message(out)
                except SipError:
                    pass       # echoing a value the full parser refuses is fine; raising anything else is not


def test_peek_stays_linear_on_hostile_runs():
    t0 = time.process_time()
    for filler in (b":", b" ", b"\t", b"\r\n ", b"\n", b"a:b\n", b";tag=", b"\x00"):
        peek(b"REGISTER sip:x SIP/2.0\r\n" + filler * (60000 // len(filler)))
    assert time.process_time() - t0 < 1.0          # microseconds per kilobyte; a backtracking scan takes minutes


# --- the 503 ------------------------------------------------------------------------------------------------
def test_the_503_echoes_the_transaction_headers_in_order_and_adds_a_to_tag():
    out = service_unavailable(peek(register(compact=True)), "ovl1", 5, server="softswitch")
    r = parse_message(out)
    assert r.status == 503 and r.reason == "Service Unavailable"
    assert [v.branch for v in r.vias] == ["z9hG4bK-r1", "z9hG4bK-lower1"]
    assert r.to.tag == "ovl1" and r.from_.tag == "ft1" and r.call_id == "reg-1@test" and r.cseq == (1, "REGISTER")
    assert 5 <= int(r.get("Retry-After")) <= 10 and r.get("Server") == "softswitch" and r.body == b""
    spread = {int(parse_message(service_unavailable(peek(register(n=i)), "t", 5)).get("Retry-After"))
              for i in range(200)}
    assert len(spread) > 3 and min(spread) >= 5 and max(spread) <= 10    # retries are spread, not in lockstep
    tagged = parse_message(service_unavailable(peek(invite(to_tag="dlg")), "ovl1", 5))
    assert tagged.to.tag == "dlg"


def test_no_503_without_exactly_the_headers_a_response_needs_and_never_to_an_ack():
    no_from = register().replace(b"From: <sip:70001@cc.test>;tag=ft1\r\n", b"")
    two_to = register().replace(b"To: ", b"To: <sip:a@b>\r\nTo: ", 1)
    no_via = b"\r\n".join(x for x in register().split(b"\r\n") if not x.startswith(b"Via"))
    for bad in (no_from, two_to, no_via, invite().replace(b"INVITE", b"ACK")):
        assert service_unavailable(peek(bad), "t", 5) is None


# --- the policy table ---------------------------------------------------------------------------------------
def test_policy_table():
    p = OverloadPolicy(OverloadOptions(queue_delay=0.2, drop_after=2.0, give_up=32.0))
    table = {
        # kind, method, age -> verdict
        ("response", b"", 0.0): ADMIT, ("response", b"", 100.0): ADMIT,
        ("continuing", b"REGISTER", 0.1): ADMIT, ("continuing", b"REGISTER", 2.0): ADMIT,
        ("continuing", b"REGISTER", 2.01): DROP, ("continuing", b"BYE", 33.0): DROP,
        ("new", b"REGISTER", 0.2): ADMIT, ("new", b"REGISTER", 0.21): REJECT, ("new", b"REGISTER", 2.0): REJECT,
        ("new", b"REGISTER", 2.01): DROP, ("new", b"INVITE", 0.5): ADMIT, ("new", b"INVITE", 2.5): DROP,
        ("new", b"OPTIONS", 1.0): ADMIT, ("new", b"OPTIONS", 40.0): DROP,
    }
    for (kind, method, age), verdict in table.items():
        assert p.decide(kind, method, age) == verdict, (kind, method, age)


def test_shed_answers_drops_and_asks_the_guard_first():
    p = OverloadPolicy(OverloadOptions(queue_delay=0.2, sustain=0.0, drop_after=2.0), tag="T", server="ss")
    verdict, reply = p.shed(register(n=1), 0.5, 10.0)
    assert verdict == REJECT and parse_message(reply).status == 503
    assert p.shed(register(n=2), 2.5, 10.0) == (DROP, None)
    assert p.shed(register(n=3, auth="Authorization: Digest x\r\n"), 1.5, 10.0) == (ADMIT, None)
    assert p.shed(register(n=4, auth="Authorization: Digest x\r\n"), 40.0, 10.0) == (DROP, None)
    assert p.shed(b"\x00garbage", 0.5, 10.0) == (DROP, None)
    asked = []
    assert p.shed(register(n=5), 0.5, 10.0, lambda ua: asked.append(ua) or False) == (DROP, None)
    assert asked == ["TestPhone"]
    assert p.stats == {"admitted_late": 1, "rejected": 1, "dropped": 3, "dropped_given_up": 1,
                       "dropped_retransmission": 0}
    assert p.take_worst() == 40.0 and p.take_worst() == 0.0


def test_while_shedding_a_retransmission_of_a_registration_served_on_time_is_dropped_not_refused():
    p = OverloadPolicy(OverloadOptions(queue_delay=0.2, sustain=0.5))
    assert p.shed(register(n=1), 0.3, 50.0)[0] == ADMIT
    assert p.shed(register(n=6), 0.3, 50.5)[0] == REJECT          # shedding from now on
    p.served_on_time(register(n=2), 50.6)                          # on time: served, its branch remembered
    p.served_on_time(b"SIP/2.0 200 OK\r\n\r\n", 50.6)           # answers are not remembered
    assert hash(register(n=2)) in p.seen and len(p.seen) == 4      # (late ones by hash, and branch once shedding)
    assert p.shed(register(n=2), 0.6, 50.7) == (DROP, None)        # its retransmission, late
    assert p.shed(register(n=4), 0.6, 50.7)[0] == REJECT
    assert p.stats["dropped_retransmission"] == 1 and p.stats["rejected"] == 2
    p.served_on_time(register(n=5), 51.3)                          # nothing late for > sustain: episode over
    assert not p.shedding


def test_shedding_starts_only_after_a_sustained_run_of_late_datagrams_and_ends_after_a_quiet_spell():
    p = OverloadPolicy(OverloadOptions(queue_delay=0.2, sustain=0.5))
    # a short stall of the machine: late datagrams for 0.4 s, then one on time -> everything is served
    for t in (0.0, 0.2, 0.4):
        assert p.shed(register(n=int(10 * t)), 0.3, 100.0 + t) == (ADMIT, None)
    p.on_time()
    assert p.shed(register(n=21), 0.3, 100.6) == (ADMIT, None)    # the run starts again at 100.6
    assert p.shed(register(n=22), 0.3, 101.0) == (ADMIT, None)
    assert p.take_worst() == 0.0                                # nothing shed: the call watcher sees no backlog
    verdict, _ = p.shed(register(n=23), 0.3, 101.1)                 # 0.5 s of late datagrams without a break
    assert verdict == REJECT and p.shedding and p.take_worst() == 0.3
    p.on_time()                                                 # while shedding, an on-time datagram changes nothing
    assert p.shed(register(n=24), 0.3, 101.5)[0] == REJECT
    assert p.shed(register(n=25), 0.3, 102.1)[0] == ADMIT          # none late for > 0.5 s: the episode is over
    assert not p.shedding
    assert p.shed(register(n=26), 30.0 + 3, 102.2) == (DROP, None)  # given up: dropped whatever the state


# --- a real node --------------------------------------------------------------------------------------------
def _age_datagrams(nt, seconds: float) -> None:
    """Test hook: the UDP listener's clock runs `seconds` ahead of the kernel's stamps, so every datagram
    looks that old (the real queue wait comes on top)."""
    def move():
        for u in nt.node.endpoint.udp:
            u.wall = (lambda: time.time() + seconds) if seconds else time.time
    nt.call(move)


def test_an_old_queue_gets_503_for_new_registrations_and_still_completes_started_ones():
    with registrar_node(overload=OverloadOptions(sustain=0.0)) as nt:
        c = UdpClient(("127.0.0.1", nt.port))
        first = register("70002", n=7)
        c.send(first)
        challenge = c.recv()
        assert challenge.status == 401
        _age_datagrams(nt, 0.5)
        c.send(register("70001", n=1))
        shed = c.recv()
        assert shed.status == 503 and 5 <= int(shed.get("Retry-After")) <= 10 and shed.to.tag
        assert shed.call_id == "reg-1@test" and shed.top_via.branch == "z9hG4bK-r1"
        c.send(authorize(first, challenge, "70002", ACCOUNTS["70002"]))
        assert c.recv().status == 200                   # the second half of a started registration is served
        stats = nt.call(lambda: (dict(nt.node.overload.stats), dict(nt.node.registrar.stats),
                                 nt.node.endpoint.layer.stats["server_created"]))
        assert stats[0]["rejected"] == 1 and stats[0]["admitted_late"] == 1
        assert stats[1]["challenged"] == 1 and stats[1]["registered"] == 1   # the shed one was never challenged
        _age_datagrams(nt, 3.0)                         # past drop_after: no answer at all
        c.send(register("70003", n=3))
        assert c.recv(0.5) is None
        _age_datagrams(nt, 0.0)                         # the backlog is gone: served as usual again
        c.send(register("70003", n=4))
        assert c.recv().status == 401
        c.close()


def test_banned_and_scanner_sources_get_nothing_even_when_overloaded(tmp_path):
    security = ", security: {exempt: [127.0.0.2]}, overload: {sustain: 0s}"
    with cc_node(tmp_path, security=security) as (nt, sip_port, http_port):
        c = UdpClient(("127.0.0.1", sip_port))
        _age_datagrams(nt, 0.5)
        c.send(register(extra="").replace(b"TestPhone", b"friendly-scanner"))
        assert c.recv(0.5) is None
        nt.call(lambda: nt.node.guard.ban("127.0.0.1", nt.node.loop.time(), "test"))
        c.send(register(n=2))
        assert c.recv(0.5) is None
        assert nt.call(lambda: nt.node.overload.stats["rejected"]) == 0
        c.close()


def test_invites_get_503_while_the_receive_queue_is_old_and_no_call_is_created(tmp_path):
    with cc_node(tmp_path) as (nt, sip_port, http_port):
        # the watcher smooths the oldest age it is told about; told 0.5 s every time, it climbs toward 0.5
        nt.call(lambda: setattr(nt.node.overload, "take_worst", lambda: 0.5))
        assert wait_for(lambda: nt.call(lambda: nt.node.calls.backlog) > 0.2)
        c = UdpClient(("127.0.0.1", sip_port))
        c.send(invite(n=9))
        answers = [m.status for m in c.recv_all(0.5)]
        assert answers[-1] == 503 and 180 not in answers
        assert nt.call(lambda: (len(nt.node.calls.calls), nt.node.calls.stats["overloaded"])) == (0, 1)
        # the measure that refused it is counted on /metrics and /health
        text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10).read().decode()
        assert 'softswitch_calls_refused_overloaded_total{reason="backlog"} 1.0' in text
        assert 'softswitch_calls_refused_overloaded_total{reason="loop_lag"} 0.0' in text
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=10).read())
        assert health["refused_overloaded"]["backlog"] == 1
        c.close()


def test_no_overload_control_when_disabled_or_without_a_config(tmp_path):
    with running_node() as nt:
        assert nt.call(lambda: nt.node.overload) is None
    with cc_node(tmp_path, security=", overload: {enabled: false}") as (nt, sip_port, http_port):
        assert nt.call(lambda: nt.node.overload) is None
        _age_datagrams(nt, 0.5)
        c = UdpClient(("127.0.0.1", sip_port))
        c.send(options_request(sip_port))
        assert c.recv().status == 200
        c.close()


def test_fresh_datagrams_never_reach_the_policy():
    with registrar_node(overload=OverloadOptions()) as nt:
        c = UdpClient(("127.0.0.1", nt.port))
        for i in range(20):
            c.send(options_request(nt.port, call_id=f"o{i}", branch=f"z9hG4bK-o{i}"))
            assert c.recv().status == 200
        assert nt.call(lambda: sum(nt.node.overload.stats.values())) == 0
        assert nt.call(lambda: nt.node.endpoint.udp[0].stamped) is True
        c.close()


def test_the_config_sets_overload_control_and_the_stall_threshold_and_names_a_bad_key(tmp_path):
    import pytest

    from softswitch.node.compose import options_from_config
    from softswitch.settings import ConfigError, parse_config
    from tests.support.cc import config_text
    text = config_text(5060, 8080, str(tmp_path / "cc.db"), 30000,
                       security=", overload: {queue_delay: 50ms, sustain: 0s, drop_after: 1s, retry_after: 9}")
    text = text.replace("  http: {", "  watchdog: {stall_threshold: 250ms}\n  http: {", 1)
    cfg = parse_config(text, "cc.yaml")
    assert cfg.server.stall_threshold == 0.25
    assert options_from_config(cfg).overload == OverloadOptions(0.05, 0.0, 1.0, retry_after=9)
    defaults = parse_config(config_text(5060, 8080, str(tmp_path / "cc.db"), 30000), "cc.yaml")
    assert options_from_config(defaults).overload == OverloadOptions() and defaults.server.stall_threshold == 0.1
    with pytest.raises(ConfigError) as err:
        parse_config(config_text(5060, 8080, str(tmp_path / "cc.db"), 30000,
                                 security=", overload: {queue_delay: soon}"), "cc.yaml")
    assert "server.sip.overload.queue_delay" in str(err.value)


# --- stream connections -------------------------------------------------------------------------------------
def _lag(nt, seconds: float) -> None:
    """Test hook: the event loop is taken to run `seconds` late (the node's watcher no longer updates it), so
    every message read from a stream connection looks that old."""
    def move():
        policy = nt.node.overload
        policy.note_loop_lag = lambda lag: None
        policy.loop_lag = seconds
    nt.call(move)


def test_an_old_tcp_backlog_gets_503_for_new_registrations_and_still_completes_started_ones():
    with registrar_node(overload=OverloadOptions(sustain=0.0)) as nt:
        c = TcpClient(("127.0.0.1", nt.port))
        first = register("70002", n=7).replace(b"UDP", b"TCP")
        c.send(first)
        challenge = c.recv()
        assert challenge.status == 401
        _lag(nt, 0.5)
        c.send(register("70001", n=1).replace(b"UDP", b"TCP"))
        shed = c.recv()
        assert shed.status == 503 and 5 <= int(shed.get("Retry-After")) <= 10 and shed.to.tag
        assert shed.call_id == "reg-1@test" and shed.cseq == (1, "REGISTER")
        c.send(authorize(first, challenge, "70002", ACCOUNTS["70002"]))
        assert c.recv().status == 200                   # the second half of a started registration is served
        stats = nt.call(lambda: (dict(nt.node.overload.stats), dict(nt.node.registrar.stats)))
        assert stats[0]["rejected"] == 1 and stats[0]["admitted_late"] == 1
        assert stats[1]["challenged"] == 1 and stats[1]["registered"] == 1
        _lag(nt, 0.0)                                   # the loop keeps up again: served as usual
        c.send(register("70003", n=4).replace(b"UDP", b"TCP"))
        assert c.recv().status == 401
        c.close()


def test_an_invite_over_tcp_to_an_overloaded_node_gets_503_and_no_call_is_created(tmp_path):
    with cc_node(tmp_path, security=", overload: {sustain: 0s}") as (nt, sip_port, http_port):
        _lag(nt, 0.5)
        c = TcpClient(("127.0.0.1", sip_port))
        c.send(invite(n=5).replace(b"UDP", b"TCP"))
        answer = c.recv()
        assert answer.status == 503 and int(answer.get("Retry-After")) >= 5 and answer.call_id == "inv-5@test"
        assert c.recv(0.5) is None                      # nothing else: no 100, no call
        assert nt.call(lambda: (len(nt.node.calls.calls), nt.node.calls.stats["calls"])) == (0, 0)
        _lag(nt, 0.0)
        c.close()


def test_an_old_websocket_backlog_gets_503_for_new_registrations_before_parsing():
    with registrar_node(overload=OverloadOptions(sustain=0.0)) as nt:
        srv = nt.call(listen_ws, nt.loop, nt.node.endpoint, "127.0.0.1", 0)

        async def go():
            async with aiohttp.ClientSession() as s, \
                    s.ws_connect(f"ws://127.0.0.1:{srv.port}/", protocols=("sip",)) as ws:
                await ws.send_bytes(register("70001", n=2).replace(b"UDP", b"WS"))
                return parse_message((await asyncio.wait_for(ws.receive(), 5)).data.encode())
        try:
            assert asyncio.run(go()).status == 401
            _lag(nt, 0.5)
            shed = asyncio.run(go())
            assert shed.status == 503 and 5 <= int(shed.get("Retry-After")) <= 10 and shed.to.tag
            assert nt.call(lambda: (nt.node.overload.stats["rejected"], nt.node.registrar.stats["challenged"])) \
                == (1, 1)
        finally:
            nt.call(srv.stop)
