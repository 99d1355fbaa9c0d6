"""UDP listener: one datagram is one message (RFC 3261 s. 18.3).

The socket is read directly (recvmsg on a non-blocking socket, from the loop's reader callback) rather than
through a DatagramTransport, because the kernel's receive timestamp (SO_TIMESTAMPNS) comes as ancillary data
that neither asyncio nor uvloop hands to a protocol. The timestamp tells how long a datagram waited in the
receive queue; past the overload policy's bound it is sorted before parsing (softswitch/security/overload.py). Each
handled datagram is timed for the stall watchdog (softswitch/security/watchdog.py).
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from collections import deque

from ..security.watchdog import describe
from .base import Target

# Linux value; Python only names it from 3.14 on. Elsewhere ages read as 0 and overload control stays off.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
_ANC = socket.CMSG_SPACE(16) if hasattr(socket, "CMSG_SPACE") else 0
_TS = struct.Struct("@qq").unpack_from
# Linux values; Python does not name them
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33 if sys.platform.startswith("linux") else None)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32 if sys.platform.startswith("linux") else None)
BUFFER = 16 * 1024 * 1024       # octets of kernel queue asked for, each way: a second of a storm
BATCH = 64              # datagrams per wake-up: timers and other sockets get their turn in between
MAX_PENDING = 10000     # datagrams waiting for a full send buffer before new ones are dropped
# as the front (softswitch/transport/front.py) passes a datagram on: receive time, source port, address length
FRONT_HEADER = struct.Struct("=dHB")


class UdpTransport:
    proto = "udp"

    def __init__(self, endpoint, sock: socket.socket, loop) -> None:
        self.endpoint = endpoint
        self.sock = sock
        self.loop = loop
        self.local: tuple[str, int] = sock.getsockname()[:2]
        self.watchdog = None            # softswitch.security.watchdog.Watchdog, set by the node
        self.overload = None            # softswitch.security.overload.OverloadPolicy, set by the node
        self.allowed = None             # fn(host, user_agent) -> bool: the guard, before an overload 503
        self.stamped = False
        self.wall = time.time           # the kernel stamps datagrams with this clock (tests move it)
        self._pending: deque = deque()
        self._held: list | None = None  # while a batch is read: its answers, sent together after it
        self._writing = False
        self._closed = False
        self._pair: socket.socket | None = None     # the front's local socket (softswitch/transport/front.py)
        self.front = None
        self._direct = True                         # the node reads the UDP socket (not the front)
        if SO_TIMESTAMPNS is not None and _ANC:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self.stamped = True
            except OSError:
                pass
        loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        # The answers to a batch go out after it: a peer reading them (SIPp, a proxy) is woken once per batch
        # rather than once per answer, and a wake-up is most of what a datagram to it costs the kernel here.
        self._held = []
        try:
            self._read_batch()
        finally:
            self._send_held()

    def _send_held(self) -> None:
        held, self._held = self._held, None
        for data, addr in held:
            self._sendto(data, addr)

    def _read_batch(self) -> None:
        recvmsg, ep, handle = self.sock.recvmsg, self.endpoint, self._handle
        for _ in range(BATCH):
            if not self._direct:
                return                  # handed to the front in the middle of the batch
            try:
                data, anc, _flags, addr = recvmsg(65536, _ANC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:      # e.g. an ICMP error reported on the socket: the next read goes on
                ep.log.debug("udp_error", error=str(exc))
                continue
            if anc:
                sec, ns = _TS(anc[0][2])
                handle(data, addr, sec + ns * 1e-9)
            else:
                handle(data, addr, 0.0)

    def _handle(self, data: bytes, addr, stamp: float) -> None:
        """One datagram, received by the kernel at `stamp` (0: not known)."""
        ep, policy, wd = self.endpoint, self.overload, self.watchdog
        if policy is not None and stamp:
            now = self.wall()
            age = now - stamp
            if age > policy.queue_delay:
                if self._direct and self.front is not None and data.startswith(b"REGISTER "):
                    # the front refuses new REGISTERs for the node: it reads the socket from the next datagram
                    # on (behind on calls alone, it would only add its hop to each; call admission sheds those)
                    self.front.engage()
                if not self._admit_late(data, addr, age, now):
                    return
            elif policy.watching:
                policy.take(data, age, now)
        if wd is None:
            ep.on_datagram(data, Target("udp", addr[0], addr[1], self))
            return
        clock = wd.clock
        t0 = clock()
        ep.on_datagram(data, Target("udp", addr[0], addr[1], self))
        dt = clock() - t0
        if wd.observe("udp", dt):
            wd.stall("udp", dt, f"{addr[0]}:{addr[1]}", "udp " + describe(data), data)

    # --- with a front process (softswitch/transport/front.py): its local socket instead of the UDP one ------
    def attach_front(self, pair: socket.socket, front) -> None:
        """What the front passes on arrives on `pair`; while the node is behind, the front reads the UDP socket
        (`read_directly`, switched by `front.engage` and `front.disengage`)."""
        pair.setblocking(False)
        self._pair, self.front = pair, front
        self.loop.add_reader(pair.fileno(), self._on_front_readable)

    def read_directly(self, on: bool) -> None:
        """The node reads its UDP socket itself (on) or leaves it to the front (off)."""
        if on == self._direct or self._closed:
            return
        self._direct = on
        if on:
            self.loop.add_reader(self.sock.fileno(), self._on_readable)
        else:
            self.loop.remove_reader(self.sock.fileno())

    def _on_front_readable(self) -> None:
        self._held = []
        n = 0
        front = self.front
        try:
            n = self._read_front_batch()
        finally:
            self._send_held()
            front.count(n)

    def _read_front_batch(self) -> int:
        recv, handle, unpack, size = self._pair.recv, self._handle, FRONT_HEADER.unpack_from, FRONT_HEADER.size
        n = 0
        for _ in range(BATCH):
            try:
                msg = recv(70000)
            except (BlockingIOError, InterruptedError):
                return n
            except OSError:
                msg = b""
            if not msg:
                self._front_gone()
                return n
            n += 1
            stamp, port, length = unpack(msg)
            end = size + length
            handle(msg[end:], (msg[size:end].decode(), port), stamp)
        return n

    def _front_gone(self) -> None:
        """The front process ended: the node reads its UDP socket itself again."""
        self.endpoint.log.error("udp_front_exited", host=self.local[0], port=self.local[1])
        self.loop.remove_reader(self._pair.fileno())
        self._pair.close()
        self.front.proc.poll()          # reaped, if it has exited
        self._pair = self.front = None
        self.read_directly(True)

    def _admit_late(self, data: bytes, addr, age: float, now: float) -> bool:
        """A datagram that waited past the bound: the overload policy decides (True: handle it as usual).
        Called for every datagram of a storm: no closure, and a Target only for the source filter."""
        source_filter = self.endpoint.source_filter
        if source_filter is not None and not source_filter(Target("udp", addr[0], addr[1], self)):
            return False                # banned: not even looked at
        verdict, reply = self.overload.shed(data, age, now, self.allowed, addr[0])
        if reply is not None:
            self._sendto(reply, addr)
        return verdict == "admit"

    def send(self, data: bytes, target: Target) -> None:
        self._sendto(data, (target.host, target.port))

    def _sendto(self, data: bytes, addr) -> None:
        if self._closed:
            return
        if self._held is not None:
            self._held.append((data, addr))
            return
        if self._pending:
            self._queue(data, addr)
            return
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self._queue(data, addr)
        except OSError as exc:
            self.endpoint.log.debug("udp_send_error", error=str(exc), host=addr[0], port=addr[1])

    def _queue(self, data: bytes, addr) -> None:
        if len(self._pending) >= MAX_PENDING:
            return                      # UDP may lose datagrams; retransmissions cover it
        self._pending.append((data, addr))
        if not self._writing:
            self._writing = True
            self.loop.add_writer(self.sock.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        while self._pending:
            data, addr = self._pending[0]
            try:
                self.sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.endpoint.log.debug("udp_send_error", error=str(exc), host=addr[0], port=addr[1])
            self._pending.popleft()
        self._writing = False
        self.loop.remove_writer(self.sock.fileno())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pair is not None:
            self.loop.remove_reader(self._pair.fileno())
            self._pair.close()
            self._pair = None
        if self._direct:
            self.loop.remove_reader(self.sock.fileno())
        if self._writing:
            self.loop.remove_writer(self.sock.fileno())
        self._pending.clear()
        self.sock.close()


def grow_buffer(sock: socket.socket, opt: int, force: int | None, size: int = BUFFER) -> int:
    """Ask for `size` octets of kernel buffer; past the system's cap (net.core.rmem_max / wmem_max, 208 KB on
    a stock kernel) with the FORCE variant, which a privileged node may use. Returns what was granted (Linux
    reports twice the usable size, as it counts its bookkeeping)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, opt, size)
    except OSError:
        pass
    got = sock.getsockopt(socket.SOL_SOCKET, opt)
    if got < size and force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
            got = sock.getsockopt(socket.SOL_SOCKET, opt)
        except OSError:
            pass                        # not privileged: the cap stands
    return got


