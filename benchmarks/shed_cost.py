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

    .venv/bin/python benchmarks/shed_cost.py [--n 20000] [--repeat 7] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # this tree's softswitch
from softswitch.security.overload import OverloadOptions, OverloadPolicy  # noqa: E402
from softswitch.transport.udp import UdpTransport  # noqa: E402

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


def shedding_policy() -> OverloadPolicy:
    """A policy that sheds from the first late datagram on (no `sustain` to wait for)."""
    return OverloadPolicy(OverloadOptions(sustain=0.0, queue_delay=0.2, drop_after=2.0), tag="b1a2", server="bench")


class _Endpoint:
    """What `_admit_late` asks of the endpoint: the per-source filter (admits all, as for an exempt source)."""
    def __init__(self) -> None:
        self.source_filter = lambda target: True


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


def measure(n: int, through_udp: bool, expect: dict[str, str]) -> dict[str, float]:
    """One round of every kind on a fresh policy (and listener)."""
    data = datagrams(n)
    policy = shedding_policy()
    loop = sock = peer = None
    if through_udp:
        loop = asyncio.new_event_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        udp = UdpTransport(_Endpoint(), sock, loop)
        udp.overload = policy
        udp.allowed = lambda host, ua: True
        addr = peer.getsockname()

        def drain() -> None:
            while True:
                try:
                    peer.recv(65536)
                except BlockingIOError:
                    return

        def sort(d: bytes, age: float, now: float):
            return udp._admit_late(d, addr, age, now)
    else:
        def drain() -> None:
            pass

        def sort(d: bytes, age: float, now: float):
            return policy.shed(d, age, now)
    out = {}
    try:
        for kind in ("new", "auth", "copy", "resent"):
            # a copy's original: taken in (answered 503) before the copy is sorted
            originals = data["new"] if kind in ("copy", "resent") else None
            if originals is not None:
                policy = shedding_policy()
                if through_udp:
                    udp.overload = policy
            before = dict(policy.stats)
            chunks, cost = [data[kind][i:i + 500] for i in range(0, n, 500)], []
            for j, chunk in enumerate(chunks):
                cost.append(run_kind(kind, chunk, sort, None if originals is None else originals[j * 500:j * 500 + 500]))
                drain()
            out[kind] = statistics.median(cost)     # a chunk that shared the CPU counts once
            moved = {k: policy.stats[k] - before.get(k, 0) for k in policy.stats if policy.stats[k] != before.get(k, 0)}
            assert expect[kind] in moved, (kind, moved)
    finally:
        if through_udp:
            udp.close()
            peer.close()
            loop.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000, help="datagrams per kind per round")
    ap.add_argument("--repeat", type=int, default=7, help="rounds; the figure is the median")
    ap.add_argument("--quick", action="store_true", help="a smoke run of a fraction of a second")
    args = ap.parse_args()
    n, repeat = (1000, 1) if args.quick else (args.n, args.repeat)
    expect = {"new": "rejected", "auth": "admitted_late", "copy": "dropped_retransmission",
              "resent": "dropped_retransmission"}
    for through_udp, name in ((False, "OverloadPolicy.shed"), (True, "UdpTransport._admit_late")):
        rounds = [measure(n, through_udp, expect) for _ in range(repeat)]
        med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        print(f"{name:26s} " + "  ".join(f"{k} {1e6 * v:5.2f} us" for k, v in med.items()))
        if through_udp:
            print(f"shed: {1e6 * med['new']:.2f} us per new REGISTER answered 503 (sent), "
                  f"{1e6 * med['auth']:.2f} us per REGISTER with credentials, "
                  f"{1e6 * med['copy']:.2f} / {1e6 * med['resent']:.2f} us per identical / differing copy")


if __name__ == "__main__":
    main()
