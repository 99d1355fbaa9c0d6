"""The registration client's table on a fake clock: challenge, refresh before expiry, back-off, network error;
and any sequence of inputs (hypothesis) stays within the table."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from softswitch.sip.digest import DigestAuth, parse_authorization
from softswitch.trunks.register import TABLE, Account, Arm, Registration, Send

REALM = "provider.test"


def provider(algorithms=("MD5",)):
    return DigestAuth(REALM, b"k" * 32, nonce_ttl=30, algorithms=algorithms)


def ha1(user, password, alg):
    return hashlib.new(alg.replace("-", "").lower(), f"{user}:{REALM}:{password}".encode()).hexdigest()


def account(**kw):
    base = dict(registrar="sip:provider.test", aor="sip:trunk1@provider.test", username="trunk1",
                password="S3cret!", expires=120)
    base.update(kw)
    return Account(**base)


def verify(auth: DigestAuth, send: Send, now: float, password="S3cret!") -> str:
    return auth.verify("REGISTER", send.authorization,
                       lambda u, alg: ha1(u, password, alg) if u == "trunk1" else None, now).kind


@pytest.mark.parametrize("algs", [("MD5",), ("SHA-256",), ("SHA-256", "MD5")])
def test_challenge_answered_with_a_digest_the_registrar_accepts(algs):
    auth, reg, now = provider(algs), Registration(account()), 1000.0
    [first] = reg.start(now)
    assert first == Send(120, None) and reg.state == "registering"
    [again] = reg.response(401, now, auth.challenge(now))
    assert reg.state == "authenticating" and verify(auth, again, now) == "ok"
    assert parse_authorization(again.authorization)[1]["algorithm"] == algs[0]
    [arm] = reg.response(200, now + 0.1, expires=120)
    assert reg.state == "registered" and arm == Arm(now + 0.1 + 60)   # half of 120 s
    assert reg.expires_at == pytest.approx(now + 120.1)


def test_refresh_before_expiry_reuses_the_nonce_with_the_next_count_then_answers_a_new_challenge():
    auth, reg, now = provider(), Registration(account(expires=3600)), 0.0
    reg.start(now)
    send = reg.response(401, now, auth.challenge(now))[0]
    assert verify(auth, send, now) == "ok"
    [arm] = reg.response(200, now, expires=3600)
    assert arm.at == 3540.0                  # a minute before expiry for a long registration
    [refresh] = reg.timer(arm.at)
    assert reg.state == "registering" and parse_authorization(refresh.authorization)[1]["nc"] == "00000002"
    # the registrar's nonce has expired: it challenges again (stale), and the fresh one is answered
    [fresh] = reg.response(401, arm.at, auth.challenge(arm.at, stale=True))
    assert reg.state == "authenticating" and verify(auth, fresh, arm.at) == "ok"
    reg.response(200, arm.at, expires=3600)
    assert reg.state == "registered"


def test_wrong_password_backs_off_doubling_up_to_the_cap():
    auth, reg, now = provider(), Registration(account(password="wrong"), retry_min=5, retry_max=18), 0.0
    waits = []
    reg.start(now)
    for _ in range(4):
        send = reg.response(401, now, auth.challenge(now))[0]
        assert verify(auth, send, now) == "fail"
        [arm] = reg.response(401, now, auth.challenge(now))     # a second, non-stale challenge: bad credentials
        assert reg.state == "failed"
        waits.append(arm.at - now)
        now = arm.at
        assert reg.timer(now) == [Send(120, None)]
    assert waits == [5, 10, 18, 18]
    assert reg.stats["failures"] == 4


def test_timeout_and_refusal_back_off_and_success_resets_the_back_off():
    reg, now = Registration(account(), retry_min=2, retry_max=60), 0.0
    reg.start(now)
    assert reg.timeout(now + 32) == [Arm(34)] and reg.state == "failed"
    reg.timer(34)
    assert reg.response(403, 34.1) == [Arm(38.1)]
    reg.timer(38.1)
    reg.response(200, 38.2, expires=60)
    assert reg.state == "registered" and reg.backoff == 2


def test_network_error_while_registered_re_registers_at_once():
    reg, now = Registration(account()), 0.0
    reg.start(now)
    reg.response(200, now, expires=120)
    out = reg.network_error(10.0)
    assert reg.state == "registering" and out == [Send(120, None)]
    assert reg.network_error(10.5) == [Arm(15.5)] and reg.state == "failed"


def test_hashed_secret_answers_only_its_own_realm():
    auth, now = provider(("SHA-256",)), 0.0
    good = Registration(account(password=None, ha1={"SHA-256": ha1("trunk1", "S3cret!", "SHA-256")},
                                ha1_realm=REALM))
    good.start(now)
    assert verify(auth, good.response(401, now, auth.challenge(now))[0], now) == "ok"
    other = Registration(account(password=None, ha1={"MD5": "0" * 32}, ha1_realm="elsewhere"))
    other.start(now)
    assert other.response(401, now, auth.challenge(now)) == [Arm(5.0)]     # nothing it can answer


def test_late_answers_and_garbage_challenges_change_nothing():
    reg = Registration(account())
    assert reg.response(200, 0.0) == [] and reg.state == "idle"
    reg.start(0.0)
    assert reg.response(401, 0.0, ["Basic realm=x", "Digest nonce=1", 'Digest realm="r", nonce="n", algorithm=MD7',
                                   "Digest " + "a" * 5000]) == [Arm(5.0)]


def test_stop_unregisters_only_when_registered():
    reg = Registration(account())
    reg.start(0.0)
    assert reg.stop(1.0) == [] and reg.state == "idle"
    reg.start(2.0)
    reg.response(200, 2.0, expires=120)
    assert reg.stop(3.0) == [Send(0, None)]


def test_every_table_entry_leads_to_a_known_state():
    states = {s for s, _ in TABLE} | {"idle"}
    assert {new for new, _ in TABLE.values()} <= states


def test_interval_too_brief_asks_again_at_once_for_the_registrars_minimum():
    reg = Registration(account(expires=30))
    reg.start(0.0)
    assert reg.response(423, 0.0, expires=120) == [Send(120, None)] and reg.state == "registering"
    assert reg.response(423, 0.0, expires=60) == [Arm(5.0)]       # no lower than already asked: a refusal


EVENTS = st.sampled_from(["start", "timer", "timeout", "network_error", "ok", "challenge", "stale", "reject",
                          "stop", "423"])


@given(st.lists(st.tuples(EVENTS, st.floats(0, 100)), max_size=40))
def test_any_sequence_of_inputs_keeps_the_machine_in_its_table(steps):
    auth, reg, now = provider(), Registration(account(), retry_min=1, retry_max=8), 0.0
    states = {s for s, _ in TABLE} | {new for new, _ in TABLE.values()} | {"idle"}
    for event, dt in steps:
        now += dt
        if event in ("start", "timer", "timeout", "network_error", "stop"):
            out = getattr(reg, event)(now)
        elif event == "ok":
            out = reg.response(200, now, expires=60)
        elif event == "423":
            out = reg.response(423, now, expires=int(dt) + 1)
        elif event == "reject":
            out = reg.response(503, now)
        else:
            out = reg.response(401, now, auth.challenge(now, stale=event == "stale"))
        assert reg.state in states
        for eff in out:
            assert isinstance(eff, (Send, Arm))
            if isinstance(eff, Arm):
                assert eff.at >= now and eff.at - now <= 60
        assert 1 <= reg.backoff <= 8
        if reg.state == "registered":
            assert reg.expires_at is not None
