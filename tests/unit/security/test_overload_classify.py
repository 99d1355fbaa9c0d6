"""The overload policy's one-pass classifier (`classify`, `refusal`) against the line-by-line reading it
replaces (`peek`, and the request key and 503 as they were built from it, kept here as the reference): same
kind, method, credentials, user agent and request key, and byte for byte the same 503, on generated SIP heads
of every spelling and on any bytes; and linear time on hostile shapes."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from softswitch.security.overload import (ADMIT, RESPONSE, OverloadOptions, OverloadPolicy, REJECT, classify,
                                         peek, refusal, retry_spread, with_credentials)


# --- the reference: the request key and the 503 as built from a Peek before the classifier ------------------
def ref_top_branch(p) -> bytes:
    for canon, value in p.headers:
        if canon == b"Via":
            top = value.split(b",", 1)[0].lower()
            i = top.find(b"branch=")
            if i < 0:
                return b""
            rest = top[i + 7:]
            for stop in (b";", b" ", b"\t"):
                rest = rest.split(stop, 1)[0]
            return rest
    return b""


def ref_request_key(p) -> bytes:
    branch = ref_top_branch(p)
    if not branch:
        return b""
    cseq = b"".join(v for c, v in p.headers if c == b"CSeq").replace(b" ", b"").replace(b"\t", b"")
    return branch + b" " + p.method + b" " + cseq


def ref_503(p, tag: str, retry_after: int, server: str = "") -> bytes | None:
    names = [c for c, _ in p.headers]
    if b"Via" not in names or any(names.count(c) != 1 for c in (b"From", b"To", b"Call-ID", b"CSeq")) or \
            p.method == b"ACK":
        return None
    out = [b"SIP/2.0 503 Service Unavailable"]
    call_id = b""
    for canon, value in p.headers:
        if canon == b"To" and b";tag=" not in value.lower().replace(b" ", b""):
            value += b";tag=" + tag.encode()
        elif canon == b"Call-ID":
            call_id = value
        out.append(canon + b": " + value)
    out.append(b"Retry-After: " + str(retry_spread(call_id, retry_after)).encode())
    if server:
        out.append(b"Server: " + server.encode())
    out.append(b"Content-Length: 0")
    return b"\r\n".join(out) + b"\r\n\r\n"


def agree(data: bytes) -> None:
    p, c = peek(data), classify(data)
    if with_credentials(data):      # the policy's shortcut for credentials: what classify calls continuing work
        assert c is None or (c is not RESPONSE and c[1] is True), data
    if p is None:
        assert c is None, data
        return
    if p.kind == "response":
        assert c is RESPONSE, data
        return
    method, continuing, key, picked, agent = c
    assert method == p.method and continuing == (p.kind == "continuing"), data
    assert agent.decode("latin-1") == p.user_agent, data
    assert key == ref_request_key(p), data
    assert refusal(method, picked, b"t0", 5, b"\r\nServer: ss") == ref_503(p, "t0", 5, "ss"), data


# --- generated heads --------------------------------------------------------------------------------------
NAMES = ["Via", "via", "VIA", "v", "V", "From", "from", "f", "To", "to", "TO", "t", "Call-ID", "call-id", "Call-Id",
         "i", "CSeq", "cseq", "CSEQ", "Authorization", "authorization", "Proxy-Authorization", "User-Agent",
         "user-agent", "USER-AGENT", "Contact", "Max-Forwards", "Expires", "Content-Length", "X-Via", "Vias",
         "Tom", "Fromage", "Accept", "", "Via ", " Via", "To\t", "CSeq "]
VALUES = st.lists(st.sampled_from(list("aZ09;=,.:@<>/ \t") + [";tag=", ";TAG=", "; tag = x", "branch=",
                                                              "BRANCH=z9hG4bK", ",SIP/2.0/UDP h;branch=b2",
                                                              "1 REGISTER", "\r", "\n", "\x00", "é"]),
                  max_size=12).map("".join)
LINE = st.one_of(
    st.tuples(st.sampled_from(NAMES), st.sampled_from([":", " :", ":\t", ": ", ":  "]), VALUES).map("".join),
    st.sampled_from([" ;tag=folded", "\t,SIP/2.0/UDP x;branch=y", "no colon", "", "  ", "To: <sip:a@b>\r\n ;tag=x",
                     " Via: folded", "\tx: y ;tag=z", " ;tag=a:b"]))
METHODS = st.sampled_from(["REGISTER", "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "NOTIFY", "register", "SIP/2.0",
                           "RE GISTER", "REG1STER", ""])
ENDS = st.sampled_from(["\r\n", "\r\n", "\r\n", "\n", "\r\r\n", "\r"])


@st.composite
def heads(draw) -> bytes:
    first = draw(st.sampled_from(["{} sip:cc.test SIP/2.0", "{} sip:cc.test SIP/3.0", "{} sip:a b SIP/2.0",
                                  "SIP/2.0 180 Ringing", "{}"])).format(draw(METHODS))
    lines = [first] + draw(st.lists(LINE, max_size=14))
    ends = [draw(ENDS) for _ in lines]
    out = "".join(line + end for line, end in zip(lines, ends))
    out += draw(st.sampled_from(["\r\n", "\r\n", "\n", ""]))
    out += draw(st.sampled_from(["", "Authorization: Digest x\r\n", "v: SIP/2.0/UDP h;branch=body\r\n"]))
    return out.encode("utf-8")


@st.composite
def requests(draw) -> bytes:
    """Heads the fast path reads: every line `name: value` + CRLF, the five headers a 503 needs (now and then
    one twice) in any order and spelling, values with spaces and tabs around them; now and then odd lines."""
    method = draw(st.sampled_from(["REGISTER", "INVITE", "ACK", "BYE", "OPTIONS"]))
    spell = {"Via": ["Via", "via", "v", "VIA"], "From": ["From", "f", "FROM"], "To": ["To", "t", "to"],
             "Call-ID": ["Call-ID", "i", "call-id"], "CSeq": ["CSeq", "cseq"]}
    colon, before, after = [":", " :", ":\t"], ["", " ", "  ", "\t"], ["", " ", "\t "]
    lines = [draw(st.sampled_from(spell[n])) + draw(st.sampled_from(colon)) + draw(st.sampled_from(before)) +
             draw(VALUES) + draw(st.sampled_from(after))
             for n in [*spell, *draw(st.lists(st.sampled_from(list(spell)), max_size=2 if draw(st.booleans()) else 0))]]
    agent = draw(st.sampled_from(["", "User-Agent: ", "user-agent :\t"]))
    if agent:
        lines.append(agent + draw(st.sampled_from(["SIPp ", "x" * 199 + " y", "Phone\t", "z" * 300])))
    lines += draw(st.lists(LINE, max_size=3 if draw(st.booleans()) else 0))
    lines = draw(st.permutations(lines))
    return (f"{method} sip:cc.test SIP/2.0\r\n" + "".join(x + "\r\n" for x in lines) + "\r\n").encode("utf-8")


@settings(max_examples=1500, deadline=None)
@given(heads())
def test_classify_agrees_with_peek_on_generated_heads(data):
    agree(data)


@settings(max_examples=1500, deadline=None)
@given(requests())
def test_classify_agrees_with_peek_on_requests_of_any_spelling(data):
    agree(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_classify_agrees_with_peek_on_any_bytes(data):
    for sample in (data, b"REGISTER sip:a SIP/2.0\r\n" + data, b"REGISTER sip:a SIP/2.0\r\nVia: x\r\n" + data +
                   b"\r\n\r\n"):
        agree(sample)


def sipp_register(n: int, auth: bool = False, compact: bool = False) -> bytes:
    via, frm, to, cid = ("v", "f", "t", "i") if compact else ("Via", "From", "To", "Call-ID")
    cred = 'Authorization: Digest username="1",realm="r",nonce="n",uri="sip:x",response="0"\r\n' if auth else ""
    return (f"REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n{via}: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-{n};rport\r\n"
            f"{frm}: <sip:1@bench.test>;tag={n}SIPpTag\r\n{to}: <sip:1@bench.test>\r\n{cid}: {n}-1@127.0.0.1\r\n"
            f"CSeq: {2 if auth else 1} REGISTER\r\nContact: <sip:1@127.0.0.1:6000>\r\n{cred}Max-Forwards: 70\r\n"
            f"Expires: 3600\r\nUser-Agent: SIPp\r\nContent-Length: 0\r\n\r\n").encode()


def test_the_usual_shapes_agree_and_are_sorted_as_the_policy_needs():
    for data in (sipp_register(1), sipp_register(2, auth=True), sipp_register(3, compact=True),
                 sipp_register(4).replace(b"Via: ", b"via :\t"), sipp_register(5).replace(b"To: <sip:1@bench.test>",
                                                                                          b"To: <sip:1@b>;tag=x")):
        agree(data)
    method, continuing, key, picked, agent = classify(sipp_register(7))
    assert (method, continuing, key, agent) == (b"REGISTER", False, b"z9hg4bk-7 REGISTER 1REGISTER", b"SIPp")
    assert classify(sipp_register(7, auth=True))[1] is True


def test_credentials_as_phones_spell_them_are_admitted_while_shedding_without_classify():
    authed = sipp_register(2, auth=True)
    proxy = authed.replace(b"Authorization:", b"Proxy-Authorization:")
    assert with_credentials(authed) and with_credentials(proxy)
    assert not with_credentials(sipp_register(2))
    for other in (authed.replace(b"Authorization:", b"authorization :"),          # other spellings: classify
                  sipp_register(2) + b'Authorization: Digest username="1"\r\n\r\n',   # in the body
                  b"SIP/2.0 401 Unauthorized\r\n" + authed.split(b"\r\n", 1)[1],      # a response
                  authed.replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1)):
        assert not with_credentials(other)
        agree(other)
    policy = OverloadPolicy(OverloadOptions(sustain=0.0))
    assert policy.shed(sipp_register(1), 0.5, 10.0)[0] == REJECT            # shedding
    for i, data in enumerate((authed, proxy)):
        assert policy.shed(data, 0.5, 10.1 + i) == (ADMIT, None)
        assert policy.shed(data, 0.6, 10.15 + i) == ("drop", None)          # its queued copy, by its bytes
    assert policy.shed(authed, 2.5, 20.0) == ("drop", None)                 # past drop_after, as classify's
    t0 = time.process_time()
    for filler in HOSTILE:
        for data in (b"REGISTER sip:x SIP/2.0\r\n" + filler + b"\r\n\r\n",
                     b"REGISTER sip:x SIP/2.0\r\nAuthorization: " + filler + b"\r\n\r\n"):
            with_credentials(data)
    assert time.process_time() - t0 < 0.5


def test_not_sip_enough_is_dropped_silently_by_the_policy():
    policy = OverloadPolicy(OverloadOptions(sustain=0.0))
    for junk in (b"", b"\x00" * 64, b"REGISTER\r\n\r\n", b"REGISTER sip:x SIP/2.0\r\nno colon\r\n\r\n",
                 b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
        assert policy.shed(junk, 0.5, 10.0) == ("drop", None)
    verdict, reply = policy.shed(sipp_register(9), 0.5, 10.0)
    assert verdict == REJECT and reply.startswith(b"SIP/2.0 503 ")


# --- hostile shapes ---------------------------------------------------------------------------------------
HOSTILE = [b"a" * 60000 + b":", b" " * 60000 + b"x", b"\t" * 60000, b":" * 60000, b"\r\n " * 20000,
           b"\n" * 60000, b"\r" * 60000, b"a:b\r\n" * 12000, b"Via: x\r\n" * 7000, b"To: ;tag=" * 6000,
           b"branch=" * 8000, b"Via: " + b"branch=" * 8000 + b"\r\n", b"X: " + b" " * 60000 + b"y\r\n",
           b"v:" + b"," * 60000 + b"\r\n", b"CSeq: " + b" \t" * 30000 + b"\r\n", b"\x00" * 60000]


def test_classify_and_the_503_stay_linear_on_hostile_shapes():
    t0 = time.process_time()
    for filler in HOSTILE:
        for data in (b"REGISTER sip:x SIP/2.0\r\n" + filler, b"REGISTER sip:x SIP/2.0\r\n" + filler + b"\r\n\r\n",
                     b"REGISTER sip:x SIP/2.0\r\nVia: a;branch=b\r\nFrom: f\r\nTo: t\r\nCall-ID: c\r\nCSeq: 1 R\r\n" +
                     filler + b"\r\n\r\n"):
            c = classify(data)
            if isinstance(c, tuple):
                refusal(c[0], c[3], b"t", 5)
    # CPU time, not wall-clock: microseconds per kilobyte make this a few hundredths of a second; a quadratic
    # scan over 60 kB takes seconds
    assert time.process_time() - t0 < 1.5


def test_many_header_layouts_cost_no_more_than_one():
    # thousands of distinct header lines, each datagram its own layout: still sorted, one by one
    policy = OverloadPolicy(OverloadOptions(sustain=0.0))
    verdicts = set()
    for i in range(3000):
        data = sipp_register(i).replace(b"Max-Forwards", f"X-Header-{i}".encode())
        verdicts.add(policy.shed(data, 0.5, 10.0)[0])
    assert verdicts == {REJECT}


def test_a_copy_whose_bytes_expired_is_still_found_by_its_request_key():
    p = OverloadPolicy(OverloadOptions(sustain=0.0, drop_after=3.0, give_up=5.0))
    first = sipp_register(1)
    resent = first.replace(b"User-Agent: SIPp", b"User-Agent: SIPp/2")      # same branch, method and CSeq
    assert p.shed(first, 0.5, 10.0)[0] == REJECT                             # taken in at 10
    assert p.shed(resent, 0.3, 14.0)[0] == REJECT       # sent after the 503 at 10: sorted again, taken in at 14
    # the first bytes again at 16, sent at 13.5: their own entry (10) is past give_up, the request's (14) is
    # not, and they were sent before it: a copy that only queued
    assert p.shed(first, 2.5, 16.0) == ("drop", None)
    assert p.stats["dropped_retransmission"] == 1 and p.stats["dropped"] == 0
