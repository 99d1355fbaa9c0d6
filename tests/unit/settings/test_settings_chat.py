"""The web chat's settings (`chat` section): origins, per-agent concurrency, limits; every problem as
file:line: key: message, like the rest of the file."""

from __future__ import annotations

import textwrap

import pytest

from softswitch.settings import ConfigError, parse_config
from softswitch.settings.chat import Concurrency
from tests.integration.test_settings import BASE

MM = BASE.replace("  - {name: q1}", "  - {name: q1}\n  - {name: web, type: multimedia}").replace(
    "queues: [q1]}", "queues: [q1, web]}")


def cfg(extra: str, base: str = MM):
    return parse_config(base + textwrap.dedent(extra), "cc.yaml")


def problems(extra: str, base: str = MM) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        cfg(extra, base)
    return [f"{f}:{line}: {key}: {msg}" for f, line, key, msg in exc.value.problems]


def test_defaults_and_the_example():
    c = cfg("")
    assert c.chat.origins == () and c.chat.of("1001") == Concurrency(3, 1)
    assert (c.chat.max_message, c.chat.max_frame, c.chat.rate) == (2000, 8192, (5.0, 10.0))
    c = cfg("""\
        chat:
          origins: [https://WWW.Example.com:443, "http://127.0.0.1:8000"]
          concurrency: {chats: 4}
          agents:
            "1001": {chats: 2, while_on_call: 0}
          rate: {messages: 2, burst: 4}
        """)
    assert c.chat.origins == ("https://www.example.com", "http://127.0.0.1:8000")
    assert c.chat.concurrency == Concurrency(4, 1) and c.chat.of("1001") == Concurrency(2, 0)
    assert c.chat.rate == (2.0, 4.0)


def test_every_problem_with_its_line():
    got = problems("""\
        chat:
          origins: [www.example.com, "https://a.example/path"]
          concurrency: {chats: 2, while_on_call: 3}
          agents:
            "9999": {chats: 1}
          max_mesage: 10
          rate: {messages: 10, burst: 2}
          sessions_per_address: 0
        """)
    text = "\n".join(got)
    line = len(MM.splitlines()) + 1          # the line of `chat:`
    assert f"cc.yaml:{line + 1}: chat.origins[0]: expected an origin like https://www.example.com" in text
    assert f"cc.yaml:{line + 1}: chat.origins[1]: expected an origin" in text
    assert f"cc.yaml:{line + 2}: chat.concurrency.while_on_call: must not exceed chats (2)" in text
    assert f"cc.yaml:{line + 4}: chat.agents.9999: no agent with id '9999'" in text
    assert f"cc.yaml:{line + 5}: chat.max_mesage: unknown key (did you mean 'max_message'?)" in text
    assert f"cc.yaml:{line + 6}: chat.rate.burst: must be at least messages (10)" in text
    assert f"cc.yaml:{line + 7}: chat.sessions_per_address:" in text


def test_agent_figures_need_a_multimedia_queue():
    got = problems("""\
        chat:
          agents:
            "1001": {chats: 1}
        """, BASE)
    assert any("chat.agents.1001: this agent is in no multimedia skill queue" in p for p in got), got
