"""In-process cost of one authenticated registration (no sockets): where a node spends its time per REGISTER.

    .venv/bin/python benchmarks/register_pipeline.py [--agents 10000] [--profile]
    .venv/bin/python benchmarks/register_pipeline.py --quick        (100 agents, one run)
The node is built as `softswitch serve` builds it, from a generated tenant (benchmarks/tenant.py: agents, ACD,
queues), without its sockets. Feeds SIPp-shaped REGISTER datagrams, one per agent, straight into the endpoint
and times the challenge and the authenticated request separately (median of 5 runs), so optimisations can
be compared without SIPp noise; comparing tenant sizes shows any cost that grows with the tenant.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time

# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^challenge [\d.]+ us, authenticated REGISTER [\d.]+ us"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.tenant import REALM, write_tenant  # noqa: E402
from softswitch import log  # noqa: E402
from softswitch.node.compose import Node, credentials_from_config, options_from_config, tune_gc  # noqa: E402
from softswitch.settings import load_config  # noqa: E402
from softswitch.sip.digest import make_authorization  # noqa: E402
from softswitch.transport.base import Target  # noqa: E402


class Sink:
    proto = "udp"

    def __init__(self) -> None:
        self.out: list[bytes] = []

    def send(self, data: bytes, target) -> None:
        self.out.append(data)


def register(user: str, n: int, cseq: int, auth: str = "") -> bytes:
    return (f"REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-{n}-{cseq};rport\r\n"
            f"From: <sip:{user}@{REALM}>;tag=1234SIPpTag00{n}\r\nTo: <sip:{user}@{REALM}>\r\n"
            f"Call-ID: {n}-1234@127.0.0.1\r\nCSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:{user}@127.0.0.1:6000;transport=UDP>\r\n{auth}Max-Forwards: 70\r\nExpires: 3600\r\n"
            f"User-Agent: SIPp\r\nContent-Length: 0\r\n\r\n").encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--phones", type=int, help="register only the first N phones of the tenant (default: all):"
                    " at 20,000 agents and --phones 100, what the tenant's size costs without a bigger working set")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--quick", action="store_true", help="100 agents, one run (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.agents, args.runs = 100, 1
    args.n = min(args.phones or args.agents, args.agents)
    log.setup(level="warning")
    work = tempfile.mkdtemp(prefix="regpipe-")
    tenant = write_tenant(os.path.join(work, "tenant.yaml"), args.agents, anchor=False)
    users = tenant.phones[:args.n]
    cfg = load_config(tenant.path)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    node = Node(options_from_config(cfg), cfg, loop, credentials_from_config(cfg))
    sink = Sink()
    node.endpoint.udp.append(sink)
    src = Target("udp", "127.0.0.1", 6000, sink)
    tune_gc()
    first = [register(u, i, 1) for i, (u, _) in enumerate(users)]
    challenge_times, auth_times = [], []
    prof = None
    if args.profile:
        import cProfile
        prof = cProfile.Profile()
    for run in range(args.runs):
        sink.out.clear()
        base = run * args.n
        first = [register(u, base + i, 1) for i, (u, _) in enumerate(users)]
        if prof:
            prof.enable()
        t0 = time.perf_counter()
        for data in first:
            node.endpoint.on_datagram(data, src)
        t1 = time.perf_counter()
        if prof:
            prof.disable()
        challenges = [c for c in sink.out if c.startswith(b"SIP/2.0 401")]
        assert len(challenges) == args.n, (len(challenges), sink.out[:1])
        second = []
        for i, ((u, p), ch) in enumerate(zip(users, challenges)):
            www = next(line for line in ch.decode().split("\r\n") if line.startswith("WWW-Authenticate:"))
            value = make_authorization(www.split(":", 1)[1].strip(), "REGISTER", "sip:127.0.0.1:5060", u, p)
            second.append(register(u, base + i, 2, f"Authorization: {value}\r\n"))
        sink.out.clear()
        if prof:
            prof.enable()
        t2 = time.perf_counter()
        for data in second:
            node.endpoint.on_datagram(data, src)
        t3 = time.perf_counter()
        if prof:
            prof.disable()
        assert sum(1 for c in sink.out if c.startswith(b"SIP/2.0 200")) == args.n
        challenge_times.append((t1 - t0) / args.n)
        auth_times.append((t3 - t2) / args.n)
    c, a = statistics.median(challenge_times), statistics.median(auth_times)
    print(f"challenge {1e6 * c:.1f} us, authenticated REGISTER {1e6 * a:.1f} us, "
          f"whole registration {1e6 * (c + a):.1f} us -> {1 / (c + a):.0f} registrations/s of CPU "
          f"(median of {args.runs} x {args.n}, {args.agents}-agent tenant, no socket cost)")
    if prof:
        import pstats
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
