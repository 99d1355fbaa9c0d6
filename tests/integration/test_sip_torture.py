"""RFC 4475 torture messages against a running node over UDP and over TCP split into 1, 7 and whole writes.

Each file gets the verdict shared/sip-torture/README.md gives; afterwards no transaction is stuck waiting
for a transaction user and the node still answers.
"""

from __future__ import annotations

import glob
import os
import re

import pytest

from softswitch.sip.errors import SipError
from softswitch.sip.parser import parse_message
from tests.support.nodes import registrar_node
from tests.support.sipclient import TcpClient, UdpClient, options_request

DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "sip-torture")   # RFC 4475 messages, copied from the shared corpus
FILES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(DIR, "*.dat")))

ACCEPTED = "accepted"   # parsed and handled: any answer but 400/505/5xx
EXPECT = {
    "wsinv": ACCEPTED, "intmeth": 501, "esc01": ACCEPTED, "escnull": 401, "lwsdisp": 200, "longreq": ACCEPTED,
    "dblreq": 401, "semiuri": 200, "transports": 200, "mpart01": ACCEPTED, "noreason": None,
    "badinv01": 400, "clerr": 400, "ncl": 400, "scalar02": 400, "quotbal": 400, "ltgtruri": 400,
    "badvers": 505, "mismatch01": 400, "insuf": 400, "unkscm": 416, "bext01": 420, "invut": 415,
    "regaut01": 401, "multi01": 400,
}
MODES = ["udp", "tcp1", "tcp7", "tcp"]


def test_every_file_has_a_verdict():
    assert set(FILES) == set(EXPECT)


@pytest.fixture(scope="module", params=MODES)
def node(request):
    """A fresh node per mode: the files reuse branches, and a transaction outlives its answer by up to 32 s."""
    with registrar_node(partial_timeout=1.0) as nt:
        nt.mode = request.param
        yield nt


def load(name: str) -> bytes:
    with open(os.path.join(DIR, name + ".dat"), "rb") as f:
        return f.read()


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def check(name: str, raw_answers: list[bytes], mode: str) -> None:
    expected = EXPECT[name]
    if name == "clerr" and mode != "udp":
        assert raw_answers == []  # a stream waits for the rest of the body
        return
    if expected is None:
        assert raw_answers == []
        return
    assert raw_answers, f"{name}: no answer"
    first = raw_answers[0]
    status = status_of(first)
    if expected == ACCEPTED:
        assert status < 500 and status not in (400, 416, 420), (name, first[:200])
    else:
        assert status == expected, (name, first[:300])
    if status >= 400 and status != 401:
        text = first.decode("utf-8", "replace")
        if name == "intmeth":
            assert "\r\nAllow: " in text
        if name == "bext01":
            m = parse_message(first)
            assert set(m.values("Unsupported")) == {"nothingSupportsThis", "nothingSupportsThisEither"}
        if name == "invut":
            assert parse_message(first).get("Accept") == "application/sdp"
    if status == 401:
        m = parse_message(first)
        assert any(v.startswith("Digest ") for v in m.get_all("WWW-Authenticate"))
    if name == "dblreq":
        if mode == "udp":
            assert len(raw_answers) == 1  # the trailing INVITE octets are ignored (RFC 3261 s. 18.3)
        else:
            assert len(raw_answers) >= 1


@pytest.mark.parametrize("name", FILES)
def test_torture(node, name):
    mode = node.mode
    data = load(name)
    if mode == "udp":
        c = UdpClient(("127.0.0.1", node.port))
        c.send(data)
        answers = []
        while (raw := c.recv_raw(0.4 if EXPECT[name] is None else 1.0)) is not None:
            if status_of(raw) < 200:
                continue  # 100 Trying
            answers.append(raw)
            if name != "dblreq":
                break
        if name == "dblreq":
            while (raw := c.recv_raw(0.3)) is not None:
                answers.append(raw)
        check(name, answers, mode)
        c.send(options_request(node.port, call_id=f"alive-{name}", branch=f"z9hG4bK-alive-{name}"))
        alive = c.recv()
        while alive is not None and alive.call_id != f"alive-{name}":
            alive = c.recv()  # retransmitted final answers of an un-ACKed INVITE
        assert alive is not None and alive.status == 200
        c.close()
        return
    chunk = {"tcp1": 1, "tcp7": 7, "tcp": None}[mode]
    t = TcpClient(("127.0.0.1", node.port))
    t.send(data, chunk=chunk)
    answers = []
    raw_stream = b""
    t.sock.settimeout(0.6 if EXPECT[name] is None or name == "clerr" else 1.5)
    try:
        while True:
            piece = t.sock.recv(65535)
            if not piece:
                break
            raw_stream += piece
            if name not in ("dblreq", "ncl") and re.search(rb"(^|\n)SIP/2.0 [2-6]\d\d .*?\r\n\r\n", raw_stream, re.S):
                break
    except (TimeoutError, OSError):
        pass
    while raw_stream:
        end = raw_stream.find(b"\r\n\r\n")
        if end < 0:
            break
        head = raw_stream[:end + 4]
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if status_of(raw_stream) >= 200:
            answers.append(raw_stream[:end + 4 + length])
        raw_stream = raw_stream[end + 4 + length:]
    check(name, answers, mode)
    if name in ("clerr", "ncl"):
        assert t.closed_by_peer(timeout=3.0)  # framing lost (ncl) or body never came (clerr)
    t.close()


