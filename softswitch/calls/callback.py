"""Callbacks: a waiting caller presses the queue's callback digit, keeps their place and hangs up; when an
agent answers the call in turn, the customer is called back."""

from __future__ import annotations


def accepts(call, digit: str, *, callback_digit: str | None, waiting_unoffered: bool, anchored: bool) -> bool:
    """The digit books a callback: it is the queue's callback digit, the call waits in the queue with no agent
    ringing, has no callback yet, and the switch anchors the media (it plays the confirmation)."""
    return (bool(callback_digit) and callback_digit == digit and waiting_unoffered and not call.callback
            and anchored)


def customer_contact(contacts, from_uri: str) -> str:
    """Where to call the customer back: their Contact, else their From."""
    return str(contacts[0].uri) if contacts and contacts != "*" else from_uri
