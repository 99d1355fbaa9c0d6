"""The endpoint's outgoing stream connections over real sockets on 127.0.0.1: messages sent while a connection
opens share it, in order; the queue is bounded; a refused or timed-out connect fails the client transactions
waiting on that destination at once (a transport error, not Timer F); a closed connection is opened again by the
next message; TLS is dialled only to a destination given a policy. Waits are for conditions; their deadlines only
bound a hang."""

from __future__ import annotations

import asyncio
import socket
import ssl

from softswitch.endpoint import Endpoint
from softswitch.sip.message import Request
from softswitch.sip.uri import parse_uri
from softswitch.transport.base import Target
from softswitch.transport.connector import ClientTls, client_context


class Peer:
    """A TCP server that counts connections and collects what each receives (optionally never answering a
    TLS handshake: it reads and ignores)."""

    def __init__(self) -> None:
        self.connections: list[bytearray] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _conn(self, reader, writer) -> None:
        buf = bytearray()
        self.connections.append(buf)
        self.writers.append(writer)
        while data := await reader.read(65536):
            buf.extend(data)

    def close(self) -> None:
        self.server.close()
        for w in self.writers:
            w.close()


async def until(cond, what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def options(ep: Endpoint, target: Target, n: int, events: list) -> None:
    via = f"SIP/2.0/{target.proto.upper()} 127.0.0.1:5060;branch={ep.layer.new_branch()}"
    req = Request("OPTIONS", parse_uri(f"sip:127.0.0.1:{target.port}"),
                  [["Via", via], ["Max-Forwards", "70"], ["From", "<sip:a@127.0.0.1>;tag=1"],
                   ["To", "<sip:b@127.0.0.1>"], ["Call-ID", f"c{n}"], ["CSeq", f"{n} OPTIONS"]])
    ep.send_request(req, target, lambda event, tx, msg: events.append((n, event)))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(coro):
    return asyncio.run(coro)


def test_messages_sent_while_connecting_share_one_connection_in_order_and_a_closed_one_is_reopened():
    async def main():
        ep = Endpoint(asyncio.get_running_loop())
        peer = Peer()
        port = await peer.start()
        target = Target("tcp", "127.0.0.1", port)
        events: list = []
        for n in range(10):
            options(ep, target, n, events)
        assert len(ep.connector.pending) == 1            # one connect under way, the ten messages queued on it
        await until(lambda: peer.connections and peer.connections[0].count(b"OPTIONS sip:") == 10, "ten messages")
        assert len(peer.connections) == 1
        text = bytes(peer.connections[0])
        assert [text.index(f"Call-ID: c{n}\r\n".encode()) for n in range(10)] == \
            sorted(text.index(f"Call-ID: c{n}\r\n".encode()) for n in range(10))
        # the peer closes the connection: the next message opens a new one
        peer.writers[0].close()
        await until(lambda: ep.find_connection("tcp", "127.0.0.1", port) is None, "the connection to close")
        options(ep, target, 10, events)
        await until(lambda: len(peer.connections) == 2 and b"Call-ID: c10" in peer.connections[1], "a new one")
        assert ep.connector.stats == {"opened": 2, "failed": 0, "dropped": 0}
        ep.stop()
        peer.close()
    run(main())


def test_the_queue_while_connecting_is_bounded():
    async def main():
        ep = Endpoint(asyncio.get_running_loop())
        ep.connector.max_queued = 3
        peer = Peer()
        port = await peer.start()
        target = Target("tcp", "127.0.0.1", port)
        for n in range(5):
            ep._send(f"MESSAGE {n}\r\n".encode(), target)
        assert ep.connector.stats["dropped"] == 2
        await until(lambda: peer.connections and peer.connections[0].count(b"MESSAGE") == 3, "three messages")
        assert bytes(peer.connections[0]) == b"MESSAGE 0\r\nMESSAGE 1\r\nMESSAGE 2\r\n"
        ep.stop()
        peer.close()
    run(main())


def test_a_refused_connection_fails_the_waiting_transactions_at_once():
    async def main():
        ep = Endpoint(asyncio.get_running_loop())
        port = closed_port()
        events: list = []
        for n in range(3):
            options(ep, Target("tcp", "127.0.0.1", port), n, events)
        # Timer F would say "timeout" after 32 s; the failed connect says "error" as soon as it is known
        await until(lambda: len(events) == 3, "three transport errors")
        assert sorted(events) == [(0, "error"), (1, "error"), (2, "error")]
        assert ep.connector.stats["failed"] == 1
        assert "refused" in ep.connector.last_error[("tcp", "127.0.0.1", port)].lower()
        ep.stop()
    run(main())


def test_a_tls_peer_that_never_answers_the_handshake_times_out():
    async def main():
        ep = Endpoint(asyncio.get_running_loop())
        peer = Peer()                  # accepts TCP, never speaks TLS
        port = await peer.start()
        ep.connector.tls[("127.0.0.1", port)] = ClientTls("carrier.test", connect_timeout=0.3)
        events: list = []
        options(ep, Target("tls", "127.0.0.1", port), 1, events)
        await until(lambda: events, "the transport error")
        assert events == [(1, "error")]
        assert ep.connector.last_error[("tls", "127.0.0.1", port)] == "no connection within 0.3 s"
        assert len(peer.connections) == 1 and len(ep.connections) == 0
        ep.stop()
        peer.close()
    run(main())


def test_tls_is_dialled_only_to_a_destination_with_a_policy():
    async def main():
        ep = Endpoint(asyncio.get_running_loop())
        peer = Peer()
        port = await peer.start()
        # a TLS phone whose connection is gone: its port cannot be dialled, the message is dropped
        ep._send(b"BYE sip:x SIP/2.0\r\n\r\n", Target("tls", "127.0.0.1", port))
        assert ep.connector.pending == {} and ep.connector.stats["opened"] == ep.connector.stats["failed"] == 0
        ep.stop()
        peer.close()
    run(main())


def test_client_contexts_ask_for_tls_1_2_or_later_and_check_what_the_policy_says():
    checked = client_context(ClientTls("sbc.carrier.test"))
    assert checked.minimum_version == ssl.TLSVersion.TLSv1_2
    assert checked.check_hostname and checked.verify_mode == ssl.CERT_REQUIRED
    pinned = client_context(ClientTls("sbc.carrier.test", pins=(b"\0" * 32,)))   # the pin is checked instead
    assert pinned.minimum_version == ssl.TLSVersion.TLSv1_2 and pinned.verify_mode == ssl.CERT_NONE
    lab = client_context(ClientTls("sbc.carrier.test", verify=False))
    assert not lab.check_hostname and lab.verify_mode == ssl.CERT_NONE
