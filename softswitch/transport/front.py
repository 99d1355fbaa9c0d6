"""The UDP front: a second process that reads the node's UDP sockets while the node is behind, so that
refusing a storm's excess costs the node nothing.

On a machine with a second core, `softswitch serve` starts it (`server.sip.overload.front`) and it stands by:
the node reads its sockets itself. When the node reads a REGISTER that waited past `queue_delay`, it hands
the sockets over (`Front.engage`): the front reads every
datagram, with the kernel's receive time, and either passes it to the node through a local SOCK_SEQPACKET
socket (one per listener: source address, receive time and the datagram) or answers it 503 or drops it, as
the gate decides (softswitch/security/gate.py). The node reads the local socket and answers on the UDP
socket itself (both processes hold it), so a served request costs it what it did, and a refused one nothing.
How far behind the node is: the front counts what it passed on, the node counts what it handled, in a
shared page. Once the front has not seen the node behind for CALM seconds, the node reads its sockets
itself again (`Front.disengage`).

The node sends the front its guard's bans and, on a reload, new settings over the same local socket. The
front exits when the node closes its end (the node stopped or died); if the front dies, the node reads the
UDP sockets itself again. Run as `python -m softswitch.transport.front SETTINGS_JSON` with the descriptors
it names; the node does that (`spawn_front`).
"""

from __future__ import annotations

import asyncio
import json
import mmap
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time

from ..security.gate import PASS, Gate, GateOptions, gate_settings, guard_from, guard_options_from, guard_settings
from ..security.guard import GuardOptions
from .udp import _ANC, _TS, BUFFER, FRONT_HEADER, SO_RCVBUFFORCE, SO_SNDBUFFORCE, SO_TIMESTAMPNS

HANDLED = struct.Struct("=Q")      # at 0, written by the node: datagrams handled
FRONT = struct.Struct("=QQQQdQd")  # at 8, written by the front: ready, passed, rejected, dropped, the node's wait,
                                   # shedding, when the node was last seen behind
CALM = 2.0                         # seconds without the node behind after which it reads its sockets itself again
RING = 1 << 16                     # receive times of the datagrams passed on and not handled yet (at most)
BATCH = 64
TICK = 0.1                         # seconds between two updates of the counters the node reads (/metrics)


def available() -> bool:
    """Linux with a second core for it: elsewhere the node reads its sockets itself."""
    if not sys.platform.startswith("linux") or not hasattr(os, "memfd_create"):
        return False
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except OSError:
        return False


# --- the front process -----------------------------------------------------------------------------------
class _Lane:
    __slots__ = ("udp", "pair", "host_cache")

    def __init__(self, udp: socket.socket, pair: socket.socket) -> None:
        self.udp, self.pair = udp, pair
        self.host_cache: dict[str, bytes] = {}


