"""The web chat's budgets with a fake clock: every frame source (a visitor's chat and address, an agent's panel
and the agent) has frames/s and bytes/s; over it a frame gets an error frame and is dropped, a flood closes the
connection, and panels per agent are capped. Adversarial frame shapes get an error frame, never an exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from softswitch.chat.frames import AGENT, VISITOR, FrameError, parse
from tests.integration.test_chat_hub import Conn, make_hub, visitor


def agent_with_chat(hub, agent_id="1001"):
    panel = Conn()
    hub.agent_open(agent_id, panel)
    s, c = visitor(hub)
    assert s.agent_id == agent_id
    return panel, s, c


def say(hub, agent_id, panel, chat, text="hi"):
    hub.agent_frame(agent_id, panel, json.dumps({"type": "message", "chat": chat, "text": text}, ensure_ascii=False))


def test_an_agent_flood_is_dropped_then_the_panel_closed():
    hub, clock = make_hub(agent_rate=(5.0, 10.0), cut_off_after=20)
    panel, s, c = agent_with_chat(hub)
    for i in range(200):
        say(hub, "1001", panel, s.id, f"spam {i}")
        if panel.closed:
            break
    assert len(c.of("message")) == 10                      # the burst, then nothing
    errors = [e["error"] for e in panel.of("error")]
    assert errors.count("too many frames: slow down (dropped)") == 19
    assert errors[-1] == "too many frames: the chat panel is closed" and panel.closed == (1008, "flood")
    assert hub.counters["agent_rate_limited"] == 20 and hub.counters["agent_cut_off"] == 1
    hub.agent_gone("1001", panel)
    assert not hub.panels and "1001" not in hub.agent_conns
    assert s.agent_id is None and c.of("queued")                # the chat waits for an agent again


def test_an_agent_within_the_budget_is_never_cut_off():
    hub, clock = make_hub(agent_rate=(5.0, 10.0), cut_off_after=3)
    panel, s, c = agent_with_chat(hub)
    for i in range(300):
        clock.t += 0.2                                  # five a second, for a minute
        say(hub, "1001", panel, s.id, f"m{i}")
        if i % 7 == 0:                                  # a burst over the budget now and then: dropped, not cut off
            for _ in range(2):
                say(hub, "1001", panel, s.id)
    assert panel.closed is None and len(c.of("message")) >= 300
    assert hub.counters["agent_cut_off"] == 0 and hub.counters["agent_rate_limited"] > 0


def test_panels_of_one_agent_share_its_budget_and_are_capped():
    hub, clock = make_hub(agent_rate=(5.0, 10.0), agent_panels=2)
    panel, s, c = agent_with_chat(hub)
    other = Conn()
    assert hub.admit_agent("1001") is None
    hub.agent_open("1001", other)
    assert hub.admit_agent("1001") == (429, "too many chat panels open for this agent (at most 2)")
    assert hub.admit_agent("9999")[0] == 403 and hub.counters["agent_refused"] == 2
    for i in range(10):
        say(hub, "1001", panel if i % 2 else other, s.id)
    assert len(c.of("message")) == 10
    say(hub, "1001", other, s.id)                     # the second panel's own budget is untouched, the agent's not
    assert other.of("error")[-1]["error"] == "too many frames: slow down (dropped)"
    hub.agent_gone("1001", other)
    assert hub.admit_agent("1001") is None


def test_bytes_per_second_per_connection():
    hub, clock = make_hub(max_frame=1024, byte_rate=(1024.0, 4096.0), rate=(100.0, 100.0),
                          agent_rate=(100.0, 100.0))
    panel, s, c = agent_with_chat(hub)
    big = json.dumps({"type": "message", "text": "é" * 400}, ensure_ascii=False)
    size = len(big.encode())                            # 800 bytes of text as UTF-8: what the budget counts
    assert len(big) < 450 and 800 < size <= 1024
    fit = 4096 // size
    for _ in range(fit + 2):
        hub.visitor_frame(s, big)
    assert len(c.of("message")) == fit and len(c.of("error")) == 2
    assert c.of("error")[-1]["error"] == "too many messages: slow down (dropped)"
    for _ in range(fit + 1):
        say(hub, "1001", panel, s.id, "é" * 400)
    assert len(panel.of("error")) == 1 and panel.of("error")[-1]["error"] == "too many frames: slow down (dropped)"
    clock.t += 1.0                                      # a second's worth of bytes: one more of each
    hub.visitor_frame(s, big)
    assert len(c.of("message")) == 2 * fit + 1


def test_agent_errors_are_answered_and_counted():
    hub, clock = make_hub(max_frame=1024, max_message=100)
    panel, s, c = agent_with_chat(hub)
    bad = [b"\xff\xfe", "[" * 1000, "{" * 500, "9" * 1000, '{"type":"read","chat":"' + s.id + '","upto":' + "9" * 900 + "}",
           '{"type":"message","chat":"nope","text":"x"}', '{"type":"message","chat":"' + s.id + '","text":"\\ud800"}',
           "x" * 5000]
    for data in bad:
        clock.t += 1
        hub.agent_frame("1001", panel, data)
    assert len(panel.of("error")) == len(bad) and hub.counters["bad_frames"] == len(bad) - 1   # but the stale chat
    assert panel.closed is None
    say(hub, "1001", panel, s.id, "still here")
    assert c.of("message")[-1]["text"] == "still here"


# Long runs of one JSON character class, then a byte that breaks it, in each place a frame has text.
RUNS = ["[", "{", '{"a":', "\\", '\\"', "\\u00", "9", "-", ".", "e", " ", "\t", "\u202e", "\x00", "é", "\ud800",
        '"', ",", "1,", "[1,", "\ud83d\ude00"]
BREAKERS = ["", "\x00", "\ud800", '"', "]", "}", "\\", "x", "\x7f", "\udcff"]
SLOTS = ["{}", '{{"type":"message","text":"{}"}}', '{{"type":"message","chat":"c","text":"{}"}}',
         '{{"type":"read","upto":{}}}', '{{"type":"typing","on":{}}}', '{{"type":"{}"}}', '{{"{}":1}}',
         '{{"type":"transfer","chat":"c","queue":"{}"}}']


@settings(max_examples=500, deadline=None)
@given(slot=st.sampled_from(SLOTS), run=st.sampled_from(RUNS), breaker=st.sampled_from(BREAKERS),
       n=st.sampled_from([1, 63, 64, 65, 1000, 4095, 4096, 8191]), kinds=st.sampled_from([VISITOR, AGENT]))
def test_adversarial_shapes_get_a_frame_or_frame_error(slot, run, breaker, n, kinds):
    data = slot.format((run * n)[: max(n, 1)] + breaker)
    try:
        f = parse(data, 8192, 2000, kinds)
    except FrameError as exc:
        assert str(exc)
        json.dumps({"type": "error", "error": str(exc)})        # the error frame can be sent
        return
    json.dumps(f)
    assert f["type"] in kinds


@pytest.mark.parametrize("shape", ["[" * 8190, "{" * 8190, '{"a":' * 1600, "9" * 8190, "-" + "0" * 8000,
                                   "1e" + "9" * 8000, '"' + "\\u0041" * 1300 + '"'])
def test_deep_nesting_and_huge_numbers_at_the_frame_limit(shape):
    with pytest.raises(FrameError):
        parse(shape, 8192, 2000, AGENT)


def test_address_budgets_of_gone_visitors_do_not_pile_up():
    hub, clock = make_hub(address_rate=(20.0, 40.0))
    limits = hub.addresses
    for i in range(100_000):                 # a spray of addresses, each using part of its budget, then leaving
        address = f"2001:db8::{i:x}"
        limits.opened(address)
        assert limits.take(address)
        limits.closed(address)
        clock.t += 0.001
    assert len(limits._buckets) < 5000       # the full ones were swept as the table grew
    clock.t += 10
    for i in range(3000):
        limits.opened(f"198.51.100.{i}")
        limits.closed(f"198.51.100.{i}")
    assert len(limits._buckets) < 1100


def test_the_visitors_name_and_page_lose_controls_and_bidi_overrides():
    hub, clock = make_hub()
    c = Conn()
    page = "https://shop.example/\x00cart\u202e" + "x" * 5000
    s = hub.visitor_open(c, "chat", "https://shop.example", "192.0.2.1", page, "\x00\u202eBob\x1b[31m " + "\t" * 5000)
    assert s.visitor == "Bob[31m" and s.page.startswith("https://shop.example/cart") and len(s.page) == 500
    s2 = hub.visitor_open(Conn(), "chat", "https://shop.example", "192.0.2.1", "", "\u2066\u2069 ")
    assert s2.visitor == "Visitor"
