"""Adversarial probes over UDP against `softswitch serve`: the node must keep answering OPTIONS quickly.

    .venv/bin/python benchmarks/probe_bench.py [--probes 20000] [--batch 20] [--seed 1] [--quick]

Runs the shipped config/example.yaml on free ports (127.0.0.1 exempt from the per-source limiter, as for an SBC)
and sends hostile INVITEs: a long run of one character class ended by a byte that breaks it, in a random header
value, URI part or SDP line (the shapes of tests/unit/test_adversarial_input.py), 30 to 60,000 characters long. After
each batch an OPTIONS is sent on another socket and its answer timed. Prints one figure line; exits non-zero if
an answer took over 0.5 s, none came, or the node died.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time

from common import ROOT, Pinger, cpu_seconds, example_config, internal_errors, rss_kb, serve, stop

sys.path.insert(0, ROOT)
from tests.support.hostile import random_probes  # noqa: E402

# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^probe_bench: \d+ probes .+; (ok|FAIL)"


LIMIT = 0.5


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=20, help="probes between two OPTIONS (1: after each probe)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=60000)
    ap.add_argument("--number", default="9999", help="number dialled; 9999 has no route (a probe that parses "
                    "gets 404), 4001 puts the ones that parse in the voice queue")
    ap.add_argument("--quick", action="store_true", help="a smoke run of a second or two")
    args = ap.parse_args()
    if args.quick:
        args.probes = min(args.probes, 400)
    work = tempfile.mkdtemp(prefix="probebench-")
    config, port = example_config(work)
    node, _ = serve(config, work)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    pinger = Pinger(port)
    failures: list[str] = []
    sent = answered = 0
    shapes: set[str] = set()
    try:
        pinger.ping()                                   # warm: the first answer loads lazy imports
        pinger.times.clear()
        rss_before, cpu_before = rss_kb(node.pid), cpu_seconds(node.pid)
        t0 = time.perf_counter()
        for label, raw in random_probes(args.probes, args.seed, args.max_length, args.number):
            sock.sendto(raw, ("127.0.0.1", port))
            shapes.add(label.rsplit("/", 1)[0])
            sent += 1
            if sent % args.batch == 0 or sent == args.probes:
                try:
                    while sock.recv(65535):                # the probes' own answers (400, 513 ...)
                        answered += 1
                except BlockingIOError:
                    pass
                rtt = pinger.ping()
                if node.poll() is not None:
                    failures.append(f"node exited with {node.returncode} after {sent} probes")
                    break
                if rtt is None or rtt > LIMIT:
                    failures.append(f"OPTIONS {'unanswered' if rtt is None else f'took {rtt:.3f} s'} after probe "
                                    f"{sent} ({label})")
                    if len(failures) >= 5:
                        break
        elapsed = time.perf_counter() - t0
        alive = node.poll() is None
        rss_after = rss_kb(node.pid) if alive else 0
        cpu = cpu_seconds(node.pid) - cpu_before if alive else float("nan")
    finally:
        stop(node)
    bugs = internal_errors(work)
    if bugs:
        failures.append(f"{bugs} internal errors in {work}/node.log")
    print(f"probe_bench: {sent} probes ({len(shapes)} distinct shapes, batch {args.batch}, {answered} answered) "
          f"in {elapsed:.1f} s, "
          f"{sent / elapsed:.0f} probes/s; {pinger.summary()}; node CPU {cpu:.1f} s; "
          f"RSS before {rss_before / 1024:.1f} MB after {rss_after / 1024:.1f} MB; "
          f"{'FAIL: ' + '; '.join(failures) if failures else 'ok'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
