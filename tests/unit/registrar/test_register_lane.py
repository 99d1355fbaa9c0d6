"""The REGISTER lane answers exactly as the general path: two endpoints over the same registrar setup, one with
the lane and one without, get the same datagrams and must send the same bytes back (nonces and Date aside),
keep the same bindings and count the same; for generated and hostile variations of what phones send."""

from __future__ import annotations

import asyncio
import random
import re
import time

from hypothesis import HealthCheck, given, settings, strategies as st

from softswitch.endpoint import Endpoint
from softswitch.registrar.credentials import Credentials, ha1_pair
from softswitch.registrar.lane import MAX_SIZE, RegisterLane, read
from softswitch.registrar.location import MemoryLocationStore
from softswitch.registrar.registrar import Registrar, RegistrarOptions
from softswitch.sip.digest import DigestAuth, make_authorization
from softswitch.transport.base import Target

REALM = "cc.test"
PASSWORDS = {"70001": "Agent-Pass-1!", "70002": "Agent-Pass-2!"}


class Sink:
    proto = "udp"

    def __init__(self) -> None:
        self.out: list[tuple[bytes, tuple]] = []

    def send(self, data: bytes, target: Target) -> None:
        self.out.append((data, (target.host, target.port)))


class Side:
    """An endpoint and registrar wired as the node wires them (softswitch/node/compose.py)."""

    def __init__(self, loop, lane: bool) -> None:
        creds = Credentials(REALM, {u: ha1_pair(u, REALM, p) for u, p in PASSWORDS.items()})
        self.store = MemoryLocationStore()
        self.registrar = Registrar(self.store, DigestAuth(REALM, b"s" * 32, nonce_ttl=60), creds.ha1,
                                   RegistrarOptions(realm=REALM), rng=random.Random(7))
        self.ep = Endpoint(loop)
        self.sink = Sink()
        self.ep.udp.append(self.sink)
        self.ep.answered["REGISTER"] = self.registrar.serve
        self.ep.stateless["REGISTER"] = lambda req: self.registrar.challenge_if_needed(req, time.time())
        self.lane = RegisterLane(self.ep, self.registrar) if lane else None
        self.ep.register_lane = self.lane
        self.src = Target("udp", "127.0.0.9", 5999, self.sink)

    def send(self, data: bytes) -> list[tuple[bytes, tuple]]:
        """The answers sent, with where they went."""
        self.sink.out.clear()
        self.ep.on_datagram(data, self.src)
        return list(self.sink.out)

    def bindings(self) -> dict:
        return {aor: [(b.contact, b.key, b.params, b.q, b.call_id, b.cseq, b.instance, b.user_agent)
                      for b in bs] for aor, bs in self.store._aors.items()}


_NONCE = re.compile(rb'nonce="[^"]*"')
_DATE = re.compile(rb"\r\nDate: [^\r]*")


def normal(answers: list[tuple[bytes, tuple]]) -> list[tuple[bytes, tuple]]:
    return [(_DATE.sub(b"", _NONCE.sub(b'nonce="N"', a)), to) for a, to in answers]


def challenge_of(answers: list[tuple[bytes, tuple]]) -> str | None:
    for a, _ in answers:
        for line in a.decode("utf-8", "replace").split("\r\n"):
            if line.startswith("WWW-Authenticate: ") and "algorithm=MD5" in line:
                return line.split(": ", 1)[1]
    return None


BASE = [
    "REGISTER sip:cc.test SIP/2.0",
    "Via: SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bK-{n};rport",
    "From: <sip:70001@cc.test>;tag=ft{n}",
    "To: <sip:70001@cc.test>",
    "Call-ID: call-{n}@10.0.0.7",
    "CSeq: {cseq} REGISTER",
    "Contact: <sip:70001@10.0.0.7:5062;transport=udp>",
    "Max-Forwards: 70",
    "Expires: 600",
    "User-Agent: test phone",
    "{auth}",
    "Content-Length: 0",
]

