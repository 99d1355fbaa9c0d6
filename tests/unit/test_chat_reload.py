"""A reload changes the web chat in place: its limits (each bucket keeps what it used), agents' figures (a
waiting chat goes to new room at once), and a multimedia queue taken out takes no new chats while the open
ones go on. Settings of the new limits are checked like the rest of the file."""

from __future__ import annotations

import json
import random

import pytest

from acd.chat_router import ChatRouter
from softswitch.chat.config import add_roles, chat_roles, reconfigure
from softswitch.chat.hub import ChatHub
from tests.integration.test_chat_hub import Clock, Conn
from tests.unit.settings.test_settings_chat import MM, cfg, problems

SITE = "https://shop.example"
CHAT = f"""\
    chat:
      origins: [{SITE}]
      concurrency: {{chats: 1, while_on_call: 0}}
      rate: {{messages: 2, burst: 2}}
      agent_panels: 1
    """


def hub_of(config):
    clock = Clock()
    router = ChatRouter(clock, random.Random(0))
    queues, agents, names = chat_roles(config)
    add_roles(router, queues, agents)
    return ChatHub(config.chat, router, clock, "n1", None, names, lambda agent_id: "idle"), clock


def open_chat(hub):
    c = Conn()
    assert hub.admit("web", SITE, "192.0.2.7") is None
    return hub.visitor_open(c, "web", SITE, "192.0.2.7"), c


def test_limits_figures_and_queues_change_in_place():
    old = cfg(CHAT)
    hub, clock = hub_of(old)
    panel = Conn()
    hub.agent_open("1001", panel)
    first, c1 = open_chat(hub)
    second, c2 = open_chat(hub)
    assert first.agent_id == "1001" and second.agent_id is None          # one chat at a time
    assert hub.admit_agent("1001")[0] == 429
    for _ in range(3):
        hub.visitor_frame(first, json.dumps({"type": "message", "text": "hi"}))
    assert c1.of("error")[-1]["error"] == "too many messages: slow down (dropped)"

    chat = CHAT.replace("chats: 1,", "chats: 2,").replace("messages: 2, burst: 2", "messages: 50, burst: 100") \
        .replace("agent_panels: 1", "agent_panels: 2")
    new = cfg(chat)
    assert reconfigure(hub, old, new) == ["settings", "agents"]
    assert second.agent_id == "1001" and panel.of("chat")[-1]["chat"] == second.id    # the new room, at once
    assert panel.of("capacity")[-1]["max_chats"] == 2
    assert hub.admit_agent("1001") is None
    clock.t += 1                                  # the old bucket was empty: at the new rate it fills fast
    for _ in range(20):
        hub.visitor_frame(first, json.dumps({"type": "message", "text": "hi"}))
    assert len(c1.of("error")) == 1

    # the multimedia queue taken out: no new chats; the open ones go on
    gone = without_web(chat)
    assert reconfigure(hub, new, gone) == ["queues", "agents"]
    assert hub.admit("web", SITE, "192.0.2.8") == (404, "no such chat queue")
    hub.agent_frame("1001", panel, json.dumps({"type": "message", "chat": first.id, "text": "still here"}))
    assert c1.of("message")[-1]["text"] == "still here"


def without_web(chat: str):
    text = MM.replace("  - {name: web, type: multimedia}", "").replace("queues: [q1, web]}", "queues: [q1]}")
    return cfg(chat, text)


def test_new_limits_are_checked_with_their_line():
    got = problems("""\
        chat:
          max_frame: 8192
          byte_rate: {bytes: 1000, burst: 4000}
          agent_rate: {messages: 10, burst: 5}
          agent_panels: 0
        """)
    assert any(p.endswith("chat.byte_rate.burst: must be at least max_frame (8192)") for p in got), got
    assert any(p.endswith("chat.agent_rate.burst: must be at least messages (10)") for p in got), got
    assert any("chat.agent_panels" in p for p in got), got
    assert cfg("chat: {max_frame: 500000}").chat.byte_rate[1] == 500000    # the default burst fits any frame


@pytest.mark.parametrize("extra", ["chat: {agent_rate: {messages: 3}}", "chat: {byte_rate: {bytes: 9000}}"])
def test_burst_defaults(extra):
    c = cfg(extra).chat
    assert c.agent_rate[1] >= c.agent_rate[0] and c.byte_rate[1] >= max(c.byte_rate[0], c.max_frame)
