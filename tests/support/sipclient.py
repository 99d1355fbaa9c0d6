"""A tiny raw SIP client for tests: sends bytes over UDP or TCP and collects parsed responses."""

from __future__ import annotations

import socket
import time

from softswitch.sip.parser import parse_message, split_head
from softswitch.sip.framing import StreamFramer


class UdpClient:
    def __init__(self, server: tuple[str, int], bind: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(bind)
        self.addr = self.sock.getsockname()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def recv_raw(self, timeout: float = 2.0) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65535)
        except socket.timeout:
            return None
        return data

    def recv(self, timeout: float = 2.0):
        data = self.recv_raw(timeout)
        return None if data is None else parse_message(data)

    def recv_all(self, quiet: float = 0.3) -> list:
        out = []
        while (m := self.recv(quiet)) is not None:
            out.append(m)
        return out

    def recv_until(self, done, timeout: float = 20.0) -> list:
        """Messages until done(messages so far) holds, or `timeout` in all has passed (that bounds a hang:
        how long the peer takes is not what a test checks)."""
        out: list = []
        deadline = time.monotonic() + timeout
        while not done(out) and (left := deadline - time.monotonic()) > 0:
            m = self.recv(left)
            if m is None:
                break
            out.append(m)
        return out

    def close(self) -> None:
        self.sock.close()


class TcpClient:
    def __init__(self, server: tuple[str, int]) -> None:
        self.sock = socket.create_connection(server, timeout=5)
        self.framer = StreamFramer()
        self.pending: list = []

    def send(self, data: bytes, chunk: int | None = None) -> None:
        if chunk is None:
            self.sock.sendall(data)
            return
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(data), chunk):
            try:
                self.sock.sendall(data[i:i + chunk])
            except (BrokenPipeError, ConnectionResetError):
                return        # the server gave up on the stream (fatal framing error): read its answer

    def recv(self, timeout: float = 2.0):
        deadline = time.monotonic() + timeout
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535)
            except socket.timeout:
                return None
            if not data:
                return None
            self.pending.extend(x for x in self.framer.feed(data) if not isinstance(x, type(None)))
        return self.pending.pop(0)

    def closed_by_peer(self, timeout: float = 3.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65535)
                if not data:
                    return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def options_request(port: int, *, call_id: str = "opt-1", branch: str = "z9hG4bK-opt1", cseq: int = 1,
                    via_host: str = "127.0.0.1", via_port: int = 5999, transport: str = "UDP",
                    extra: str = "") -> bytes:
    return (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} {via_host}:{via_port};branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\nTo: <sip:127.0.0.1:{port}>\r\nFrom: <sip:tester@127.0.0.1>;tag=t1\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} OPTIONS\r\n{extra}Content-Length: 0\r\n\r\n").encode()
