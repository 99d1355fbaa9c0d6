"""Parser and serializer: RFC 3261 grammar cases, round trips and the 'garbage raises SipError only' rule."""

from __future__ import annotations

import glob
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softswitch.sip import uri as uri_mod
from softswitch.sip.errors import SipError
from softswitch.sip.headers import parse_name_addr, parse_via, split_commas
from softswitch.sip.message import Request, Response, make_response
from softswitch.sip.parser import parse_message
from softswitch.sip.uri import SipURI, parse_uri, unescape

TORTURE = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "data", "sip-torture", "*.dat")))
assert TORTURE, "the RFC 4475 corpus is missing from tests/data/sip-torture"

REGISTER = (b"REGISTER sip:cc.example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK776asdhds;rport\r\n"
            b"Max-Forwards: 70\r\nTo: \"Alice\" <sip:70001@cc.example.com>\r\n"
            b"From: \"Alice\" <sip:70001@cc.example.com>;tag=1928301774\r\n"
            b"Call-ID: a84b4c76e66710@pc33.example.com\r\nCSeq: 314159 REGISTER\r\n"
            b"Contact: <sip:70001@10.0.0.5:5062;transport=udp>;expires=3600;+sip.instance=\"<urn:uuid:1>\"\r\n"
            b"User-Agent: test\r\nContent-Length: 0\r\n\r\n")


def test_register_fields():
    m = parse_message(REGISTER)
    assert isinstance(m, Request) and m.method == "REGISTER"
    assert m.cseq == (314159, "REGISTER")
    assert m.to.display == "Alice" and str(m.to.uri) == "sip:70001@cc.example.com"
    assert m.from_.tag == "1928301774"
    assert m.top_via.host == "10.0.0.5" and m.top_via.port == 5062 and m.top_via.param("rport") == ""
    (c,) = m.contacts
    assert c.param("expires") == "3600" and c.uri.param("transport") == "udp"
    assert c.param("+sip.instance") == '"<urn:uuid:1>"'


def test_compact_forms_and_folding():
    raw = (b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:x@y>;tag=1\r\n"
           b"t: <sip:a@b>\r\ni: abc\r\nCSeq: 1\r\n OPTIONS\r\nk: path,\r\n\toutbound\r\nl: 0\r\n\r\n")
    m = parse_message(raw)
    assert m.call_id == "abc" and m.cseq == (1, "OPTIONS")
    assert m.values("Supported") == ["path", "outbound"]
    assert m.get("Via") and m.get("v") == m.get("Via")


def test_body_is_bytes_framed_by_content_length():
    body = b"v=0\r\n\x00\x01binary\x00"
    raw = (b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\n"
           b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 2 MESSAGE\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body + b"TRAILING")
    m = parse_message(raw)
    assert m.body == body
    with pytest.raises(SipError) as e:
        parse_message(raw.replace(b"Content-Length: %d" % len(body), b"Content-Length: 99"))
    assert e.value.status == 400


@pytest.mark.parametrize("bad,status", [
    (b"OPTIONS sip:a@b SIP/3.0\r\n", 505),
    # a version number longer than int() takes (4,300 digits): answered, not a ValueError out of the parser
    (b"OPTIONS sip:a@b SIP/2." + b"0" * 5000 + b"1\r\n", 505),
    (b"OPTIONS sip:a@b SIP/" + b"9" * 5000 + b".0\r\n", 505),
    (b"OPTIONS <sip:a@b> SIP/2.0\r\n", 400),
    (b"OPTIONS  sip:a@b SIP/2.0\r\n", 400),
    (b"OPT IONS sip:a@b SIP/2.0\r\n", 400),
])
def test_bad_request_lines(bad, status):
    raw = bad + b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n"
    with pytest.raises(SipError) as e:
        parse_message(raw)
    assert e.value.status == status


