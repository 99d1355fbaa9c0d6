"""No answer tells an agent's softphone number from any other: the same requests for a known number (70001)
and for a number nobody has (79999) get the same status, reason and header names, over every method, and the
same amount of work (counted, not timed)."""

from __future__ import annotations

import cProfile
import pstats
import re

import pytest

from softswitch.sip.digest import make_authorization
from tests.support.cc import cc_node
from tests.support.sipclient import UdpClient

REALM = "cc.test"
KNOWN, UNKNOWN = "70001", "79999"
PHONE_UA = "Yealink SIP-T46U 66.86.0.15"
OFFER = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
         "a=fmtp:101 0-15\r\na=sendrecv\r\n")


class Probe:
    """Raw requests from one UDP socket; each gets a fresh Call-ID and branch."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.c = UdpClient(("127.0.0.1", port))
        self.n = 0

    def request(self, method: str, ruri: str, from_user: str, to_user: str, extra: str = "", body: str = "",
                ua: str = PHONE_UA, call_id: str | None = None, cseq: int = 1) -> tuple[bytes, str]:
        self.n += 1
        call_id = call_id or f"enum-{self.n}"
        host, lport = self.c.addr
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        raw = (f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{lport};branch=z9hG4bK-e{self.n};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:{from_user}@{REALM}>;tag=e{self.n}\r\n"
               f"To: <sip:{to_user}@{REALM}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
               f"Contact: <sip:{from_user}@{host}:{lport}>\r\nUser-Agent: {ua}\r\n{extra}{ctype}"
               f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
        return raw, call_id

    def final(self, raw: bytes, call_id: str, wait: float = 2.0):
        """The final response to `raw` (provisional ones skipped), or None when nothing came."""
        self.c.send(raw)
        for _ in range(10):
            m = self.c.recv(wait)
            if m is None:
                return None
            if m.call_id == call_id and m.status >= 200:
                return m
        return None


def fingerprint(resp) -> tuple:
    """What a scanner can compare: status, reason, header names with their counts, and the challenges with
    their nonces taken out."""
    if resp is None:
        return (None,)
    names = sorted(n.lower() for n, _ in resp.headers)
    challenges = [re.sub(r'nonce="[^"]*"', "", v) for n, v in resp.headers
                  if n.lower() in ("www-authenticate", "proxy-authenticate")]
    return resp.status, resp.reason, tuple(names), tuple(challenges)


def credentials(challenge, method: str, uri: str, user: str, password: str, header: str) -> str:
    value = make_authorization(challenge.get(header), method, uri, user, password)
    return f"{'Proxy-Authorization' if header.startswith('Proxy') else 'Authorization'}: {value}\r\n"


CASES = {
    # name: (method, request-uri user or None, from user, to user) with {n} the number under test
    "register": ("REGISTER", None, "{n}", "{n}"),
    "invite_from_number": ("INVITE", "5550100", "{n}", "5550100"),
    "invite_to_number": ("INVITE", "{n}", "5551234", "{n}"),
    "invite_from_and_to_number": ("INVITE", "{n}", "{n}", "{n}"),     # what svwar sends
    "options": ("OPTIONS", "{n}", "5551234", "{n}"),
    "subscribe": ("SUBSCRIBE", "{n}", "5551234", "{n}"),
    "message": ("MESSAGE", "{n}", "5551234", "{n}"),
}


def ask(p: Probe, case: str, number: str, ua: str = PHONE_UA, extra: str = ""):
    method, ruri_user, frm, to = (x.format(n=number) if x else x for x in CASES[case])
    ruri = f"sip:{REALM}" if ruri_user is None else f"sip:{ruri_user}@127.0.0.1:{p.port}"
    body = OFFER if method == "INVITE" else ""
    more = "Event: presence\r\n" if method == "SUBSCRIBE" else ""
    raw, cid = p.request(method, ruri, frm, to, extra + more, body, ua=ua)
    return p.final(raw, cid, wait=1.0 if ua == PHONE_UA else 0.5), (method, ruri, frm, to, body, more)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    # many failures from one address on purpose: the per-source ban must not end the comparison early
    with cc_node(tmp_path_factory.mktemp("enum"), security=", security: {auth_failures: 1000}") as running:
        yield running


@pytest.mark.parametrize("case", sorted(CASES))
def test_known_and_unknown_numbers_get_the_same_first_answer(node, case):
    nt, port, http = node
    p = Probe(port)
    known, _ = ask(p, case, KNOWN)
    unknown, _ = ask(p, case, UNKNOWN)
    assert known is not None
    assert fingerprint(known) == fingerprint(unknown), (known, unknown)
    if case in ("register",):
        assert known.status == 401
    elif case.startswith("invite"):
        assert known.status == 407               # only an agent goes further than a called route
    elif case == "options":
        assert known.status == 200


@pytest.mark.parametrize("case", ["register", "invite_from_number", "invite_to_number"])
def test_wrong_credentials_get_the_same_403_for_known_and_unknown(node, case):
    nt, port, http = node
    p = Probe(port)
    answers = []
    for number in (KNOWN, UNKNOWN):
        first, (method, ruri, frm, to, body, more) = ask(p, case, number)
        header = "WWW-Authenticate" if method == "REGISTER" else "Proxy-Authenticate"
        user = frm if method == "INVITE" and case == "invite_from_number" else to
        auth = credentials(first, method, ruri, user, "Wrong-Guess-1!", header)
        raw, cid = p.request(method, ruri, frm, to, auth, body, call_id=first.call_id, cseq=2)
        answers.append(p.final(raw, cid))
    assert answers[0].status == 403 and answers[0].reason == "Forbidden"
    assert fingerprint(answers[0]) == fingerprint(answers[1])


def test_customer_calls_to_a_route_are_queued_whatever_the_from(node):
    """A From that claims an agent's number changes nothing for a called route: no challenge, queued; and
    the answer carries the telephone-event events the caller offered."""
    nt, port, http = node
    p = Probe(port)
    answers = []
    for frm in (KNOWN, UNKNOWN):
        raw, cid = p.request("INVITE", f"sip:4001@127.0.0.1:{port}", frm, "4001", body=OFFER)
        ok = p.final(raw, cid)
        answers.append(ok)
        host, lport = p.c.addr
        p.c.send((f"BYE sip:softswitch@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{lport};"
                  f"branch=z9hG4bK-bye{cid};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{frm}@{REALM}>;tag=x\r\n"
                  f"To: <sip:4001@{REALM}>;tag={ok.to.tag}\r\nCall-ID: {cid}\r\nCSeq: 2 BYE\r\n"
                  f"Content-Length: 0\r\n\r\n").encode())
    assert [a.status for a in answers] == [200, 200]
    assert fingerprint(answers[0]) == fingerprint(answers[1])
    assert "a=fmtp:101 0-15\r\n" in answers[0].body.decode()


@pytest.mark.parametrize("case", ["register", "invite_from_and_to_number", "options"])
def test_a_scanner_user_agent_hears_nothing_for_any_number(node, case):
    nt, port, http = node
    p = Probe(port)
    for number in (KNOWN, UNKNOWN):
        assert ask(p, case, number, ua="friendly-scanner")[0] is None


def _calls(fn) -> int:
    prof = cProfile.Profile()
    prof.runcall(fn)
    return pstats.Stats(prof).total_calls


def test_known_and_unknown_numbers_cost_the_same_work():
    """Function calls made to answer a wrong password, and to challenge, for each: a count that does not
    depend on how busy the machine is (the timing itself is measured in benchmarks/enumeration_timing.py)."""
    import asyncio
    from tests.unit.registrar.test_registrar import Harness, register_bytes
    from softswitch.sip.parser import parse_message
    h = Harness()
    costs = {}
    for user in (KNOWN, UNKNOWN):
        challenge = h.send(register_bytes(user, ["<sip:a@1.2.3.4>"], call_id=f"w-{user}", cseq=1))
        value = make_authorization(challenge.get("WWW-Authenticate"), "REGISTER", f"sip:{REALM}", user, "Bad-1!")
        req = parse_message(register_bytes(user, ["<sip:a@1.2.3.4>"], call_id=f"w-{user}", cseq=2, auth=value))
        plain = parse_message(register_bytes(user, ["<sip:a@1.2.3.4>"], call_id=f"c-{user}", cseq=1))
        costs[user] = (_calls(lambda: asyncio.run(h.reg.register(req, ("udp", "127.0.0.1", 5999), h.now))),
                       _calls(lambda: h.reg.challenge_if_needed(plain, h.now)))
    (known_fail, known_challenge), (unknown_fail, unknown_challenge) = costs[KNOWN], costs[UNKNOWN]
    assert known_challenge == unknown_challenge
    assert abs(known_fail - unknown_fail) <= 0.02 * known_fail, costs


def test_register_whose_to_is_not_a_sip_address_of_record_is_a_bad_request(node):
    nt, port, http = node
    p = Probe(port)
    raw, cid = p.request("REGISTER", f"sip:{REALM}", KNOWN, KNOWN)
    raw = raw.replace(f"To: <sip:{KNOWN}@{REALM}>".encode(), f"To: <tel:{KNOWN}>".encode())
    assert p.final(raw, cid).status == 400


def test_an_agents_own_digest_list_is_offered_for_its_number_alone(tmp_path):
    """The documented trade-off of a per-agent list: that number's challenge differs (SHA-256 first), every
    other number, an agent's or nobody's, gets the tenant's MD5; the phone registers with SHA-256."""
    from tests.support.cc import PASSWORDS, _node_thread, _rtp_lo, config_text
    from tests.conftest import free_port
    old = f'softphone: "70001", softphone_password: "{PASSWORDS["70001"]}", queues: [support]'
    made = {}

    def make_text():
        sip_port, http_port = free_port(), free_port()
        made["text"] = text = config_text(sip_port, http_port, str(tmp_path / "cc.db"), _rtp_lo(sip_port))
        assert text.count(old) == 1
        return text.replace(old, old + ", digest: [SHA-256, MD5]"), sip_port
    with _node_thread(tmp_path, make_text) as (nt, sip_port):
        text = made["text"]
        p = Probe(sip_port)
        algs = {}
        for case in ("register", "invite_from_number"):
            for number in ("70001", "70002", UNKNOWN):
                resp, _ = ask(p, case, number)
                algs[case, number] = re.findall(r"algorithm=([\w-]+)", " ".join(
                    v for n, v in resp.headers if n.lower().endswith("authenticate")))
        for case in ("register", "invite_from_number"):
            assert algs[case, "70001"] == ["SHA-256", "MD5"]
            assert algs[case, "70002"] == algs[case, UNKNOWN] == ["MD5"]
        first, (method, ruri, frm, to, body, more) = ask(p, "register", "70001")
        sha = next(v for v in first.get_all("WWW-Authenticate") if "SHA-256" in v)
        value = make_authorization(sha, "REGISTER", ruri, "70001", PASSWORDS["70001"])
        raw, cid = p.request("REGISTER", ruri, "70001", "70001", f"Authorization: {value}\r\n",
                             call_id=first.call_id, cseq=2)
        assert p.final(raw, cid).status == 200
        # a reload that drops the agent's list: its number is challenged like any other again
        (tmp_path / "cc.yaml").write_text(text)
        assert nt.call(lambda: nt.node.reload(str(tmp_path / "cc.yaml")))["ok"]
        resp, _ = ask(p, "register", "70001")
        assert re.findall(r"algorithm=([\w-]+)", resp.get("WWW-Authenticate")) == ["MD5"]
