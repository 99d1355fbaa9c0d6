"""The UDP front's gate: what it passes on to the node, answers 503 or drops, by how far behind the node is."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from softswitch.security.gate import DROP, PASS, REJECT, Gate, GateOptions, guard_from, guard_settings
from softswitch.security.guard import Guard, GuardOptions
from softswitch.sip.parser import parse_message

REALM = "cc.test"


def register(n: int = 1, auth: str = "", ua: str = "TestPhone") -> bytes:
    return (f"REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-r{n};rport\r\n"
            f"From: <sip:70001@{REALM}>;tag=ft{n}\r\nTo: <sip:70001@{REALM}>\r\nCall-ID: reg-{n}@test\r\n"
            f"CSeq: 1 REGISTER\r\nContact: <sip:70001@127.0.0.1:6000>\r\n{auth}Max-Forwards: 70\r\n"
            f"Expires: 600\r\nUser-Agent: {ua}\r\nContent-Length: 0\r\n\r\n").encode()


def invite(n: int = 1) -> bytes:
    return (f"INVITE sip:4001@{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-i{n};rport\r\n"
            f"From: <sip:+15550100@carrier.test>;tag=c{n}\r\nTo: <sip:4001@{REALM}>\r\nCall-ID: inv-{n}@test\r\n"
            f"CSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:6001>\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n").encode()


CREDENTIALS = 'Authorization: Digest username="70001", realm="cc.test", nonce="n", uri="sip:cc.test", response="r"\r\n'
OK = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-ka\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n"


def gate(guard=None, sustain: float = 0.0) -> Gate:
    return Gate(GateOptions(wait=0.15, sustain=sustain, hard=1.0, retry_after=5), guard, tag="t1", server="ss")


def test_everything_passes_while_the_node_keeps_up():
    g = gate()
    for data in (register(), invite(), OK, b"\x00garbage", register(auth=CREDENTIALS)):
        assert g.sort(data, "192.0.2.1", 0.15, 100.0) == (PASS, None)
    assert g.stats == {"passed": 5, "rejected": 0, "dropped": 0}


def test_behind_new_registrations_get_503_and_started_work_and_new_calls_pass():
    g = gate()
    verdict, reply = g.sort(register(n=4), "192.0.2.1", 0.3, 100.0)
    assert verdict == REJECT
    msg = parse_message(reply)
    assert msg.status == 503 and 5 <= int(msg.get("Retry-After")) <= 10
    assert msg.call_id == "reg-4@test" and msg.top_via.branch == "z9hG4bK-r4" and msg.to.tag == "t1"
    assert msg.get("Server") == "ss"
    # the second half of a challenge, a response, an INVITE (call admission answers it statefully), an ACK,
    # and what the parser must answer itself all go on to the node
    for data in (register(auth=CREDENTIALS), OK, invite(), invite().replace(b"INVITE", b"ACK"), b"junk\r\n\r\n"):
        assert g.sort(data, "192.0.2.1", 0.3, 100.0) == (PASS, None)
    assert g.stats == {"passed": 5, "rejected": 1, "dropped": 0}


class FakeClock:
    """The gate's clock is the `now` each call passes in: these tests move it by hand, no real time passes."""

    def __init__(self, start: float = 100.0) -> None:
        self.start = start

    def at(self, seconds: float) -> float:
        return self.start + seconds


def test_new_registrations_are_refused_only_once_the_node_has_been_behind_for_a_while():
    g, clock = gate(sustain=0.5), FakeClock()
    verdicts = [g.sort(register(n=t), "192.0.2.1", 0.3, clock.at(t / 10))[0] for t in range(10)]
    assert verdicts == [PASS] * 5 + [REJECT] * 5        # behind from clock 0 on: shedding from clock 0.5
    # on time for less than `sustain`: still shedding when it is late again; after a quiet spell, not
    assert g.sort(register(n=20), "192.0.2.1", 0.1, clock.at(1.0))[0] == PASS
    assert g.sort(register(n=21), "192.0.2.1", 0.3, clock.at(1.3))[0] == REJECT
    assert g.sort(register(n=22), "192.0.2.1", 0.1, clock.at(2.0))[0] == PASS
    assert g.sort(register(n=23), "192.0.2.1", 0.3, clock.at(2.1))[0] == PASS     # a new run of lateness starts
    # after an episode as long as REARM x sustain, the next late run sheds at once
    for t in range(25):
        g.sort(register(n=100 + t), "192.0.2.1", 0.3, clock.at(3.0 + t / 10))
    assert g.shedding
    g.sort(register(n=200), "192.0.2.1", 0.1, clock.at(6.0))
    assert not g.shedding
    assert g.sort(register(n=201), "192.0.2.1", 0.3, clock.at(6.2))[0] == REJECT