def test_uri_grammar():
    u = parse_uri("sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr?subject=hi")
    assert isinstance(u, SipURI) and u.scheme == "sips" and u.user == "alice" and u.password == "secret"
    assert u.host == "[2001:db8::10]" and u.port == 5061 and u.param("lr") == "" and u.headers == "subject=hi"
    assert str(u) == "sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr?subject=hi"
    # RFC 5118: equivalent IPv6 spellings compare equal
    assert parse_uri("sip:[2001:db8:0:0:0:0:0:10]").host_key == u.host_key
    # semicolons in the user part (semiuri)
    v = parse_uri("sip:user;par=u%40example.net@example.com")
    assert v.user == "user;par=u%40example.net" and v.host == "example.com" and v.params == []
    # escaping: no recursive unescape, NULs survive
    assert unescape("value%2541") == "value%41" and unescape("null-%00-null") == "null-\x00-null"
    assert parse_uri("sip:%00@h").aor() != parse_uri("sip:%00%00@h").aor()
    for bad in ("sip:", "sip:user@", "sip:a@b:99999", "sip:a b@c", "sip:a@[::1", "<sip:a@b>"):
        with pytest.raises(SipError):
            parse_uri(bad)


def test_name_addr_and_via_grammar():
    a = parse_name_addr('"J Rosenberg \\\\\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8')
    assert a.display == 'J Rosenberg \\"' and a.tag == "98asjd8"
    b = parse_name_addr("sip:foo@bar;tag=x")  # addr-spec: the parameter belongs to the header
    assert b.tag == "x" and str(b.uri) == "sip:foo@bar"
    c = parse_name_addr("caller<sip:caller@example.com>;tag=323")
    assert c.display == "caller"
    v = parse_via("SIP  /   2.0  / UDP    192.0.2.2 : 5070 ;branch=z9hG4bK1;received=10.0.0.1;rport")
    assert v.transport == "UDP" and v.port == 5070 and v.param("rport") == "" and v.branch == "z9hG4bK1"
    assert parse_via("SIP/2.0/TCP [2001:db8::9]:5060;branch=z9hG4bKx").host == "[2001:db8::9]"
    assert split_commas('"a,b" <sip:x>, <sip:y;p=1,2>, c') == ['"a,b" <sip:x>', "<sip:y;p=1,2>", "c"]
    for bad in ('"unterminated <sip:a@b>', "<sip:a@b>;;", "<sip:a@b", "sip:a@b c"):
        with pytest.raises(SipError):
            parse_name_addr(bad)


def test_make_response_copies_and_tags():
    req = parse_message(REGISTER)
    resp = make_response(req, 200, to_tag="abc", headers=[("Expires", "60")])
    back = parse_message(resp.serialize())
    assert isinstance(back, Response) and back.status == 200 and back.reason == "OK"
    assert back.to.tag == "abc" and back.call_id == req.call_id and back.cseq == req.cseq
    assert back.get("Expires") == "60" and back.get_all("Via") == req.get_all("Via")


@pytest.mark.parametrize("path", TORTURE, ids=[os.path.basename(p) for p in TORTURE])
def test_torture_reserializes_stably(path):
    data = open(path, "rb").read()
    try:
        m = parse_message(data)
    except SipError:
        return
    again = parse_message(m.serialize())
    assert again.serialize() == m.serialize()
    assert again.body == m.body


