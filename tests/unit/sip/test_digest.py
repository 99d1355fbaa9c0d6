"""Digest authentication (RFC 7616 / RFC 8760): published vectors, nonces, stale, replay, no enumeration."""

from __future__ import annotations

import re

from hypothesis import given, settings, strategies as st

from softswitch.registrar.credentials import ha1_pair
from softswitch.sip import digest
from softswitch.sip.digest import (AuthParseError, DigestAuth, compute_response, make_authorization,
                                    parse_authorization)


def test_rfc2617_md5_vector():
    ha1 = ha1_pair("Mufasa", "testrealm@host.com", "Circle Of Life")["MD5"]
    assert ha1 == "939e7578ed9e3c518a452acee763bce9"
    resp = compute_response("MD5", ha1, "GET", "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                            "00000001", "0a4f113b", "auth")
    assert resp == "6629fae49393a05397450978507c4ef1"


def test_rfc7616_vectors_md5_and_sha256():
    pair = ha1_pair("Mufasa", "http-auth@example.org", "Circle of Life")
    args = ("GET", "/dir/index.html", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "00000001",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "auth")
    assert compute_response("MD5", pair["MD5"], *args) == "8ca523f5e9506fed4657c9700eebdbec"
    assert compute_response("SHA-256", pair["SHA-256"], *args) == \
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"


REALM = "cc.test"
USERS = {"70001": ha1_pair("70001", REALM, "Right-Pass1!")}


def lookup(user, alg):
    entry = USERS.get(user)
    return entry and entry[alg]


def auth() -> DigestAuth:
    return DigestAuth(REALM, b"k" * 32, nonce_ttl=60, algorithms=("MD5", "SHA-256"))


def answer(a: DigestAuth, now: float, alg: str = "MD5", user="70001", pw="Right-Pass1!", nc=1, uri="sip:cc.test"):
    ch = next(c for c in a.challenge(now) if f"algorithm={alg}" in c)
    return make_authorization(ch, "REGISTER", uri, user, pw, nc=nc)


def test_default_challenge_is_md5_only_and_a_list_can_be_given_per_challenge():
    plain = DigestAuth(REALM, b"k" * 32)
    assert [re.search(r"algorithm=([\w-]+)", v).group(1) for v in plain.challenge(1.0)] == ["MD5"]
    values = plain.challenge(1.0, algorithms=("SHA-256", "MD5"))
    assert [re.search(r"algorithm=([\w-]+)", v).group(1) for v in values] == ["SHA-256", "MD5"]


def test_challenge_offers_both_algorithms_with_qop_and_one_nonce():
    values = auth().challenge(100.0)
    assert [re.search(r"algorithm=([\w-]+)", v).group(1) for v in values] == ["MD5", "SHA-256"]
    params = [parse_authorization(v)[1] for v in values]
    assert all(p["qop"] == "auth" and p["realm"] == REALM for p in params)
    assert params[0]["nonce"] == params[1]["nonce"]
    assert "stale" not in values[0]
    assert all("stale=true" in v for v in auth().challenge(1.0, stale=True))


def test_both_algorithms_verify():
    a = auth()
    for alg in ("MD5", "SHA-256"):
        r = a.verify("REGISTER", answer(a, 10.0, alg), lookup, 11.0)
        assert (r.kind, r.username, r.algorithm) == ("ok", "70001", alg)


def test_wrong_password_and_unknown_user_are_failures():
    a = auth()
    assert a.verify("REGISTER", answer(a, 1.0, pw="Wrong-Pass1!"), lookup, 2.0).kind == "fail"
    assert a.verify("REGISTER", answer(a, 1.0, user="79999"), lookup, 2.0).kind == "unknown_user"


def test_nonce_expiry_is_stale_and_forged_nonce_is_not_accepted():
    a = auth()
    assert a.verify("REGISTER", answer(a, 0.0), lookup, 61.0).kind == "stale"
    other = DigestAuth(REALM, b"x" * 32)
    assert a.verify("REGISTER", answer(other, 0.0), lookup, 1.0).kind in ("stale", "fail")


def test_nonce_count_replay_is_refused_and_increasing_counts_pass():
    a = auth()
    ch = a.challenge(0.0)[0]
    first = make_authorization(ch, "REGISTER", "sip:cc.test", "70001", "Right-Pass1!", nc=1)
    assert a.verify("REGISTER", first, lookup, 1.0).kind == "ok"
    assert a.verify("REGISTER", first, lookup, 2.0).kind == "replay"
    second = make_authorization(ch, "REGISTER", "sip:cc.test", "70001", "Right-Pass1!", nc=2)
    assert a.verify("REGISTER", second, lookup, 3.0).kind == "ok"
    assert a.verify("REGISTER", first, lookup, 4.0).kind == "replay"


def test_other_realm_and_malformed():
    a = auth()
    other = DigestAuth("elsewhere", b"k" * 32)
    assert a.verify("REGISTER", answer(other, 0.0), lookup, 1.0).kind == "realm"
    assert a.verify("REGISTER", 'Digest username="70001"', lookup, 1.0).kind == "malformed"
    assert a.verify("REGISTER", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", lookup, 1.0).kind == "malformed"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_authorization_text_gets_a_verdict(value):
    assert auth().verify("REGISTER", value, lookup, 1.0).kind in (
        "ok", "stale", "fail", "unknown_user", "replay", "malformed", "realm")


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=130), st.floats(min_value=0, max_value=4e9))
def test_nonce_mac_is_hmac_sha256(secret, now):
    import base64
    import hashlib
    import hmac

    a = DigestAuth("r", secret)
    stamp, mac = base64.b64decode(a.make_nonce(now) + "==").decode().split(":")
    assert mac == hmac.new(secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]
    assert a.nonce_time(a.make_nonce(now)) == float(f"{now:.6f}")