# (index in BASE or -1 to append, new line or None to delete); "{auth}" stays a placeholder
MUTATIONS = [
    (0, "REGISTER sip:cc.test;transport=udp SIP/2.0"), (0, "REGISTER sips:cc.test SIP/2.0"),
    (0, "REGISTER sip:70001@cc.test SIP/2.0"), (0, "register sip:cc.test SIP/2.0"), (0, "REGISTER sip:cc.test SIP/2.1"),
    (0, "REGISTER sip:cc.test:0 SIP/2.0"), (0, "REGISTER sip:cc.test:99999 SIP/2.0"),
    (1, "v: SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bK-{n};rport"), (1, "VIA:SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bK-{n}"),
    (1, "Via: SIP/2.0/UDP 10.0.0.7:5062;rport;branch=z9hG4bK-{n}"),
    (1, "Via: SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bK-{n};rport=5"),
    (1, "Via: SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bK-{n};received=1.2.3.4"),
    (1, "Via: SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bK-{n};maddr=10.0.0.8"),
    (1, "Via: SIP/2.0/UDP 10.0.0.7;branch=z9hG4bK-{n};alias;keep"), (1, "Via: SIP/2.0/udp 10.0.0.7;branch=z9hG4bK-{n}"),
    (1, "Via: SIP/2.0/UDP 10.0.0.7:5062;BRANCH=z9hG4bK-{n}"), (1, "Via: SIP/2.0/UDP 10.0.0.7:5062;branch=old-{n}"),
    (1, "Via: SIP/2.0/UDP 10.0.0.7:5062"), (1, "Via: SIP/2.0/UDP [::1]:5062;branch=z9hG4bK-{n}"),
    (1, "Via: SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bK-{n}, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-x"),
    (1, "Via: SIP/2.0/UDP 10.0.0.7:70000;branch=z9hG4bK-{n}"), (1, "Via: SIP/2.0/UDP 10.0.0.7:5062 ;branch=z9hG4bK-{n}"),
    (1, "Via: SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bK-{n};branch=z9hG4bK-y"), (1, None),
    (-1, "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-second"),
    (2, 'From: "Alice Smith" <sip:70001@cc.test>;tag=ft{n}'), (2, "From: Alice Smith <sip:70001@cc.test>;tag=1"),
    (2, 'From: "A, \\"B\\"" <sip:70001@cc.test>;tag=1'), (2, "From: sip:70001@cc.test;tag=1"),
    (2, "f: <sip:70001@cc.test>"), (2, "From: <sip:70001@cc.test"), (2, None), (-1, "From: <sip:70002@cc.test>"),
    (3, "To: <sip:70001@cc.test>;tag=abc"), (3, "To: <sip:70001@cc.test>;x=y"), (3, 'To: "Jos\u00e9" <sip:70001@cc.test>'),
    (3, "t: <sip:70001@cc.test>"), (3, "To: <sip:70002@cc.test>"), (3, "To: <sip:79999@cc.test>"),
    (3, "To: <tel:+4930123>"), (3, "To: <sip:70%3001@cc.test>"), (3, "To: <sip:70001@CC.Test>"), (3, None),
    (3, "To: <sip:70001@cc.test:5060>"), (3, "To:  <sip:70001@cc.test>  "), (3, "To: sip:70001@cc.test"),
    (3, "To: sip:70001@cc.test;tag=x"), (3, "To: sip:70001@cc.test;transport=udp"), (3, "To: Alice sip:70001@cc.test"),
    (4, "Call-ID: with space"), (4, "i: short-{n}"), (4, "Call-ID: a@b@c"), (4, None),
    (5, "CSeq: {cseq} INVITE"), (5, "CSeq: 99999999999 REGISTER"), (5, "CSeq: {cseq}  REGISTER"),
    (5, "CSeq: 4294967296 REGISTER"), (5, "cseq: {cseq} REGISTER"),
    (6, "Contact: *"), (6, "Contact: <sip:70001@10.0.0.7:5062>;expires=0"), (6, "Contact: <sip:70001@10.0.0.7:5062>;expires=30"),
    (6, 'Contact: <sip:70001@10.0.0.7:5062>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000000000001>";reg-id=1'),
    (6, "Contact: <sip:70001@10.0.0.7:5062>;q=0.5, <sip:70001@10.0.0.8>"), (6, "m: sip:70001@10.0.0.7:5062"),
    (6, "Contact: <tel:+4930>"), (6, "Contact: <sip:70001@10.0.0.7:5062"), (6, None),
    (-1, "Contact: <sip:70001@10.0.0.9>"),
    (7, "Max-Forwards: 0"), (7, "Max-Forwards: 256"), (7, "Max-Forwards: x"), (7, None),
    (8, "Expires: 0"), (8, "Expires: 30"), (8, "Expires: abc"), (8, "Expires: 99999999999"), (8, None),
    (9, "User-Agent: \u00e9t\u00e9"), (9, None), (-1, "User-Agent: second"),
    (-1, "Require: foo"), (-1, "Require: path"), (-1, "Proxy-Require: foo"), (-1, "Route: <sip:cc.test;lr>"),
    (-1, "Path: <sip:proxy.test;lr>"), (-1, "Record-Route: <sip:proxy.test;lr>"), (-1, "Route: <sip:10.0.0.1:5060;lr>"), (-1, "X-Custom: 1"), (-1, "Supported: path, outbound"),
    (-1, "Allow: INVITE, ACK, BYE"), (-1, "Accept: application/sdp"), (-1, "Content-Type: text/plain"),
    (-1, " folded continuation"), (-1, "Bad Header: x"), (-1, "NoColon"), (-1, "Authorization: Digest x=1"),
    (11, "Content-Length: 5"), (11, "Content-Length: x"), (11, "l: 0"), (11, None),
]