# --- hypothesis ---------------------------------------------------------------------------------------------
token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-.!%*_+`'~", min_size=1, max_size=12)
host = st.one_of(
    st.from_regex(r"[a-z]([a-z0-9\-]{0,8}[a-z0-9])?(\.[a-z][a-z0-9]{0,6}){0,2}", fullmatch=True),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    st.sampled_from(["[::1]", "[2001:db8::10]"]),
)
user = st.text(alphabet="abcxyz0123456789-_.!~*'()&=+$,;?/", min_size=1, max_size=12)
port = st.one_of(st.none(), st.integers(1, 65535))
uparams = st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9\-]{0,6}", fullmatch=True),
                             st.one_of(st.none(), st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True))), max_size=3)


@st.composite
def sip_uris(draw):
    u = SipURI("sip", draw(st.one_of(st.none(), user)), None, draw(host), draw(port), draw(uparams))
    return u


@st.composite
def requests(draw):
    method = draw(st.sampled_from(["INVITE", "REGISTER", "OPTIONS", "BYE", "MESSAGE"]) | token)
    uri = draw(sip_uris())
    display = draw(st.one_of(st.none(), st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2ff,
                                                                          exclude_characters='"\\'), max_size=10)))
    hdrs = [
        ["Via", f"SIP/2.0/{draw(st.sampled_from(['UDP', 'TCP', 'TLS', 'WS']))} {draw(host)};branch=z9hG4bK{draw(token)}"],
        ["From", f'"{display}" <{draw(sip_uris())}>;tag={draw(token)}' if display else f"<{draw(sip_uris())}>;tag={draw(token)}"],
        ["To", f"<{uri}>"],
        ["Call-ID", draw(token) + "@" + draw(token)],
        ["CSeq", f"{draw(st.integers(0, 2**32 - 1))} {method}"],
        ["Max-Forwards", str(draw(st.integers(0, 255)))],
    ]
    for name, value in draw(st.lists(st.tuples(st.from_regex(r"X-[A-Za-z]{1,8}", fullmatch=True),
                                               st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126),
                                                       min_size=1, max_size=20)), max_size=4)):
        hdrs.append([name, value])
    body = draw(st.binary(max_size=64))
    return Request(method, uri, hdrs, body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_roundtrip_generated_requests(req):
    wire = req.serialize()
    parsed = parse_message(wire)
    assert parsed.method == req.method and str(parsed.uri) == str(req.uri)
    assert parsed.body == req.body
    assert parsed.cseq == req.cseq and parsed.call_id == req.call_id
    assert parsed.serialize() == wire


@settings(max_examples=500)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_parse_or_peer_error(data):
    try:
        parse_message(data)
    except SipError as err:
        assert 400 <= err.status < 600


@settings(max_examples=400)
@given(st.sampled_from(TORTURE), st.data())
def test_mutated_torture_parse_or_peer_error(path, data):
    raw = bytearray(open(path, "rb").read())
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.integers(0, 2))
        i = data.draw(st.integers(0, len(raw) - 1))
        if op == 0:
            raw[i] = data.draw(st.integers(0, 255))
        elif op == 1:
            del raw[i]
        else:
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=4))
    try:
        m = parse_message(bytes(raw))
        m.serialize()
        if m.has("Contact"):
            try:
                m.contacts
            except SipError:
                pass
    except SipError as err:
        assert 400 <= err.status < 600


def test_uri_cache_sized_for_the_tenant_keeps_a_round_of_registrations():
    """Phones cycling over a tenant bigger than the default cache emptied it on every round; sized for the
    tenant, a second round finds every URI, and each hit is still a new object (URIs are mutable)."""
    saved_max, saved = uri_mod._CACHE_MAX, dict(uri_mod._CACHE)
    try:
        uri_mod._CACHE.clear()
        uri_mod.size_cache(4 * 10000)
        texts = [t for i in range(10000) for t in (f"sip:{100000 + i}@bench.test",
                                                  f"sip:{100000 + i}@127.0.0.1:5060;transport=UDP")]
        for t in texts:
            uri_mod.parse_uri(t)
        assert len(uri_mod._CACHE) == len(texts)
        a, b = uri_mod.parse_uri(texts[1]), uri_mod.parse_uri(texts[1])
        assert a is not b and a.params == [("transport", "UDP")] and a.params is not b.params
        uri_mod.size_cache(10)                   # never below the default
        assert uri_mod._CACHE_MAX == 16384
    finally:
        uri_mod._CACHE_MAX = saved_max
        uri_mod._CACHE.clear()
        uri_mod._CACHE.update(saved)