def test_non_ascii_nonce_or_response_gets_a_verdict():
    import base64

    a = auth()
    forged = base64.b64encode("1.0.1:é".encode()).decode()
    value = f'Digest username="70001", realm="{REALM}", nonce="{forged}", uri="sip:{REALM}", response="abc"'
    assert a.verify("REGISTER", value, lookup, 1.0).kind in ("fail", "stale")
    value = f'Digest username="70001", realm="{REALM}", nonce="abc", uri="sip:{REALM}", response="é"'
    assert a.verify("REGISTER", value, lookup, 1.0).kind == "fail"


# Items as phones write them, and the near misses the plain reading must hand to the grammar.
_ITEM_PARTS = st.sampled_from(['username', 'Realm', 'nc', 'qop', 'x-y_z', 'a b', 'n"', '', '=', ' ', '  ',
                               '"', '"v"', '"a,b"', '"a\\"b"', '"', 'v', '00000001', 'auth', 'é', '\t', ',',
                               '\\', '"sip:a@b;x=1"', ';', 'c=d', '\x1c', '\u00a0'])


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.lists(_ITEM_PARTS, min_size=1, max_size=5).map("".join), min_size=1, max_size=6))
def test_plain_reading_of_credentials_agrees_with_the_grammar(items):
    rest = ",".join(items).strip()
    plain = digest._plain_params(rest)
    try:
        grammar = digest._regex_params(rest)
    except AuthParseError:
        grammar = None
    if plain is not None:
        assert plain == grammar, rest
        assert list(plain) == list(grammar)


def test_plain_reading_takes_what_phones_send():
    sipp = ('username="100001",realm="bench.test",cnonce="6b8b4567",nc=00000001,qop=auth,'
            'uri="sip:127.0.0.1:5060",nonce="MTc5Ng",response="0123abcd",algorithm=MD5,opaque="0f"')
    assert digest._plain_params(sipp) == digest._regex_params(sipp)
    assert digest._plain_params(sipp)["qop"] == "auth"
    spaced = 'username="70001", realm="cc.test", nonce="n", uri="sip:cc.test", response="r", algorithm=MD5'
    assert digest._plain_params(spaced) == digest._regex_params(spaced)
    for odd in ('username="a,b", realm="r"', 'username="a\\"b"', 'a=b,', 'a=b, a=c', 'a="b', 'a=b c'):
        assert digest._plain_params(odd) is None
