"""The WebRTC probe decision: before offering a call to an agent whose media the switch anchors, decide
whether the phone to be rung is a browser (ICE/DTLS-SRTP on its side) or a plain RTP phone. Asked of the
same binding the offer then rings (bindings.choose_binding)."""

from __future__ import annotations

from .bindings import choose_binding

BROWSER_TRANSPORTS = ("ws", "wss")


def is_browser(binding) -> bool:
    return binding is not None and binding.source[0] in BROWSER_TRANSPORTS


def wants_webrtc(bindings, now: float) -> bool:
    return is_browser(choose_binding(bindings, now))
