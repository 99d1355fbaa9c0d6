"""UDP listener: one datagram is one message (RFC 3261 s. 18.3)."""

from __future__ import annotations

import asyncio
import socket

from .base import Target


class UdpTransport(asyncio.DatagramProtocol):
    proto = "udp"

    def __init__(self, endpoint) -> None:
        self.endpoint = endpoint
        self.transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("", 0)

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.local = transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr) -> None:
        self.endpoint.on_datagram(data, Target("udp", addr[0], addr[1], self))

    def error_received(self, exc: Exception) -> None:
        self.endpoint.log.debug("udp_error", error=str(exc))

    def send(self, data: bytes, target: Target) -> None:
        if self.transport is not None:
            self.transport.sendto(data, (target.host, target.port))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def listen_udp(loop, endpoint, host: str, port: int) -> UdpTransport:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # No SO_REUSEADDR: on Linux it lets a second node bind the same UDP port and silently take its traffic.
    sock = socket.socket(family, socket.SOCK_DGRAM)
    # Bursts of registrations and retransmissions need room in the kernel queue.
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
        except OSError:
            pass
    sock.bind((host, port))
    _, proto = await loop.create_datagram_endpoint(lambda: UdpTransport(endpoint), sock=sock)
    return proto
