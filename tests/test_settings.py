"""Config loading is strict: every problem names file, line and key; secrets are hashes; policy enforced."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from softswitch.credentials import ha1_pair
from softswitch.settings import ConfigError, PasswordPolicy, check_password, load_config, parse_config
from softswitch.settings.secrets import softphone_hash

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "example.yaml"
SP = softphone_hash("70001", "cc.test", "Phone-Pass1!")

BASE = f"""\
server:
  sip: {{listen: [udp:127.0.0.1:5070], domain: cc.test}}
employees:
  - {{account: acme_alice, name: Alice, password: Alice-Pass1!}}
agents:
  - {{id: "1001", account: acme_alice, softphone: "70001", softphone_password_hash: "{SP}", queues: [q1]}}
skill_queues:
  - {{name: q1}}
called_routes:
  - {{called: "4001", queue: q1}}
"""


def problems(text: str) -> list[tuple[str, int, str, str]]:
    with pytest.raises(ConfigError) as exc:
        parse_config(textwrap.dedent(text), "cc.yaml")
    return exc.value.problems


def test_example_config_loads_and_is_complete():
    cfg = load_config(EXAMPLE)
    assert cfg.server.sip.realm == "cc.example.com"
    assert {a.id for a in cfg.agents} == {"1001", "1002", "1003", "1004"}
    assert {q.type for q in cfg.queues} == {"voice", "video", "multimedia", "voice_click_to_dial",
                                            "video_click_to_dial"}
    assert [(w.name, w.routes) for w in cfg.click_to_dial.widgets] == [("website", ("4010", "4011"))]
    assert {r.kind for r in cfg.routes} == {"queue", "ivr"}
    assert all(len(a.ha1["MD5"]) == 32 and len(a.ha1["SHA-256"]) == 64 for a in cfg.agents)
    # the documented demo secrets match the hashes in the file
    assert cfg.agent("1001").ha1 == ha1_pair("70001", "cc.example.com", "Phone-70001!")
    assert check_password("Alice-Demo1!", cfg.employee("acme_alice").password_hash)
    sec = cfg.server.sip.security          # as its comments say
    assert (sec.account_failures, sec.account_window, sec.account_lock_time) == (10, 600.0, 300.0)
    assert cfg.server.sip.registrar.digest == ("MD5",) and all(a.digest == () for a in cfg.agents)


def test_minimal_config_defaults():
    cfg = parse_config(BASE, "cc.yaml")
    q = cfg.queue("q1")
    assert (q.max_wait, q.max_calls, q.type, q.ring_timeout) == (60.0, 100, "voice", 15.0)
    assert cfg.agent("1001").auto_answer_after == 2.0
    assert cfg.server.sip.realm == "cc.test"
    assert cfg.employee("acme_alice").password_hash.startswith("pbkdf2_sha256$")   # plain text hashed at load


def test_unknown_key_names_line_and_suggests():
    probs = problems(BASE.replace("{name: q1}", "{name: q1, ring_timout: 5s}"))
    assert probs == [("cc.yaml", 8, "skill_queues[0].ring_timout", "unknown key (did you mean 'ring_timeout'?)")]


def test_wrong_types_and_values_each_reported():
    text = BASE.replace("{name: q1}", "{name: q1, max_calls: many, max_wait: soon, type: fax}")
    probs = problems(text)
    keys = {(line, key) for _, line, key, _ in probs}
    assert keys == {(8, "skill_queues[0].max_calls"), (8, "skill_queues[0].max_wait"), (8, "skill_queues[0].type")}
    msg = {key: m for _, _, key, m in probs}
    assert "integer" in msg["skill_queues[0].max_calls"]
    assert "voice, multimedia, video" in msg["skill_queues[0].type"]


def test_duplicate_keys_are_errors():
    probs = problems(BASE + "skill_queues: []\n")
    assert probs[0][1:3] == (11, "skill_queues")
    assert "duplicate key (first at line 7)" in probs[0][3]


def test_yaml_syntax_error_has_line():
    probs = problems("server:\n  sip: [unclosed\n")
    assert probs[0][0] == "cc.yaml" and probs[0][1] == 2 and "not valid YAML" in probs[0][3]
    # a flow mapping left open is named on its own line, not on the next one where the parser noticed
    probs = problems(BASE.replace("- {name: q1}", "- {name: q1"))
    assert [(line, m.split(" (")[0]) for _, line, _, m in probs] == [(8, "not valid YAML: a flow mapping not closed")]


@pytest.mark.parametrize("password,rule", [
    ("Short1!", "shorter than 8 characters"), ("alllower1!", "no upper-case letter"),
    ("ALLUPPER1!", "no lower-case letter"), ("NoDigits!!", "no digit"), ("NoSpecial12", "no special character"),
    ("Acme_Alice", "equal to the account name"), ("ecila_emca", "equal to the account name reversed"),
])
def test_password_policy_names_account_and_rule(password, rule):
    text = BASE.replace("Alice-Pass1!", f"'{password}'")
    (p,) = [x for x in problems(text) if x[2] == "employees[0].password"]
    assert p[1] == 4 and "acme_alice" in p[3] and rule in p[3]


def test_password_policy_is_configurable():
    text = BASE.replace("Alice-Pass1!", "simplepass") + "password_policy: {min_length: 6, require: [lower]}\n"
    assert parse_config(text).employee("acme_alice")
    assert PasswordPolicy(require=("digit",)).violations("abcdefgh") == ["no digit"]


def test_softphone_hash_realm_mismatch_and_malformed():
    probs = problems(BASE.replace("domain: cc.test", "domain: other.test"))
    assert probs[0][1:3] == (6, "agents[0].softphone_password_hash")
    assert "realm 'cc.test'" in probs[0][3] and "softswitch passwd" in probs[0][3]
    probs = problems(BASE.replace(SP, "digest$cc.test$abc$def"))
    assert "hex" in probs[0][3]


def test_references_between_sections():
    text = BASE.replace("queues: [q1]", "queues: [q1, nope]").replace("queue: q1}", "ivr: menu}")
    text += "  - {called: \"70001\", queue: q1}\n"
    msgs = {(line, key): m for _, line, key, m in problems(text)}
    assert msgs[(6, "agents[0].queues")] == "no skill queue 'nope'"
    assert msgs[(10, "called_routes[0].ivr")] == "no IVR flow 'menu'"
    assert "softphone number" in msgs[(11, "called_routes[1].called")]


def test_one_check_reports_problems_of_every_kind_at_once():
    # a typo'd key, a wrong type and a name nobody defines: all three in one run, not one fix at a time
    text = (BASE.replace("domain: cc.test", "domian: cc.test, domain: cc.test")
            .replace("{name: q1}", "{name: q1, max_calls: lots}").replace("queues: [q1]", "queues: [q2]"))
    found = {(line, key, m.split(" (")[0]) for _, line, key, m in problems(text)}
    assert found == {(2, "server.sip.domian", "unknown key"),
                     (8, "skill_queues[0].max_calls", "expected an integer, got str 'lots'"),
                     (6, "agents[0].queues", "no skill queue 'q2'")}


def test_duplicates_across_items():
    text = BASE.replace("skill_queues:", "  - {id: \"1001\", account: acme_alice, softphone: \"70001\", "
                        f"softphone_password_hash: \"{SP}\"}}\nskill_queues:")
    keys = {key for _, _, key, _ in problems(text)}
    assert {"agents[1].id", "agents[1].softphone", "agents[1].account"} <= keys


def test_missing_required_keys_and_listen_format():
    probs = problems("server:\n  sip: {listen: [sctp:1.2.3.4:5060]}\n")
    keys = {key: m for _, _, key, m in probs}
    assert "TRANSPORT:HOST:PORT" in keys["server.sip.listen[0]"]
    assert keys["server.sip.domain"] == "required key is missing"


def run_cli(*args, stdin: str = "", cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "softswitch.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def test_cli_config_check(tmp_path):
    ok = run_cli("config", "check", str(EXAMPLE))
    assert ok.returncode == 0 and "4 agents" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("{name: q1}", "{name: q1, max_calls: -1}"))
    res = run_cli("config", "check", str(bad))
    assert res.returncode == 1
    assert f"{bad}:8: skill_queues[0].max_calls: must be at least 1" in res.stderr


def test_cli_route_dry_run():
    res = run_cli("config", "route", str(EXAMPLE), "4002", "--media", "video")
    assert res.returncode == 0 and "skill queue support_video" in res.stdout
    res = run_cli("config", "route", str(EXAMPLE), "4002")
    assert "skill queue support_voice" in res.stdout
    res = run_cli("config", "route", str(EXAMPLE), "4000")
    assert "IVR flow main_menu" in res.stdout
    # an agent's number and a number nobody has get the same answer: a challenge only an agent passes
    agent_number = run_cli("config", "route", str(EXAMPLE), "70001")
    assert agent_number.returncode == 3 and "407" in agent_number.stdout
    res = run_cli("config", "route", str(EXAMPLE), "9999")
    assert res.returncode == 3 and "407" in res.stdout
    assert agent_number.stdout.replace("70001", "N") == res.stdout.replace("9999", "N")
    res = run_cli("config", "route", str(EXAMPLE), "5551234", "--from-agent", "1001")
    assert res.returncode == 0 and "outbound" in res.stdout


def test_cli_passwd_hashes_and_enforces_policy():
    res = run_cli("passwd", "--softphone", "70001", "--realm", "cc.test", "--stdin", stdin="Phone-Pass1!\n")
    assert res.returncode == 0 and res.stdout.strip() == f'softphone_password_hash: "{SP}"'
    res = run_cli("passwd", "--account", "acme_bob", "--stdin", stdin="Bob-Pass-2!\n")
    encoded = res.stdout.split('"')[1]
    assert check_password("Bob-Pass-2!", encoded) and not check_password("Bob-Pass-3!", encoded)
    res = run_cli("passwd", "--account", "acme_bob", "--stdin", stdin="bob_emca\n")
    assert res.returncode == 1 and "no upper-case letter" in res.stderr
    res = run_cli("passwd", "--softphone", "70001", "--stdin", stdin="Phone-Pass1!\n")
    assert res.returncode == 1 and "realm" in res.stderr


def test_agent_queue_penalties():
    cfg = parse_config(BASE.replace("queues: [q1]", "queues: [{queue: q1, penalty: 3}]"))
    assert cfg.agent("1001").queues == ("q1",) and cfg.agent("1001").penalties == {"q1": 3}
    probs = problems(BASE.replace("queues: [q1]", "queues: [{queue: q1, penalty: -1}]"))
    assert probs[0][2] == "agents[0].queues[0].penalty" and "at least 0" in probs[0][3]


def test_account_lockout_settings_and_defaults():
    sec = parse_config(BASE, "cc.yaml").server.sip.security
    assert (sec.account_failures, sec.account_window, sec.account_lock_time) == (10, 600.0, 300.0)
    text = BASE.replace("domain: cc.test}", "domain: cc.test, security: {account_failures: 5, account_window: 1h, "
                        "account_lock_time: 2m}}")
    sec = parse_config(text, "cc.yaml").server.sip.security
    assert (sec.account_failures, sec.account_window, sec.account_lock_time) == (5, 3600.0, 120.0)
    probs = problems(BASE.replace("domain: cc.test}", "domain: cc.test, security: {account_lock_time: forever}}"))
    assert probs[0][1:3] == (2, "server.sip.security.account_lock_time")


def test_digest_algorithms_per_tenant_and_per_agent():
    cfg = parse_config(BASE, "cc.yaml")
    assert cfg.server.sip.registrar.digest == ("MD5",) and cfg.agent("1001").digest == ()
    cfg = parse_config(BASE.replace('queues: [q1]}', 'queues: [q1], digest: [SHA-256, MD5]}'), "cc.yaml")
    assert cfg.agent("1001").digest == ("SHA-256", "MD5")
    probs = problems(BASE.replace('queues: [q1]}', 'queues: [q1], digest: [SHA-512]}'))
    assert probs[0][1:3] == (6, "agents[0].digest[0]") and "MD5, SHA-256" in probs[0][3]
    probs = problems(BASE.replace('queues: [q1]}', 'queues: [q1], digest: [MD5, MD5]}'))
    assert probs[0][1:3] == (6, "agents[0].digest") and "twice" in probs[0][3]