def test_taking_over_from_a_node_behind_counts_a_run_of_lateness_from_then():
    g, clock = gate(sustain=0.5), FakeClock()
    g.engage(clock.at(0.0))
    assert g.sort(register(n=1), "192.0.2.1", 0.3, clock.at(0.1))[0] == PASS
    assert g.sort(register(n=2), "192.0.2.1", 0.3, clock.at(0.5))[0] == REJECT    # behind since the hand-over
    assert g.sort(register(n=3), "192.0.2.1", 0.0, clock.at(0.6))[0] == PASS      # the node keeps up: passed
    assert g.shedding and g.last_late == clock.at(0.5)                # the last late call, by the fake clock
    assert g.sort(register(n=4), "192.0.2.1", 0.0, clock.at(1.1))[0] == PASS
    assert not g.shedding


def test_past_the_hard_bound_nothing_passes():
    g = gate()
    for data in (register(), register(auth=CREDENTIALS), OK, invite()):
        assert g.sort(data, "192.0.2.1", 1.01, 100.0) == (DROP, None)
    assert g.stats["dropped"] == 4


def test_a_refusal_asks_the_guard_first():
    guard = Guard(GuardOptions(rate=1, burst=2, exempt=("192.0.2.9",)))
    g = gate(guard=guard)
    assert g.sort(register(ua="friendly-scanner"), "192.0.2.1", 0.3, 100.0) == (DROP, None)
    guard.ban("192.0.2.2", 100.0, "test")
    assert g.sort(register(), "192.0.2.2", 0.3, 100.0) == (DROP, None)
    verdicts = [g.sort(register(n=i), "192.0.2.3", 0.3, 100.0)[0] for i in range(4)]
    assert verdicts == [REJECT, REJECT, DROP, DROP]                 # its burst, then rate-limited
    assert {g.sort(register(n=i), "192.0.2.9", 0.3, 100.0)[0] for i in range(10)} == {REJECT}   # exempt
    assert guard.stats["scanner_dropped"] == 1 and guard.stats["banned_dropped"] == 1


def test_no_503_without_the_headers_a_response_needs():
    g = gate()
    no_call_id = register().replace(b"Call-ID: reg-1@test\r\n", b"")
    assert g.sort(no_call_id, "192.0.2.1", 0.3, 100.0) == (DROP, None)


def test_the_guard_settings_make_the_same_guard_in_the_front():
    o = GuardOptions(rate=5, burst=7, flood_ban_after=9, auth_failures=3, window=30, ban_time=60,
                     scanners=("x-scan",), exempt=("10.0.0.1",))
    assert guard_from(guard_settings(o)).o == o
    assert guard_from(guard_settings(None)) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.floats(0, 2))
def test_any_bytes_get_a_verdict_and_any_503_parses(data, behind):
    g = gate()
    for sample in (data, register()[: len(data)] + data, b"REGISTER sip:a SIP/2.0\r\n" + data):
        verdict, reply = g.sort(sample, "192.0.2.1", behind, 100.0)
        assert verdict in (PASS, REJECT, DROP) and (reply is not None) == (verdict == REJECT)


def test_hostile_runs_get_a_verdict():
    # long runs of one character class, then a byte that breaks it: the work grows with the size, no more
    g = gate()
    for unit in (b"a", b" ", b":", b"\r\n", b";", b","):
        head = b"REGISTER sip:a SIP/2.0\r\nVia: " + unit * 20000 + b"\x00\r\n\r\n"
        verdict, _ = g.sort(head, "192.0.2.1", 0.3, 100.0)
        assert verdict in (PASS, REJECT, DROP)
