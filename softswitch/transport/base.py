"""What the transports and the endpoint share: where a message goes, and how it got here."""

from __future__ import annotations

from typing import Any, NamedTuple


class Target(NamedTuple):
    """A destination: transport name ('udp', 'tcp', 'tls', 'ws', 'wss'), address, and for stream transports
    the connection the message belongs to (responses go back on the connection the request came in on)."""
    proto: str
    host: str
    port: int
    conn: Any = None

    @property
    def reliable(self) -> bool:
        return self.proto != "udp"

    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)
