"""The WebRTC probe decision: before offering a call to an agent whose media the switch anchors, decide
whether the phone to be rung is a browser (ICE/DTLS-SRTP on its side) or a plain RTP phone. Asked of the
same binding the offer then rings: is_browser(choose_binding(...)), never a rule of its own."""

from __future__ import annotations

BROWSER_TRANSPORTS = ("ws", "wss")


def is_browser(binding) -> bool:
    return binding is not None and binding.source[0] in BROWSER_TRANSPORTS