def build(lines: list[str], n: int, cseq: int, auth: str, body: bytes = b"", eol: str = "\r\n") -> bytes:
    out = [line.format(n=n, cseq=cseq, auth=f"Authorization: {auth}" if auth else "") for line in lines]
    out = [line for line in out if line]
    return (eol.join(out) + eol + eol).encode() + body


def mutate(picks: list[int]) -> list[str]:
    lines = list(BASE)
    for i in picks:
        at, new = MUTATIONS[i]
        if at < 0:
            lines.insert(len(lines) - 1, new)
        elif new is None:
            lines[at] = ""
        else:
            lines[at] = new
    return lines


def exchange(a: Side, b: Side, lines: list[str], n: int, password: str = PASSWORDS["70001"],
             user: str = "70001", tail: bytes = b"") -> tuple[list[bytes], list[bytes]]:
    """Challenge then credentials, as a phone does, on both sides; returns both sides' last answers."""
    first = build(lines, n, 1, "") + tail
    got_a, got_b = a.send(first), b.send(first)
    assert normal(got_a) == normal(got_b), (first, got_a, got_b)
    ca, cb = challenge_of(got_a), challenge_of(got_b)
    if ca is None or cb is None:
        return got_a, got_b
    uri = lines[0].split(" ")[1] if lines[0].count(" ") == 2 else "sip:cc.test"
    second_a = build(lines, n, 2, make_authorization(ca, "REGISTER", uri, user, password)) + tail
    second_b = build(lines, n, 2, make_authorization(cb, "REGISTER", uri, user, password)) + tail
    got_a, got_b = a.send(second_a), b.send(second_b)
    assert normal(got_a) == normal(got_b), (second_a, got_a, got_b)
    # a retransmission of the second gets the kept answer (or the same fresh answer) on both sides
    again_a, again_b = a.send(second_a), b.send(second_b)
    assert normal(again_a) == normal(again_b)
    return got_a, got_b


def pair():
    loop = asyncio.new_event_loop()
    return loop, Side(loop, lane=True), Side(loop, lane=False)


def test_the_lane_takes_what_phones_send_and_answers_as_the_general_path():
    loop, a, b = pair()
    try:
        got, _ = exchange(a, b, BASE, 1)
        assert got and got[0][0].startswith(b"SIP/2.0 200 OK\r\n") and got[0][1] == ("127.0.0.9", 5999)
        assert a.lane.stats == {"challenged": 1, "passed": 2, "declined": 0}
        assert a.bindings() == b.bindings() and a.bindings()
        assert a.registrar.stats == b.registrar.stats and a.registrar.stats["registered"] == 1
        assert a.ep.status_counts == b.ep.status_counts == {401: 1, 200: 1}
        assert a.ep.counters == b.ep.counters
        # the Via of the answers says where the request came from, as stamp_via writes it
        assert b"Via: SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bK-1;rport=5999;received=127.0.0.9\r\n" in got[0][0]
    finally:
        loop.close()


# what baresip 1.0 and Linphone 5.1 send (taken from the real-phone tests): an outbound proxy's Route to the
# registrar itself; a To without angle brackets, Accept three times, no Content-Length
BARESIP = [
    "REGISTER sip:cc.test SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:16316;branch=z9hG4bK{n}eb395aace8;rport",
    "Contact: <sip:70001-0x56132e2dbb90@127.0.0.1:16316>;expires=300", "Max-Forwards: 70",
    "Route: <sip:127.0.0.1:16313;lr>", "To: <sip:70001@cc.test>", "From: <sip:70001@cc.test>;tag=58331ba1af43bfe1",
    "Call-ID: 8c3a400fb10bc{n}", "CSeq: {cseq} REGISTER", "User-Agent: baresip v1.0.0 (x86_64/linux)", "{auth}",
    "Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,REFER", "Content-Length: 0"]
LINPHONE = [
    "REGISTER sip:cc.test SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:16320;branch=z9hG4bK.4piNk{n};rport",
    "From: <sip:70002@cc.test>;tag=ugLUIibos", "To: sip:70002@cc.test", "CSeq: {cseq} REGISTER",
    "Call-ID: KegWWU7jZU{n}", "Max-Forwards: 70", "Supported: replaces, outbound, gruu", "Accept: application/sdp",
    "Accept: text/plain", "Accept: application/vnd.gsma.rcs-ft-http+xml",
    'Contact: <sip:70002@127.0.0.1:16320;transport=udp>;+sip.instance="<urn:uuid:dc837e5d-6d20-0017-a880-b6a32170549c>"',
    "Expires: 300", "User-Agent: Linphonec/5.1.65", "{auth}"]


