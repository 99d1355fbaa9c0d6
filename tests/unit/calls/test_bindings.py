"""One rule picks the binding to ring (offer, WebRTC probe, outbound, supervisor): highest q, then newest."""

from __future__ import annotations

from dataclasses import dataclass

from softswitch.calls.bindings import choose_binding
from softswitch.calls.probe import is_browser


@dataclass
class B:
    name: str
    q: float | None
    registered_at: float
    expires_at: float = 1000.0
    source: tuple = ("udp", "127.0.0.1", 5062)


def test_highest_q_wins_over_a_newer_binding():
    desk, browser = B("desk", 1.0, 10.0), B("browser", 0.5, 20.0, source=("wss", "10.0.0.2", 443))
    assert choose_binding([desk, browser], now=100.0) is desk
    assert is_browser(choose_binding([desk, browser], 100.0)) is False     # the probe asks about the phone the offer rings


def test_equal_q_the_newest_wins_and_absent_q_ranks_below_any_q():
    old, new = B("old", None, 10.0), B("new", None, 20.0)
    assert choose_binding([new, old], now=100.0) is new
    stated = B("stated", 0.1, 5.0)
    assert choose_binding([old, new, stated], now=100.0) is stated


def test_expired_bindings_are_never_chosen():
    gone, live = B("gone", 1.0, 30.0, expires_at=50.0), B("live", 0.2, 10.0, expires_at=500.0)
    assert choose_binding([gone, live], now=60.0) is live
    assert choose_binding([gone], now=60.0) is None
    assert choose_binding([], now=0.0) is None


def test_the_probe_sees_a_browser_when_the_chosen_binding_is_websocket():
    browser = B("browser", 1.0, 20.0, source=("ws", "10.0.0.2", 8080))
    assert is_browser(choose_binding([B("desk", 0.5, 30.0), browser], 100.0)) is True
    assert is_browser(None) is False
