"""What shedding costs per late datagram, in process: SIPp-shaped REGISTERs that waited past the overload bound,
sorted by `OverloadPolicy.shed` alone and through the UDP listener's `_admit_late` (the source filter, the
guard, and the 503 sent with sendto on a real socket on 127.0.0.1), per kind:

  - new: a REGISTER without credentials (answered 503 + Retry-After);
  - auth: the second half of a challenge, with credentials (admitted);
  - copy: a byte-identical copy of a request taken in (dropped by its hash);
  - resent: a copy whose bytes differ (another Via received/rport, a new User-Agent) with the same top-Via branch,
    method and CSeq (dropped by its request key).

Goodput at 2x capacity is about (1 - 2s)/(1 - s) of capacity with s = shed cost / cost of a full registration:
90% takes s <= ~9%, a handful of microseconds.

    .venv/bin/python benchmarks/shed_cost.py [--n 20000] [--repeat 5] [--against /path/to/other/checkout] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # this tree's softswitch
from softswitch.security import overload  # noqa: E402
from softswitch.transport import udp  # noqa: E402

# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^shed: \d+\.\d+ us per new REGISTER answered 503"

AUTH = ('Authorization: Digest username="{user}",realm="bench.test",uri="sip:127.0.0.1:5060",'
        'nonce="3f1c2a9b8e7d6c5b4a39281706f5e4d3",response="0a1b2c3d4e5f60718293a4b5c6d7e8f9",algorithm=MD5\r\n')


def register(i: int, cseq: int = 1, auth: bool = False, agent: str = "SIPp", port: int = 6000) -> bytes:
    """The REGISTER of tools/sipp/register_auth.xml as SIPp sends it for call number `i`."""
    user = 100000 + i % 10000
    return (f"REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-4242-{i}-0;rport\r\n"
            f"From: <sip:{user}@bench.test>;tag=4242SIPpTag00{i}\r\nTo: <sip:{user}@bench.test>\r\n"
            f"Call-ID: {i}-4242@127.0.0.1\r\nCSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:{user}@127.0.0.1:{port};transport=UDP>\r\n"
            f"{AUTH.format(user=user) if auth else ''}"
            f"Max-Forwards: 70\r\nExpires: 3600\r\nUser-Agent: {agent}\r\nContent-Length: 0\r\n\r\n").encode()


def datagrams(n: int) -> dict[str, list[bytes]]:
    return {"new": [register(i) for i in range(n)],
            "auth": [register(i, 2, auth=True) for i in range(n)],
            "copy": [register(i) for i in range(n)],
            "resent": [register(i, agent="SIPp/resent", port=6001) for i in range(n)]}


def load(tree: str | None):
    """The overload policy and UDP listener modules of this tree, or of `tree` (another checkout, loaded beside
    this one under other names, so both are measured in one process, chunk by chunk in turn: on a shared
    machine, separate runs differ by more than the change being measured)."""
    if tree is None:
        return overload, udp
    out = []
    for pkg, name in (("softswitch.security", "overload"), ("softswitch.transport", "udp")):
        path = os.path.join(tree, *pkg.split("."), name + ".py")
        spec = importlib.util.spec_from_file_location(f"{pkg}._against_{name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        out.append(module)
    return tuple(out)


class Variant:
    """One tree's policy and listener, with its own datagrams (a bytes object caches its hash)."""
    def __init__(self, label: str, modules, n: int, through_udp: str) -> None:
        self.label, (self.ovl, udp_module) = label, modules
        self.data = datagrams(n)
        self.udp = self.peer = self.loop = None
        if through_udp:
            self.loop = asyncio.new_event_loop()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)    # as listen_udp asks
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            self.peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.peer.bind(("127.0.0.1", 0))
            self.peer.setblocking(False)
            self.udp = udp_module.UdpTransport(_Endpoint(), sock, self.loop)
            self.udp.allowed = lambda host, ua: True
            self.addr = self.peer.getsockname()
            self.listener = sock.getsockname()
            if through_udp == "socket":         # every datagram read 0.5 s after the kernel stamped it
                self.udp.wall = lambda: time.time() + 0.5
        self.fresh()

    def fresh(self) -> None:
        self.policy = self.ovl.OverloadPolicy(self.ovl.OverloadOptions(sustain=0.0, queue_delay=0.2,
                                                                       drop_after=2.0), tag="b1a2", server="bench")
        if self.udp is not None:
            self.udp.overload = self.policy

    def read(self, items: list[bytes]) -> float:
        """CPU seconds per datagram to read `items` from the socket and sort them: recvmsg, the kernel stamp,
        the policy, the 503 sent back (the datagrams are sent untimed first)."""
        for data in items:
            self.peer.sendto(data, self.listener)
        before = sum(self.policy.stats.values())
        t0 = time.process_time()
        for _ in range(len(items) // udp.BATCH + 2):
            self.udp._on_readable()
        spent = time.process_time() - t0
        read = sum(self.policy.stats.values()) - before
        assert read >= len(items) * 0.9, (read, len(items))     # not lost in the kernel's queue
        return spent / read

    def sort(self, data: bytes, age: float, now: float):
        if self.udp is not None:
            return self.udp._admit_late(data, self.addr, age, now)
        return self.policy.shed(data, age, now)

    def drain(self) -> None:
        while self.peer is not None:
            try:
                self.peer.recv(65536)
            except BlockingIOError:
                return

    def close(self) -> None:
        if self.udp is not None:
            self.udp.close()
            self.peer.close()
            self.loop.close()

class _Endpoint:
    """What the listener asks of the endpoint: the per-source filter (admits all, as for an exempt source), and
    the handler of what is admitted (here it does nothing)."""
    def __init__(self) -> None:
        self.source_filter = lambda target: True
        self.log = None

    def on_datagram(self, data: bytes, target) -> None:
        pass


def run_kind(kind: str, items: list[bytes], sort, originals: list[bytes] | None) -> float:
    """Seconds of CPU per datagram of `kind` through `sort(data, age, now)`; copies have their originals taken
    in first (untimed)."""
    if originals is not None:
        for data in originals:
            sort(data, 0.5, 100.0)
    # the copies were sent before their originals were taken in at 100.0: they only waited behind them
    t0 = time.process_time()
    for data in items:
        sort(data, 0.5, 100.0)
    return (time.process_time() - t0) / len(items)


CHUNK = 500
EXPECT = {"new": "rejected", "auth": "admitted_late", "copy": "dropped_retransmission",
          "resent": "dropped_retransmission"}


def measure(n: int, through_udp: str, trees: list[tuple[str, str | None]]) -> dict[str, dict[str, float]]:
    """One round of every kind on fresh policies: {tree label: {kind: CPU seconds per datagram}}, the median
    over chunks of CHUNK datagrams (a chunk that shared the CPU with another process counts once)."""
    variants = [Variant(label, load(tree), n, through_udp) for label, tree in trees]
    out: dict[str, dict[str, float]] = {v.label: {} for v in variants}
    try:
        for kind in ("new", "auth") if through_udp == "socket" else ("new", "auth", "copy", "resent"):
            copies = kind in ("copy", "resent")         # their originals taken in (answered 503) first
            costs: dict[str, list[float]] = {v.label: [] for v in variants}
            for v in variants:
                if copies:
                    v.fresh()
                v.before = dict(v.policy.stats)
            for j in range(0, n, CHUNK):
                for v in variants:                      # in turn, chunk by chunk
                    originals = v.data["new"][j:j + CHUNK] if copies else None
                    items = v.data[kind][j:j + CHUNK]
                    costs[v.label].append(v.read(items) if through_udp == "socket" else
                                          run_kind(kind, items, v.sort, originals))
                    v.drain()
            for v in variants:
                out[v.label][kind] = statistics.median(costs[v.label])
                moved = {k for k, c in v.policy.stats.items() if c != v.before.get(k, 0)}
                assert EXPECT[kind] in moved, (v.label, kind, moved)
    finally:
        for v in variants:
            v.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000, help="datagrams per kind per round")
    ap.add_argument("--repeat", type=int, default=5, help="rounds; the figure is the median")
    ap.add_argument("--against", metavar="TREE", help="another checkout (e.g. the last landed commit) measured "
                    "in the same process, in turn")
    ap.add_argument("--quick", action="store_true", help="a smoke run of a fraction of a second")
    args = ap.parse_args()
    n, repeat = (1000, 1) if args.quick else (args.n, args.repeat)
    trees = [("this", None)] + ([(os.path.basename(os.path.abspath(args.against)), args.against)]
                                if args.against else [])
    figures = {}
    for through_udp, name in (("", "OverloadPolicy.shed"), ("listener", "UdpTransport._admit_late"),
                              ("socket", "recvmsg..sendto")):
        rounds = [measure(n, through_udp, trees) for _ in range(repeat)]
        for label, _ in trees:
            med = {k: statistics.median(r[label][k] for r in rounds) for k in rounds[0][label]}
            print(f"{name:24s} {label:>8s}: " + "  ".join(f"{k} {1e6 * v:5.2f} us" for k, v in med.items()))
            if label == "this":
                figures[through_udp] = med
    f, g = figures["listener"], figures["socket"]
    print(f"shed: {1e6 * g['new']:.2f} us per new REGISTER answered 503 (read, sorted, sent; the listener's "
          f"sorting and sending alone {1e6 * f['new']:.2f} us), {1e6 * g['auth']:.2f} us per REGISTER with "
          f"credentials (admitted), {1e6 * f['copy']:.2f} / {1e6 * f['resent']:.2f} us per identical / differing "
          f"copy")


if __name__ == "__main__":
    main()
