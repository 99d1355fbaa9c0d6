"""Which registered binding of a softphone to ring: one rule for the agent offer, the WebRTC probe, outbound
calls and supervisors, so the media prepared for a phone is the media the rung phone gets.

The rule: among live bindings (not expired at `now`), the highest q wins (RFC 3261 s. 16.6 orders
targets by q; an absent q counts as 0, below any stated preference), and among equal q the most recently
registered one (the phone most likely still there).
"""

from __future__ import annotations

from typing import Iterable

from ..sip.errors import SipError
from ..sip.uri import SipURI, parse_uri
from ..transport.base import Target


def live(bindings: Iterable, now: float) -> list:
    return [b for b in bindings if b.expires_at > now]


def rank(b) -> tuple[float, float]:
    return (b.q or 0.0, b.registered_at)


def choose_binding(bindings: Iterable, now: float):
    """The binding to ring, or None when the phone has no live binding."""
    alive = live(bindings, now)
    return max(alive, key=rank) if alive else None


def ring_target(b, find_connection) -> Target:
    """Where requests for a registered phone go: over its own connection for stream transports
    (`find_connection(proto, host, port)`); over UDP to the Contact when it names the address the REGISTER came
    from (no NAT between), else to that source address (received/rport), which is what gets through a NAT."""
    proto, host, port = b.source
    if proto != "udp":
        return Target(proto, host, port, find_connection(proto, host, port))
    try:
        uri = parse_uri(b.contact)
    except SipError:
        uri = None
    if isinstance(uri, SipURI) and uri.host == host and uri.port and not b.path:
        return Target("udp", host, uri.port)
    return Target("udp", host, port)