class FrontProcess:
    def __init__(self, settings: dict, lanes: list[_Lane], page: mmap.mmap) -> None:
        self.lanes = lanes
        self.page = page
        self.gate = Gate(GateOptions(**settings["gate"]), guard_from(settings.get("guard")),
                         settings.get("tag", "ovl"), settings.get("server", ""))
        self.sent = 0
        self.stamps = [0.0] * RING      # receive time of the datagram passed on as number i, at i % RING
        self.wait = 0.0
        self.engaged = False            # reading the UDP sockets
        self.poll = None

    def _waited(self, handled: int, now: float) -> float:
        """How long the oldest datagram the node has not handled yet has waited: how far behind it is."""
        backlog = self.sent - handled
        if backlog <= 0:
            return 0.0
        if backlog >= RING:
            return float("inf")
        return now - self.stamps[handled % RING]

    def run(self) -> None:
        poll = self.poll = select.epoll()
        by_fd = {}
        for lane in self.lanes:
            lane.udp.setblocking(False)
            lane.pair.setblocking(False)
            by_fd[lane.udp.fileno()] = (lane, False)
            by_fd[lane.pair.fileno()] = (lane, True)
            poll.register(lane.pair.fileno(), select.EPOLLIN)     # the UDP sockets once engaged
        self._publish()
        next_tick = time.monotonic()
        while True:
            for fd, _ev in poll.poll(TICK):
                lane, control = by_fd[fd]
                if control:
                    if not self._control(lane):
                        return
                else:
                    self._read(lane)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK
                self.wait = self._waited(HANDLED.unpack_from(self.page, 0)[0], time.time())
                self._publish()

    def _publish(self) -> None:
        """The counters the node reads; written first, they say the front is ready."""
        g = self.gate
        s = g.stats
        FRONT.pack_into(self.page, 8, 1, s["passed"], s["rejected"], s["dropped"], self.wait, g.shedding,
                        g.last_late)

    def _read(self, lane: _Lane) -> None:
        recvmsg, send, sort, page, unpack = lane.udp.recvmsg, lane.pair.send, self.gate.sort, self.page, \
            HANDLED.unpack_from
        hosts, pack, stamps, waited, now = lane.host_cache, FRONT_HEADER.pack, self.stamps, self._waited, time.time
        for _ in range(BATCH):
            try:
                data, anc, _flags, addr = recvmsg(65536, _ANC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:             # an ICMP error reported on the socket: the next read goes on
                continue
            if anc:
                sec, ns = _TS(anc[0][2])
                stamp = sec + ns * 1e-9
            else:
                stamp = time.time()
            host = addr[0]
            verdict, reply = sort(data, host, waited(unpack(page, 0)[0], now()), stamp)
            if verdict is PASS:
                raw = hosts.get(host)
                if raw is None:
                    if len(hosts) > 4096:
                        hosts.clear()
                    raw = hosts[host] = host.encode()
                try:
                    send(b"".join((pack(stamp, addr[1], len(raw)), raw, data)))
                    stamps[self.sent % RING] = stamp
                    self.sent += 1
                except (BlockingIOError, InterruptedError):
                    self.gate.stats["dropped"] += 1     # the local buffer is full: the node is not reading
            elif reply is not None:
                try:
                    lane.udp.sendto(reply, addr)
                except OSError:
                    pass

    def _control(self, lane: _Lane) -> bool:
        """Messages from the node; False when it closed its end."""
        while True:
            try:
                msg = lane.pair.recv(65536)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            if not msg:
                return False
            order = json.loads(msg)
            if "engage" in order:
                self._engage(order["engage"])
            if "ban" in order and self.gate.guard is not None:
                self.gate.guard.hold(order["ban"], time.time() + order["for"])
            if "gate" in order:
                self.gate.reconfigure(GateOptions(**order["gate"]))
            if "guard" in order and self.gate.guard is not None and order["guard"]:
                self.gate.guard.reconfigure(guard_options_from(order["guard"]))

    def _engage(self, on: bool) -> None:
        """Read the UDP sockets (the node found itself behind: a run of lateness starts) or leave them to the
        node again."""
        if on == self.engaged:
            return
        self.engaged = on
        for lane in self.lanes:
            if on:
                self.poll.register(lane.udp.fileno(), select.EPOLLIN)
            else:
                self.poll.unregister(lane.udp.fileno())
        if on:
            self.gate.engage(time.time())
        self._publish()


def main(argv: list[str]) -> int:
    # A ^C at the terminal, a service manager's SIGTERM to the whole group, a SIGHUP: the node's to handle; the
    # front ends when the node closes its end (as it stops, or dies)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    settings = json.loads(argv[1])
    page = mmap.mmap(settings["page"], mmap.PAGESIZE)
    lanes = [_Lane(socket.socket(fileno=u), socket.socket(fileno=p)) for u, p in settings["lanes"]]
    for lane in lanes:
        try:
            lane.udp.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass
    FrontProcess(settings, lanes, page).run()
    return 0


# --- the node's side -------------------------------------------------------------------------------------
class Front:
    """The node's handle on its front process: the counters page, the local sockets, the child."""

    def __init__(self, proc: subprocess.Popen, page: mmap.mmap, pairs: list[socket.socket], log) -> None:
        self.proc = proc
        self.page = page
        self.pairs = pairs
        self.log = log
        self.handled = 0
        self.transports: list = []      # the UdpTransports it reads for while engaged
        self.engaged = False

    @property
    def ready(self) -> bool:
        return FRONT.unpack_from(self.page, 8)[0] == 1

    def count(self, n: int) -> None:
        """`n` more datagrams handled: the front reads the running total. Engaged, the node takes its sockets
        back once the front has not seen it behind for CALM seconds."""
        self.handled += n
        HANDLED.pack_into(self.page, 0, self.handled)
        if self.engaged:
            shedding, last_late = FRONT.unpack_from(self.page, 8)[5:]
            if not shedding and time.time() - last_late >= CALM:
                self.disengage()

    def engage(self) -> None:
        """The node is behind (it read a REGISTER that waited past `queue_delay`): the front reads the UDP
        sockets from now on."""
        if self.engaged or not self.pairs:
            return
        self.engaged = True
        for u in self.transports:
            u.read_directly(False)
        self.tell({"engage": True})
        self.log.warning("udp_front_engaged")

    def disengage(self) -> None:
        self.engaged = False
        for u in self.transports:
            u.read_directly(True)
        self.tell({"engage": False})
        self.log.info("udp_front_disengaged")

    @property
    def stats(self) -> dict[str, int]:
        passed, rejected, dropped = FRONT.unpack_from(self.page, 8)[1:4]
        return {"passed": passed, "rejected": rejected, "dropped": dropped}

    @property
    def wait(self) -> float:
        """Seconds the oldest datagram passed on and not handled yet had waited, at the front's last look."""
        return FRONT.unpack_from(self.page, 8)[4]

    def tell(self, order: dict) -> None:
        if not self.pairs:
            return
        try:
            self.pairs[0].send(json.dumps(order).encode())
        except OSError as exc:
            self.log.debug("udp_front_tell_failed", error=str(exc))

    def ban(self, host: str, seconds: float) -> None:
        self.tell({"ban": host, "for": seconds})

    async def started(self, wait: float = 10.0) -> bool:
        """True once the front reads the sockets; False (and the front gone) when it did not within `wait` s."""
        deadline = time.monotonic() + wait
        while not self.ready:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.warning("udp_front_failed", exit=self.proc.poll())
                self.close()
                return False
            await asyncio.sleep(0.01)
        return True

    def close(self) -> None:
        for p in self.pairs:
            p.close()                   # the front sees its end close and exits
        self.pairs = []
        try:
            self.proc.wait(1.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def spawn_front(udp_socks: list[socket.socket], gate: GateOptions, guard: GuardOptions | None, tag: str,
                server: str, log) -> Front | None:
    """Start the front process for these UDP sockets (`Front.started` says when it reads them); None when it
    cannot be started (the node then reads its sockets itself)."""
    fd = os.memfd_create("softswitch-front")
    os.ftruncate(fd, mmap.PAGESIZE)
    page = mmap.mmap(fd, mmap.PAGESIZE)
    mine, theirs = [], []
    for _ in udp_socks:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for s, opt, force in ((b, socket.SO_SNDBUF, SO_SNDBUFFORCE), (a, socket.SO_RCVBUF, SO_RCVBUFFORCE)):
            for o in (opt, force):
                try:
                    s.setsockopt(socket.SOL_SOCKET, o, BUFFER)
                except OSError:
                    pass
        mine.append(a)
        theirs.append(b)
    settings = {"page": fd, "lanes": [[u.fileno(), b.fileno()] for u, b in zip(udp_socks, theirs)],
                "gate": gate_settings(gate), "guard": guard_settings(guard), "tag": tag, "server": server}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    try:
        proc = subprocess.Popen([sys.executable, "-m", "softswitch.transport.front", json.dumps(settings)],
                                pass_fds=[fd, *(u.fileno() for u in udp_socks), *(b.fileno() for b in theirs)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env, cwd=root)
    except OSError as exc:
        log.warning("udp_front_failed", error=str(exc))
        for a in mine:
            a.close()
        return None
    finally:
        os.close(fd)
        for b in theirs:
            b.close()
    return Front(proc, page, mine, log)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