async def listen_udp(loop, endpoint, host: str, port: int) -> UdpTransport:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # No SO_REUSEADDR: on Linux it lets a second node bind the same UDP port and silently take its traffic.
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        # Bursts of registrations and retransmissions need room in the kernel queue: when it overflows, the
        # kernel drops datagrams at random (the second halves of challenges too, re-sent 500 ms later, each
        # a new load) before overload control sees them wait. With the stock cap that is within tens of
        # milliseconds; with 4 MB a storm at twice capacity still overflowed it (a 600-octet datagram takes
        # 2 KB of it) around the overload policy's 0.2 s: 20,000 drops in 8 s, 16 MB had a few hundred.
        got = grow_buffer(sock, socket.SO_RCVBUF, SO_RCVBUFFORCE)
        grow_buffer(sock, socket.SO_SNDBUF, SO_SNDBUFFORCE)
        if got < BUFFER:
            endpoint.log.warning("udp_receive_buffer_small", host=host, port=port, kb=got // 2048,
                                 wanted_kb=BUFFER // 1024, fix=f"sysctl -w net.core.rmem_max={BUFFER}")
        sock.bind((host, port))
        sock.setblocking(False)
        return UdpTransport(endpoint, sock, loop)
    except BaseException:
        sock.close()
        raise
