"""The registrar (RFC 3261 s. 10.3) without sockets: challenges, bindings, expiry, events, resets."""

from __future__ import annotations

import asyncio
import random

import pytest

from softswitch.registrar.credentials import Credentials, ha1_pair
from softswitch.registrar.location import MemoryLocationStore
from softswitch.registrar.registrar import Registrar, RegistrarOptions
from softswitch.sip.digest import DigestAuth, make_authorization
from softswitch.sip.errors import SipError
from softswitch.sip.message import Response
from softswitch.sip.parser import parse_message

REALM = "cc.test"
PASSWORDS = {"70001": "Agent-Pass-1!", "70002": "Agent-Pass-2!"}


def register_bytes(user: str, contacts: list[str], *, call_id="reg-1", cseq=1, expires: int | None = None,
                   auth: str | None = None, extra: str = "", to_user: str | None = None) -> bytes:
    lines = [f"REGISTER sip:{REALM} SIP/2.0", f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-{call_id}-{cseq}",
             "Max-Forwards: 70", f"From: <sip:{user}@{REALM}>;tag=f{cseq}", f"To: <sip:{to_user or user}@{REALM}>",
             f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER"]
    lines += [f"Contact: {c}" for c in contacts]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if auth:
        lines.append(f"Authorization: {auth}")
    return ("\r\n".join(lines) + "\r\n" + extra + "Content-Length: 0\r\n\r\n").encode()


class Harness:
    def __init__(self, **opts) -> None:
        self.creds = Credentials(REALM, {u: ha1_pair(u, REALM, p) for u, p in PASSWORDS.items()})
        self.store = MemoryLocationStore()
        self.options = RegistrarOptions(realm=REALM, **opts)
        self.reg = Registrar(self.store, DigestAuth(REALM, b"s" * 32, nonce_ttl=60), self.creds.ha1, self.options,
                             rng=random.Random(7))
        self.events: list[tuple[str, int, int]] = []
        self.reg.listeners.append(lambda user, before, after: self.events.append((user, len(before), len(after))))
        self.now = 1000.0
        self.cseq = 0

    def send(self, raw: bytes) -> Response:
        return asyncio.run(self.reg.register(parse_message(raw), ("udp", "127.0.0.1", 5999), self.now))

    def register(self, user: str, contacts: list[str], password: str | None = None, algorithm="MD5",
                 call_id="reg-1", **kw) -> Response:
        """Challenge, then answer it, like a phone does; returns the final response."""
        self.cseq += 1
        first = self.send(register_bytes(user, contacts, call_id=call_id, cseq=self.cseq, **kw))
        assert first.status == 401
        ch = next(v for v in first.get_all("WWW-Authenticate") if f"algorithm={algorithm}" in v)
        self.cseq += 1
        value = make_authorization(ch, "REGISTER", f"sip:{REALM}", user, password or PASSWORDS.get(user, "x"))
        return self.send(register_bytes(user, contacts, call_id=call_id, cseq=self.cseq, auth=value, **kw))

    def bindings(self, user: str):
        return asyncio.run(self.store.lookup(f"sip:{user}@{REALM}", self.now))


def contact_expiries(resp: Response) -> dict[str, int]:
    return {str(c.uri): int(c.param("expires")) for c in resp.contacts}


def algorithms(resp: Response) -> list[str]:
    return [v.split("algorithm=")[1].split(",")[0] for v in resp.get_all("WWW-Authenticate")]


def test_challenge_then_register_with_md5_and_sha256():
    h = Harness()
    assert algorithms(h.send(register_bytes("70001", ["<sip:a@1.2.3.4>"], call_id="d"))) == ["MD5"]  # the default
    h.reg.authn.per_user["70001"] = ("SHA-256", "MD5")          # an agent's own list
    for alg in ("MD5", "SHA-256"):
        resp = h.register("70001", ["<sip:70001@127.0.0.1:5999>"], algorithm=alg, expires=600)
        assert resp.status == 200
        assert contact_expiries(resp) == {"sip:70001@127.0.0.1:5999": 600}
        assert resp.get("Date")
    assert h.reg.stats["challenged"] == 3


def test_an_agents_own_algorithms_are_offered_and_enforced_for_it_alone():
    h = Harness()
    h.reg.authn.per_user["70001"] = ("SHA-256",)
    assert algorithms(h.send(register_bytes("70001", ["<sip:a@1.2.3.4>"], call_id="a"))) == ["SHA-256"]
    # another agent and a number nobody has get the tenant's list
    assert algorithms(h.send(register_bytes("70002", ["<sip:a@1.2.3.4>"], call_id="b"))) == ["MD5"]
    assert algorithms(h.send(register_bytes("79999", ["<sip:a@1.2.3.4>"], call_id="c"))) == ["MD5"]
    assert h.register("70001", ["<sip:a@1.2.3.4>"], algorithm="SHA-256").status == 200
    # MD5 credentials with the right password, for an account that allows SHA-256 only: the failure 403
    h.cseq += 1
    md5 = ('Digest realm="cc.test", nonce="x", opaque="y", algorithm=MD5, qop="auth"')
    first = h.send(register_bytes("70001", ["<sip:a@1.2.3.4>"], cseq=h.cseq))
    nonce = first.get("WWW-Authenticate").split('nonce="')[1].split('"')[0]
    value = make_authorization(md5.replace('nonce="x"', f'nonce="{nonce}"').replace(
        'opaque="y"', f'opaque="{h.reg.auth.opaque}"'), "REGISTER", f"sip:{REALM}", "70001", PASSWORDS["70001"])
    resp = h.send(register_bytes("70001", ["<sip:a@1.2.3.4>"], cseq=h.cseq + 1, auth=value))
    assert (resp.status, resp.reason) == (403, "Forbidden")


def test_register_to_a_non_sip_address_of_record_is_a_bad_request():
    h = Harness()
    raw = register_bytes("70001", ["<sip:a@1.2.3.4>"]).replace(b"To: <sip:70001@cc.test>", b"To: <tel:70001>")
    with pytest.raises(SipError) as err:
        h.send(raw)
    assert err.value.status == 400


def test_unknown_user_and_wrong_password_look_the_same():
    h = Harness()
    c1 = h.send(register_bytes("70001", ["<sip:a@1.2.3.4>"], call_id="x"))
    c2 = h.send(register_bytes("79999", ["<sip:a@1.2.3.4>"], call_id="x"))
    strip = lambda r: [v.split("nonce=")[0] for v in r.get_all("WWW-Authenticate")]
    assert (c1.status, strip(c1)) == (c2.status, strip(c2))
    wrong = h.register("70001", ["<sip:a@1.2.3.4>"], password="Wrong-Pass-1!")
    unknown = h.register("79999", ["<sip:a@1.2.3.4>"], password="Wrong-Pass-1!")
    assert (wrong.status, wrong.reason) == (unknown.status, unknown.reason) == (403, "Forbidden")
    assert h.reg.stats["auth_failed"] == 2
    assert h.bindings("70001") == []


def test_cannot_register_someone_elses_address():
    h = Harness()
    h.cseq += 1
    first = h.send(register_bytes("70002", ["<sip:a@1.2.3.4>"], cseq=h.cseq))
    value = make_authorization(first.get_all("WWW-Authenticate")[0], "REGISTER", f"sip:{REALM}", "70001",
                               PASSWORDS["70001"])
    resp = h.send(register_bytes("70002", ["<sip:a@1.2.3.4>"], cseq=h.cseq + 1, auth=value))
    assert resp.status == 403 and h.bindings("70002") == []


def test_stale_nonce_gets_stale_challenge_and_replay_is_refused():
    h = Harness()
    first = h.send(register_bytes("70001", ["<sip:a@1.2.3.4>"], cseq=1))
    value = make_authorization(first.get_all("WWW-Authenticate")[0], "REGISTER", f"sip:{REALM}", "70001",
                               PASSWORDS["70001"])
    assert h.send(register_bytes("70001", ["<sip:a@1.2.3.4>"], cseq=2, auth=value)).status == 200
    replay = h.send(register_bytes("70001", ["<sip:a@1.2.3.4>"], cseq=3, auth=value))
    assert replay.status == 401 and h.reg.stats["replays"] == 1
    h.now += 120
    stale = h.send(register_bytes("70001", ["<sip:a@1.2.3.4>"], cseq=4, auth=value))
    assert stale.status == 401 and all("stale=true" in v for v in stale.get_all("WWW-Authenticate"))


def test_interval_too_brief_is_423_with_min_expires():
    h = Harness(min_expires=60)
    resp = h.register("70001", ["<sip:a@1.2.3.4>"], expires=30)
    assert resp.status == 423 and resp.get("Min-Expires") == "60"
    assert h.bindings("70001") == []


def test_expires_parameter_beats_header_and_max_is_capped():
    h = Harness(max_expires=3600)
    resp = h.register("70001", ["<sip:a@1.2.3.4>;expires=120", "<sip:b@1.2.3.4>"], expires=99999)
    assert contact_expiries(resp) == {"sip:a@1.2.3.4": 120, "sip:b@1.2.3.4": 3600}


def test_refresh_query_and_remove_one_contact():
    h = Harness()
    h.register("70001", ["<sip:a@1.2.3.4>", "<sip:b@1.2.3.4>"], expires=600)
    h.now += 100
    query = h.register("70001", [])
    assert contact_expiries(query) == {"sip:a@1.2.3.4": 500, "sip:b@1.2.3.4": 500}
    resp = h.register("70001", ["<sip:a@1.2.3.4>;expires=0"])
    assert list(contact_expiries(resp)) == ["sip:b@1.2.3.4"]
    assert h.events[-1] == ("70001", 2, 1)


def test_a_refresh_keeps_the_strings_of_the_binding_it_replaces():
    h = Harness()
    h.register("70001", ["<sip:a@1.2.3.4>;+sip.instance=\"<urn:uuid:1>\""], expires=600)
    first = h.bindings("70001")[0]
    h.now += 100
    h.register("70001", ["<sip:a@1.2.3.4>;+sip.instance=\"<urn:uuid:1>\""], expires=600)
    second = h.bindings("70001")[0]
    assert second is not first and second.expires_at == first.expires_at + 100 and second.cseq > first.cseq
    for name in ("aor", "user", "key", "contact", "params", "source", "user_agent"):
        assert getattr(second, name) is getattr(first, name), name
    h.register("70001", ["<sip:a@1.2.3.4>;+sip.instance=\"<urn:uuid:1>\";foo=1"], expires=600)
    third = h.bindings("70001")[0]
    assert third.params != first.params and "foo=1" in third.params and third.aor is first.aor


def test_star_unregisters_everything_and_needs_expires_zero():
    h = Harness()
    h.register("70001", ["<sip:a@1.2.3.4>", "<sip:b@1.2.3.4>"])
    with pytest.raises(SipError) as exc:
        h.register("70001", ["*"], expires=60)
    assert exc.value.status == 400
    resp = h.register("70001", ["*"], expires=0, call_id="reg-2")
    assert resp.status == 200 and not resp.has("Contact") and h.bindings("70001") == []
    assert h.events[-1] == ("70001", 2, 0)


def test_contact_cap_keeps_the_newest():
    h = Harness(max_contacts=2)
    for i in range(4):
        h.now += 1
        h.register("70001", [f"<sip:phone{i}@1.2.3.4>"], call_id=f"c{i}")
    assert sorted(b.contact for b in h.bindings("70001")) == ["sip:phone2@1.2.3.4", "sip:phone3@1.2.3.4"]


def test_instance_id_replaces_binding_when_the_phone_moves():
    h = Harness()
    inst = ';+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1'
    h.register("70001", [f"<sip:70001@10.0.0.1:5060>{inst}"])
    h.register("70001", [f"<sip:70001@10.0.0.2:6060>{inst}"], call_id="reg-9")
    assert [b.contact for b in h.bindings("70001")] == ["sip:70001@10.0.0.2:6060"]


def test_out_of_order_cseq_for_same_call_id_is_refused():
    h = Harness()
    h.cseq = 10
    h.register("70001", ["<sip:a@1.2.3.4>"])
    h.cseq = 2
    with pytest.raises(SipError) as exc:
        h.register("70001", ["<sip:a@1.2.3.4>"])
    assert exc.value.status == 400


def test_randomized_expiry_spreads_within_range():
    h = Harness(randomize_expires=True, min_expires=60)
    got = set()
    for i in range(20):
        resp = h.register("70001", [f"<sip:p@1.2.3.4>"], expires=3600, call_id=f"r{i}")
        got |= set(contact_expiries(resp).values())
    assert all(2880 <= e <= 3600 for e in got) and len(got) > 5


def test_path_and_source_are_kept_for_nat():
    h = Harness()
    resp = h.register("70001", ["<sip:a@192.168.1.9:5060>"], extra="Path: <sip:edge.test;lr>\r\n")
    assert resp.get("Path") == "<sip:edge.test;lr>"
    (b,) = h.bindings("70001")
    assert b.path == ["<sip:edge.test;lr>"] and b.source == ("udp", "127.0.0.1", 5999)


def test_expiry_removes_bindings_and_tells_listeners():
    h = Harness()
    h.register("70001", ["<sip:a@1.2.3.4>;expires=60", "<sip:b@1.2.3.4>;expires=600"])
    h.now += 61
    gone = asyncio.run(h.reg.expire(h.now))
    assert [b.contact for b in gone] == ["sip:a@1.2.3.4"]
    assert h.events[-1] == ("70001", 2, 1)
    assert h.reg.stats["expired"] == 1


def test_password_reset_takes_effect_at_next_register(tmp_path):
    h = Harness()
    h.creds = Credentials(REALM, {u: ha1_pair(u, REALM, p) for u, p in PASSWORDS.items()},
                          db_path=str(tmp_path / "s.db"))
    h.reg.lookup_ha1 = h.creds.ha1
    assert h.register("70001", ["<sip:a@1.2.3.4>"]).status == 200
    h.creds.reset("70001", "Brand-New-Pass-7!")
    assert h.register("70001", ["<sip:a@1.2.3.4>"], call_id="n1").status == 403
    assert h.register("70001", ["<sip:a@1.2.3.4>"], password="Brand-New-Pass-7!", call_id="n2").status == 200
    # the reset survives a restart
    again = Credentials(REALM, {u: ha1_pair(u, REALM, p) for u, p in PASSWORDS.items()},
                        db_path=str(tmp_path / "s.db"))
    assert again.ha1("70001", "MD5") == ha1_pair("70001", REALM, "Brand-New-Pass-7!")["MD5"]


def test_stateless_challenge_looks_at_contacts_without_parsing_them():
    h = Harness()
    plain = parse_message(register_bytes("70001", ["<sip:a@1.2.3.4>"]))
    assert h.reg.challenge_if_needed(plain, h.now).status == 401
    # a malformed contact is judged once the request is authenticated, not before (and never crashes here)
    broken = parse_message(register_bytes("70001", ["<sip:a@1.2.3.4"]))
    assert h.reg.challenge_if_needed(broken, h.now).status == 401
    # "*" (alone, or next to another Contact line) is left to the stateful path
    for contacts in (["*"], [" * "], ["<sip:a@1.2.3.4>", "*"]):
        assert h.reg.challenge_if_needed(parse_message(register_bytes("70001", contacts, expires=0)), h.now) is None
    answered = parse_message(register_bytes("70001", ["<sip:a@1.2.3.4>"], auth='Digest username="70001"'))
    assert h.reg.challenge_if_needed(answered, h.now) is None
