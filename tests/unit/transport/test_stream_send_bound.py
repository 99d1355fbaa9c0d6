"""A stream connection whose peer stops reading is cut off once its send buffer passes the bound."""

from __future__ import annotations

import asyncio

from softswitch.transport.connections import Connections
from softswitch.transport.tcp import MAX_WRITE_BUFFER, StreamConnection


class Transport:
    """What the connection uses of an asyncio transport: bytes written are kept, as a peer that never reads
    leaves them."""
    def __init__(self) -> None:
        self.buffered = 0
        self.aborted = False

    def get_extra_info(self, name):
        return ("10.0.0.9", 5060) if name == "peername" else None

    def write(self, data: bytes) -> None:
        self.buffered += len(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.aborted = True


class Endpoint:
    def __init__(self) -> None:
        self.connections = Connections()

    def now(self) -> float:
        return 0.0


def test_a_peer_that_does_not_read_is_dropped_at_the_bound_and_nothing_more_is_queued():
    async def go():
        ep, t = Endpoint(), Transport()
        conn = StreamConnection(ep)
        conn.connection_made(t)
        assert ep.connections.find("tcp", "10.0.0.9", 5060) is conn
        answer = b"SIP/2.0 200 OK\r\n" + b"X: y\r\n" * 100 + b"\r\n"
        sent = 0
        while not t.aborted and sent < 2 * MAX_WRITE_BUFFER:
            conn.send(answer)
            sent += len(answer)
        assert t.aborted and conn.closed and MAX_WRITE_BUFFER < t.buffered <= MAX_WRITE_BUFFER + len(answer)
        assert ep.connections.find("tcp", "10.0.0.9", 5060) is None and conn not in ep.connections
        conn.send(answer)
        assert t.buffered <= MAX_WRITE_BUFFER + len(answer)
    asyncio.run(go())
