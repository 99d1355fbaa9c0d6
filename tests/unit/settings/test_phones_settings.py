"""phones.keepalive and employees' must_change_password in the YAML: defaults, and every mistake reported as
file:line: key: message like the rest of the config."""

from __future__ import annotations

import pytest

from softswitch.settings import ConfigError, load_config, parse_config
from softswitch.settings.model import KeepaliveSettings
from tests.integration.test_settings import BASE, EXAMPLE


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "cc.yaml")
    return [f"{f}:{line}: {key}: {msg}" for f, line, key, msg in exc.value.problems]


def test_defaults_and_the_shipped_example():
    cfg = parse_config(BASE, "cc.yaml")
    assert cfg.keepalive == KeepaliveSettings(30.0, 5.0, 3)
    assert cfg.employee("acme_alice").must_change_password is True          # a new account must change it
    example = load_config(EXAMPLE)
    assert example.keepalive == KeepaliveSettings(30.0, 5.0, 3)
    # the demo accounts are not flagged, so the README's login works as written
    assert not any(e.must_change_password for e in example.employees)


def test_keepalive_settings_are_read():
    cfg = parse_config(BASE + "phones: {keepalive: {interval: 2s, timeout: 500ms, failures: 5}}\n", "cc.yaml")
    assert cfg.keepalive == KeepaliveSettings(2.0, 0.5, 5)
    off = parse_config(BASE + "phones: {keepalive: {interval: 0}}\n", "cc.yaml")
    assert off.keepalive.interval == 0
    flag = BASE.replace("password: Alice-Pass1!}", "password: Alice-Pass1!, must_change_password: false}")
    assert parse_config(flag, "cc.yaml").employee("acme_alice").must_change_password is False


@pytest.mark.parametrize("phones, expected", [
    ("phones: {keepalive: {interval: 5s, timeout: 5s}}",
     "cc.yaml:11: phones.keepalive.timeout: timeout (5s) must be shorter than interval (5s)"),
    ("phones: {keepalive: {interval: 500ms}}", "cc.yaml:11: phones.keepalive.interval: must be 0 (off) or at least 1s"),
    ("phones: {keepalive: {failures: 0}}", "cc.yaml:11: phones.keepalive.failures: "),
    ("phones: {keepalive: {interval: often}}", "cc.yaml:11: phones.keepalive.interval: expected a duration"),
    ("phones: {keepalive: {intervall: 5s}}", "cc.yaml:11: phones.keepalive.intervall: unknown key (did you mean 'interval'?)"),
    ("phones: {keepalive: 30s}", "cc.yaml:11: phones.keepalive: expected a mapping"),
    ("phones: {qualify: 30s}", "cc.yaml:11: phones.qualify: unknown key"),
])
def test_keepalive_mistakes_name_file_line_and_key(phones, expected):
    found = problems(BASE + phones + "\n")
    assert any(p.startswith(expected) for p in found), found


def test_must_change_password_must_be_a_boolean():
    text = BASE.replace("password: Alice-Pass1!}", "password: Alice-Pass1!, must_change_password: maybe}")
    found = problems(text)
    assert any(p.startswith("cc.yaml:4: employees[0].must_change_password: ") for p in found), found