def test_no_transaction_waits_for_a_user(node):
    def stuck():
        layer = node.node.endpoint.layer
        return [tx for tx in layer.server.values() if tx.state in ("trying", "proceeding")] + \
               [tx for tx in layer.client.values()]
    assert node.call(stuck) == []


def test_escnull_registers_two_distinct_contacts():
    """%00 in user parts: after authenticating, both contacts are bound; the AOR is not cut at the NUL."""
    from tests.support.nodes import authorize
    with registrar_node() as node:
        _escnull(node, authorize)


def _escnull(node, authorize):
    c = UdpClient(("127.0.0.1", node.port))
    data = load("escnull")
    c.send(data)
    challenge = c.recv()
    assert challenge.status == 401
    c.send(authorize(data, challenge, "null-\x00-null", "Nul-Pass-0!", cseq_bump=1))
    ok = c.recv()
    assert ok.status == 200, ok.serialize()[:300]
    contacts = ok.contacts
    assert sorted(str(x.uri) for x in contacts) == ["sip:%00%00@host5.example.com", "sip:%00@host5.example.com"]


# RFC 4475 cases outside the shared corpus: whitespace where the grammar has none (s. 3.1.2.8 lwsruri,
# 3.1.2.9 lwsstart, 3.1.2.10 trws, 3.1.2.14 badaspec, and LWS inside the <> of a name-addr). Each gets a 400.
_WS_BASE = ("Via: SIP/2.0/{t} 192.0.2.1:5070;branch=z9hG4bK-ws{n}\r\nMax-Forwards: 70\r\n"
            "From: <sip:caller@example.net>;tag=ws{n}\r\nTo: {to}\r\nCall-ID: ws-{n}@192.0.2.1\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
WHITESPACE_CASES = {
    "lwsruri": ("OPTIONS sip:user@example.com; lr SIP/2.0", "<sip:user@example.com>"),
    "lwsstart": ("OPTIONS  sip:user@example.com  SIP/2.0", "<sip:user@example.com>"),
    "trws": ("OPTIONS sip:user@example.com SIP/2.0  ", "<sip:user@example.com>"),
    "htab": ("OPTIONS sip:user@example.com\tSIP/2.0", "<sip:user@example.com>"),
    "badaspec": ("OPTIONS sip:user@example.com SIP/2.0", '"Mr. J. User " <sip:j.user @ example.com>'),
    "lws-after-laquot": ("OPTIONS sip:user@example.com SIP/2.0", "< sip:user@example.com>"),
    "lws-before-raquot": ("OPTIONS sip:user@example.com SIP/2.0", '"J" <sip:user@example.com >'),
}


@pytest.mark.parametrize("case", sorted(WHITESPACE_CASES))
def test_whitespace_where_the_grammar_has_none_gets_400(node, case):
    start, to = WHITESPACE_CASES[case]
    n = f"{case}-{node.mode}"
    transport = "UDP" if node.mode == "udp" else "TCP"
    data = (start + "\r\n" + _WS_BASE.format(t=transport, n=n, to=to)).encode()
    # Read raw: the answer copies the bad To, so our own parser would refuse it too.
    if node.mode == "udp":
        c = UdpClient(("127.0.0.1", node.port))
        c.send(data)
        answer = c.recv_raw(2.0) or b""
    else:
        c = TcpClient(("127.0.0.1", node.port))
        c.send(data, chunk={"tcp1": 1, "tcp7": 7, "tcp": None}[node.mode])
        answer = b""
        c.sock.settimeout(3.0)
        while b"\r\n\r\n" not in answer:
            try:
                piece = c.sock.recv(65535)
            except (TimeoutError, OSError):
                break
            if not piece:
                break
            answer += piece
    c.close()
    assert answer.startswith(b"SIP/2.0 400 "), (case, answer[:80])
    assert f"\r\nCall-ID: ws-{n}@192.0.2.1\r\n".encode() in answer
