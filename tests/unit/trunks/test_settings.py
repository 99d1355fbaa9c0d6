"""The `trunks` and `dial_plan` sections: read into settings, every problem reported in one run as
file:line: key: message, the commented example valid once uncommented, and `config route --from-trunk`."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from softswitch.settings import ConfigError, load_config, parse_config, softphone_hash
from softswitch.trunks.outbound import OutboundCall
from tests.integration.test_settings import BASE

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "config" / "example.yaml"

TRUNKS = """\
    trunks:
      - name: carrier_a
        addresses: [203.0.113.10, 198.51.100.0/24, sbc.carrier.example]
        transport: tcp
        codecs: [PCMA]
        called_number: p-called-party-id
        numbers: {country_code: "49", strip: "99#", send_as: national}
        calls_per_second: 20
        max_calls: 200
        reach: [acd]
        options: {interval: 10s, threshold: 2, timeout: 1s}
      - name: provider_b
        register: {registrar: "sip:sip.provider.example:5070", username: acme, password: "p4ss", expires: 600}
        outbound_auth: {username: acme, password_hash: "HASH"}
    dial_plan:
      routes:
        - {numbers: "+49*", trunks: [carrier_a, provider_b]}
        - {numbers: "*", trunks: [provider_b]}
      caller_id: {default: "+4930555000", queues: {q1: "+4930555100"}, agents: {"1001": "+4930555101"}}
    """


def cfg(extra: str):
    return parse_config(BASE + textwrap.dedent(extra), "cc.yaml")


def problems(extra: str):
    with pytest.raises(ConfigError) as exc:
        cfg(extra)
    return {(line, key): msg for _, line, key, msg in exc.value.problems}


def test_trunks_and_dial_plan_are_read():
    h = softphone_hash("acme", "provider.example", "p4ss")
    c = cfg(TRUNKS.replace("HASH", h))
    a, b = c.trunks.trunks
    assert a.addresses == ("203.0.113.10", "198.51.100.0/24", "sbc.carrier.example")
    assert a.target() == ("203.0.113.10", 5060) and a.transport == "tcp" and a.codecs == ("PCMA",)
    assert a.numbers.inbound("99#0305554001") == "+49305554001" and a.numbers.outbound("+49305554001") == "0305554001"
    assert (a.calls_per_second, a.burst, a.max_calls) == (20, 20, 200)
    assert a.may_reach("acd") and not a.may_reach("ivr") and not a.may_reach("agents")
    assert (a.options.interval, a.options.threshold, a.options.timeout) == (10, 2, 1)
    assert a.register is None and b.options is None
    assert b.register.registrar == "sip:sip.provider.example:5070" and b.register.domain == "sip.provider.example"
    assert b.register.secret.password == "p4ss" and b.register.expires == 600
    assert b.outbound_auth.ha1["MD5"] and b.outbound_auth.realm == "provider.example" and b.may_reach("agents")
    plan = c.trunks.dial_plan
    assert plan.trunks_for("+4989123") == ("carrier_a", "provider_b") and plan.trunks_for("+1202") == ("provider_b",)
    assert plan.caller_ids.choose(queue="q1") == "+4930555100"
    assert cfg("").trunks.trunks == ()


def test_every_problem_in_one_run_with_line_key_and_a_suggestion():
    start = BASE.count("\n")
    got = problems("""\
        trunks:
          - name: a
            addresses: [203.0.113.10, 10.0.0.0/33, "bad host!"]
            transprt: udp
            transport: sctp
            codecs: [G729]
            numbers: {country_code: "+49", send_as: local}
            reach: [everything]
            calls_per_second: -1
            register: {registrar: "http://x", username: u}
          - name: b
            addresses: [203.0.113.10]
            inbound_auth: {username: b, password_hash: "digest$other.realm$%s$%s"}
          - name: a
            addresses: [192.0.2.1]
          - {name: empty}
        dial_plan:
          routes:
            - {numbers: "+49*", trunks: [carier_a, b]}
            - {numbers: "49?", trunks: [b]}
          caller_id: {default: "call me", queues: {nope: "+1"}, agents: {"9999": "+1"}}
        """ % ("0" * 32, "0" * 64))
    def at(offset, key):
        return got[(start + offset, key)]
    assert "not a valid" in at(3, "trunks[0].addresses[1]") or "network" in at(3, "trunks[0].addresses[1]")
    assert "IP address or host name" in at(3, "trunks[0].addresses[2]")
    assert "did you mean 'transport'?" in at(4, "trunks[0].transprt")
    assert "must be one of udp, tcp, tls" in at(5, "trunks[0].transport")
    assert "must be one of PCMU" in at(6, "trunks[0].codecs[0]")
    assert "up to 6 digits" in at(7, "trunks[0].numbers.country_code")
    assert "must be one of e164" in at(7, "trunks[0].numbers.send_as")
    assert "must be one of acd" in at(8, "trunks[0].reach[0]")
    assert "at least 0" in at(9, "trunks[0].calls_per_second")
    assert "SIP URI" in at(10, "trunks[0].register.registrar")
    assert "required key is missing" in at(10, "trunks[0].register.password")
    assert "already an address of trunk 'a'" in at(12, "trunks[1].addresses")
    assert "realm 'other.realm'" in at(13, "trunks[1].inbound_auth.password_hash")
    assert "already the name of another trunk" in at(14, "trunks[2].name")
    assert "needs addresses" in at(16, "trunks[3]")
    assert "no trunk 'carier_a'" in at(19, "dial_plan.routes[0].trunks")
    assert "number pattern" in at(20, "dial_plan.routes[1].numbers")
    assert "expected digits" in at(21, "dial_plan.caller_id.default")
    assert "no skill queue 'nope'" in at(21, "dial_plan.caller_id.queues.nope")
    assert "no agent '9999'" in at(21, "dial_plan.caller_id.agents.9999")


def test_did_you_mean_for_a_misspelt_trunk_name_in_the_dial_plan():
    got = problems("""\
        trunks: [{name: carrier_a, addresses: [192.0.2.1]}]
        dial_plan: {routes: [{numbers: "*", trunks: [carier_a]}]}
        """)
    assert any("did you mean 'carrier_a'?" in m for m in got.values())


def uncommented_example(tmp_path) -> Path:
    text = EXAMPLE.read_text()
    start = text.index("# trunks:")
    block = "\n".join(re.sub(r"^# ?", "", line) for line in text[start:].splitlines())
    out = tmp_path / "example.yaml"
    out.write_text(text[:start] + block + "\n")
    for sub in (EXAMPLE.parent / "prompts",):
        if sub.exists():
            (tmp_path / "prompts").symlink_to(sub)
    return out


def test_the_commented_example_trunks_are_valid(tmp_path):
    c = load_config(uncommented_example(tmp_path))
    assert [t.name for t in c.trunks.trunks] == ["carrier_a", "provider_b"]
    assert c.trunks.dial_plan.trunks_for("+4930123") == ("carrier_a", "provider_b")
    assert load_config(EXAMPLE).trunks.trunks == ()         # the demo itself has none


def route(path, *args):
    return subprocess.run([sys.executable, "-m", "softswitch.cli", "config", "route", str(path), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_config_route_from_a_trunk(tmp_path):
    path = uncommented_example(tmp_path)
    p = route(path, "4001", "--from-trunk", "carrier_a")
    assert p.returncode == 0, p.stderr
    assert "trunk carrier_a: 203.0.113.10, 198.51.100.0/24 over udp; trusted by address" in p.stdout
    assert "4001: skill queue support_voice" in p.stdout
    p = route(path, "70001", "--from-trunk", "carrier_a")      # an agent's number: carrier_a reaches acd, ivr
    assert p.returncode == 3 and "70001: rejected 403 Trunk may not reach agents" in p.stdout
    p = route(path, "0305554001", "--from-trunk", "carrier_a")
    assert p.returncode == 3 and "0305554001 -> +49305554001: rejected 404 No route" in p.stdout
    p = route(path, "4001", "--from-trunk", "nope")
    assert p.returncode == 1 and "no trunk 'nope' (trunks: carrier_a, provider_b)" in p.stderr


def test_an_outbound_call_walks_the_dial_plan_with_each_trunks_format_and_caller_id():
    c = cfg("""\
        trunks:
          - {name: a, addresses: [192.0.2.1], numbers: {country_code: "49", send_as: national}}
          - {name: b, proxy: "sbc.example:5080", transport: tcp, numbers: {add: "1234#"}, outbound_auth: {username: u, password: p}}
          - {name: c, addresses: [192.0.2.3]}
        dial_plan:
          routes: [{numbers: "+49*", trunks: [a, b, c]}]
          caller_id: {default: "+4930555000", queues: {q1: "+4930555100"}}
        """)
    down = {"c"}
    call = OutboundCall(c.trunks, "+4989123456", lambda n: n not in down, queue="q1")
    first = call.first()
    assert (first.trunk, first.uri, first.caller_id) == ("a", "sip:089123456@192.0.2.1:5060", "030555100")
    second = call.result(503)
    assert (second.trunk, second.uri, second.transport) == ("b", "sip:1234#+4989123456@sbc.example:5080;transport=tcp",
                                                           "tcp")
    assert second.caller_id == "1234#+4930555100" and second.auth.username == "u"
    assert call.result("timeout") is None and call.walk.skipped == ["c"]
    assert OutboundCall(c.trunks, "+3312", lambda n: True).first() is None       # no route
    assert call.walk.tried == [("a", 503), ("b", "timeout")]


def test_tls_trunks_default_to_5061_and_may_be_pinged_and_register():
    t = cfg("trunks: [{name: t, addresses: [192.0.2.1], transport: tls, options: true,\n"
            "          register: {registrar: 'sip:192.0.2.1', username: u, password: p}}]\n").trunks.trunks[0]
    assert t.target() == ("192.0.2.1", 5061) and t.options is not None and t.register is not None
    assert t.tls.ca_file is None and not t.tls.insecure_skip_verify        # the system's CAs, checked


def test_dial_plan_attempt_timeout_is_read_and_bounded():
    assert cfg(TRUNKS.replace("HASH", softphone_hash("acme", "provider.example", "p4ss"))).trunks.dial_plan \
        .attempt_timeout == 4.0
    plan = """\
        trunks:
          - {name: a, proxy: "192.0.2.1:5060"}
        dial_plan:
          routes: [{numbers: "*", trunks: [a]}]
          attempt_timeout: %s
        """
    assert cfg(plan % "1500ms").trunks.dial_plan.attempt_timeout == 1.5
    got = problems(plan % "1h")
    assert any(key == "dial_plan.attempt_timeout" for _, key in got), got


def test_a_trunk_known_only_by_its_credentials_has_a_username_of_its_own():
    ok = cfg("trunks: [{name: sbc, inbound_auth: {username: sbc-1, password: Secret-1}, reach: [acd]}]\n")
    t = ok.trunks.trunks[0]
    assert (t.addresses, t.inbound_auth.username) == ((), "sbc-1")
    softphone = ok.agents[0].softphone
    got = problems(f"""\
        trunks:
          - {{name: a, inbound_auth: {{username: "{softphone}", password: Secret-1}}}}
          - {{name: b, inbound_auth: {{username: sbc-1, password: Secret-1}}}}
          - {{name: c, inbound_auth: {{username: sbc-1, password: Secret-2}}}}
          - {{name: d, addresses: [192.0.2.1], inbound_auth: {{username: sbc-1, password: Secret-3}}}}
        """)
    assert [k for _, k in got] == ["trunks[0].inbound_auth.username", "trunks[2].inbound_auth.username"], got
    assert "agent's softphone number" in got[next(k for k in got if k[1] == "trunks[0].inbound_auth.username")]
    assert "already identifies trunk 'b'" in got[next(k for k in got if k[1] == "trunks[2].inbound_auth.username")]