def test_the_real_phones_registers_take_the_lane():
    loop, a, b = pair()
    try:
        got, _ = exchange(a, b, BARESIP, 7)
        assert got[0][0].startswith(b"SIP/2.0 200 OK\r\n")
        got, _ = exchange(a, b, LINPHONE, 8, password=PASSWORDS["70002"], user="70002")
        assert got[0][0].startswith(b"SIP/2.0 200 OK\r\n")
        assert a.lane.stats == {"challenged": 2, "passed": 4, "declined": 0}
        assert a.bindings() == b.bindings() and len(a.bindings()) == 2
    finally:
        loop.close()


def test_wrong_password_and_unknown_user_look_the_same_through_the_lane():
    loop, a, b = pair()
    try:
        wrong, _ = exchange(a, b, BASE, 2, password="nope")
        unknown_lines = [line.replace("70001", "79999") for line in BASE]
        unknown, _ = exchange(a, b, unknown_lines, 3, user="79999", password="nope")
        assert wrong[0][0].split(b"\r\n")[0] == unknown[0][0].split(b"\r\n")[0] == b"SIP/2.0 403 Forbidden"
        assert a.lane.stats["declined"] == 0
    finally:
        loop.close()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(picks=st.lists(st.integers(0, len(MUTATIONS) - 1), max_size=4), n=st.integers(10, 10**6),
       eol=st.sampled_from(["\r\n", "\r\n", "\r\n", "\n"]), body=st.sampled_from([b"", b"", b"hello"]))
def test_any_variation_gets_the_same_answer_with_or_without_the_lane(picks, n, eol, body):
    loop, a, b = pair()
    try:
        lines = mutate(picks)
        if eol == "\n" or body:
            first = build(lines, n, 1, "", body, eol)
            assert normal(a.send(first)) == normal(b.send(first))
        else:
            exchange(a, b, lines, n)
        assert a.bindings() == b.bindings()
        assert a.registrar.stats == b.registrar.stats
        assert a.ep.status_counts == b.ep.status_counts
    finally:
        loop.close()


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=300) | st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
       at=st.integers(0, 10**6), anywhere=st.booleans())
def test_bytes_spliced_into_a_register_get_the_same_answer(data, at, anywhere):
    """Any octets, anywhere, or inside a header value (where a lenient reader would let them through)."""
    loop, a, b = pair()
    try:
        raw = build(BASE, 5, 1, "")
        if anywhere:
            at %= len(raw) + 1
        else:
            values = [m.end() for m in re.finditer(rb": ", raw)]
            at = values[at % len(values)] + (at // len(values)) % 6
        spliced = raw[:at] + data + raw[at:]
        assert normal(a.send(spliced)) == normal(b.send(spliced))
    finally:
        loop.close()


def test_adversarial_runs_get_the_same_answer_and_oversize_goes_the_general_way():
    """Long runs of one character class, then a byte that breaks it, in every field the lane matches (its
    patterns have no nested quantifiers over one class, so a run costs one pass): the same answer as the
    general path. A datagram over MAX_SIZE is not read by the lane at all."""
    templates = {1: "Via: SIP/2.0/UDP 10.0.0.7;branch=z9hG4bK{run}", 2: "From: {run}<sip:70001@cc.test>",
                 3: "To: <sip:{run}@cc.test>", 4: "Call-ID: {run}", 6: "Contact: <sip:{run}@x>"}
    loop, a, b = pair()
    try:
        for at, template in templates.items():
            for char, breaker in (("a", "\x01"), (" ", "<"), ("a;", "="), ('"', "\\"), ("a@", "@"), ("7", ":")):
                lines = list(BASE)
                lines[at] = template.format(run=char * (MAX_SIZE // len(char) // 2) + breaker)
                raw = build(lines, 1, 1, "")
                assert normal(a.send(raw)) == normal(b.send(raw)), raw[:120]
        declined = a.lane.stats["declined"]
        big = build(BASE[:-1] + ["X-Pad: " + "p" * MAX_SIZE, BASE[-1]], 1, 1, "")
        assert len(big) > MAX_SIZE
        assert normal(a.send(big)) == normal(b.send(big))
        assert a.lane.stats["declined"] == declined + 1
        assert read(b"REGISTER " + b"a" * MAX_SIZE) is None
    finally:
        loop.close()
