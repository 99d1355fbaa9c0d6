"""Does answer time tell an agent's softphone number from a number nobody has? Round-trip times of the same
requests for both, interleaved, against `softswitch serve` on the demo tenant.

    .venv/bin/python benchmarks/enumeration_timing.py [--rounds 2000] [--known 70001] [--unknown 79999]

For each kind of request (REGISTER without and with wrong credentials, an INVITE from the number and one to
it) prints the median round trip for each number, the difference, and a 95% bootstrap interval of the
difference of medians. An interval that contains 0 (or a difference far under the spread) means no timing
oracle. Real-time figures: run it on a quiet machine; it is not part of `make test`.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from softswitch.sip.digest import make_authorization  # noqa: E402
from softswitch.sip.parser import parse_message  # noqa: E402
from tests.support.serve import Served, example_on_free_ports  # noqa: E402

REALM = "cc.example.com"
UA = "Yealink SIP-T46U 66.86.0.15"


def request(method: str, ruri: str, frm: str, to: str, sock: socket.socket, n: int, extra: str = "",
            call_id: str | None = None, cseq: int = 1) -> bytes:
    host, port = sock.getsockname()
    return (f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{port};branch=z9hG4bK-t{n}-{cseq};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{frm}@{REALM}>;tag=t{n}\r\nTo: <sip:{to}@{REALM}>\r\n"
            f"Call-ID: {call_id or f'timing-{n}'}\r\nCSeq: {cseq} {method}\r\nContact: <sip:{frm}@{host}:{port}>\r\n"
            f"User-Agent: {UA}\r\n{extra}Content-Length: 0\r\n\r\n").encode()


def round_trip(sock: socket.socket, data: bytes, port: int):
    t0 = time.perf_counter()
    sock.sendto(data, ("127.0.0.1", port))
    while True:
        msg = parse_message(sock.recv(65535))
        if msg.status >= 200:
            return time.perf_counter() - t0, msg


def measure(kind: str, number: str, sock: socket.socket, port: int, n: int) -> float:
    if kind == "register":
        return round_trip(sock, request("REGISTER", f"sip:{REALM}", number, number, sock, n), port)[0]
    if kind == "invite_from":
        return round_trip(sock, request("INVITE", f"sip:5550100@{REALM}", number, "5550100", sock, n), port)[0]
    if kind == "invite_to":
        return round_trip(sock, request("INVITE", f"sip:{number}@{REALM}", "5551234", number, sock, n), port)[0]
    # wrong credentials: the challenge first (not timed), then the answer to it
    _, ch = round_trip(sock, request("REGISTER", f"sip:{REALM}", number, number, sock, n), port)
    auth = make_authorization(ch.get("WWW-Authenticate"), "REGISTER", f"sip:{REALM}", number, "Wrong-Guess-1!")
    return round_trip(sock, request("REGISTER", f"sip:{REALM}", number, number, sock, n,
                                    f"Authorization: {auth}\r\n", ch.call_id, 2), port)[0]


def bootstrap(a: list[float], b: list[float], rng: random.Random, rounds: int = 1000) -> tuple[float, float]:
    diffs = sorted(statistics.median(rng.choices(a, k=len(a))) - statistics.median(rng.choices(b, k=len(b)))
                   for _ in range(rounds))
    return diffs[int(rounds * 0.025)], diffs[int(rounds * 0.975)]


# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^invite_to +\d+\.\d+ +\d+\.\d+"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="a smoke run of a few rounds")
    ap.add_argument("--known", default="70001")
    ap.add_argument("--unknown", default="79999")
    args = ap.parse_args()
    if args.quick:
        args.rounds = min(args.rounds, 20)
    with tempfile.TemporaryDirectory() as tmp:
        config, port = example_on_free_ports(Path(tmp))
        # many requests and failures from one address on purpose: no rate limit, ban or lockout may step in
        text = config.read_text().replace("auth_failures: 10,", "auth_failures: 10000,").replace(
            "rate: 200, burst: 400,", "rate: 1000000, burst: 1000000,")
        config.write_text(text.replace("account_failures: 10,", "account_failures: 0,"))
        node = Served(config)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
            rng = random.Random(1)
            print(f"{'request':<18}{'known ms':>10}{'unknown ms':>12}{'diff us':>10}   95% interval (us)")
            for kind in ("register", "register_wrong", "invite_from", "invite_to"):
                times: dict[str, list[float]] = {args.known: [], args.unknown: []}
                for i in range(args.rounds):
                    order = [args.known, args.unknown]
                    rng.shuffle(order)                 # neither goes first systematically
                    for number in order:
                        times[number].append(measure(kind, number, sock, port, i * 2 + order.index(number)))
                k, u = times[args.known], times[args.unknown]
                lo, hi = bootstrap(k, u, rng)
                print(f"{kind:<18}{statistics.median(k) * 1e3:>10.3f}{statistics.median(u) * 1e3:>12.3f}"
                      f"{(statistics.median(k) - statistics.median(u)) * 1e6:>10.1f}   [{lo * 1e6:.1f}, {hi * 1e6:.1f}]")
        finally:
            node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
