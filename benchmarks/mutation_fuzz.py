"""Mutation fuzzer: real INVITE (with SDP), REGISTER and OPTIONS messages, one header or the request line
changed at a time, sent over UDP and over TCP to `softswitch serve` on the example config.

    .venv/bin/python benchmarks/mutation_fuzz.py [--cases 5000] [--seed 1] [--quick]

Mutations: grow (the value repeated), duplicate (the line repeated), truncate, empty, overlong (random printable
or separator text up to 60,000 characters), non-ASCII (UTF-8, raw 0x80-0xFF, NUL, DEL), delete. Each case goes
out as one datagram and on a TCP stream (a new connection every 50 cases, or after the node closed one). Every
25 cases an OPTIONS is timed; the node's RSS is read from /proc. Prints one figure line; exits non-zero if the
node died, an OPTIONS took over 0.5 s or went unanswered, the node logged an internal error, or RSS grew by
more than --rss-growth MB.
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import tempfile
import time

from common import Pinger, cpu_seconds, example_config, internal_errors, rss_kb, serve, stop

# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^mutation_fuzz: \d+ cases x UDP\+TCP .+; (ok|FAIL)"


LIMIT = 0.5
SDP = ("v=0\r\no=- 3906321 3906321 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
       "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n")
BASES = {
    "INVITE": ("INVITE sip:9999@cc.example.com SIP/2.0", [
        ("Via", "SIP/2.0/{T} 127.0.0.1:5999;branch=z9hG4bK-{B};rport"), ("Max-Forwards", "70"),
        ("From", '"Customer" <sip:customer@carrier.example.net>;tag=f{B}'), ("To", "<sip:9999@cc.example.com>"),
        ("Call-ID", "{B}@127.0.0.1"), ("CSeq", "1 INVITE"), ("Contact", "<sip:customer@127.0.0.1:5999>"),
        ("Supported", "timer, replaces"), ("Session-Expires", "1800;refresher=uac"), ("Min-SE", "90"),
        ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"), ("User-Agent", "fuzz/1.0"),
        ("Content-Type", "application/sdp")], SDP),
    "REGISTER": ("REGISTER sip:cc.example.com SIP/2.0", [
        ("Via", "SIP/2.0/{T} 127.0.0.1:5999;branch=z9hG4bK-{B};rport"), ("Max-Forwards", "70"),
        ("From", '"Alice" <sip:70001@cc.example.com>;tag=f{B}'), ("To", '"Alice" <sip:70001@cc.example.com>'),
        ("Call-ID", "{B}@127.0.0.1"), ("CSeq", "1 REGISTER"),
        ("Contact", "<sip:70001@127.0.0.1:5999;transport=udp>;expires=3600;+sip.instance=\"<urn:uuid:1>\""),
        ("Authorization", 'Digest username="70001", realm="cc.example.com", nonce="MTcwMDAwMDAwMC4wOmFi", '
                          'uri="sip:cc.example.com", response="6629fae49393a05397450978507c4ef1", algorithm=MD5, '
                          'cnonce="0a4f113b", qop=auth, nc=00000001'),
        ("Expires", "3600"), ("User-Agent", "fuzz/1.0")], ""),
    "OPTIONS": ("OPTIONS sip:cc.example.com SIP/2.0", [
        ("Via", "SIP/2.0/{T} 127.0.0.1:5999;branch=z9hG4bK-{B};rport"), ("Max-Forwards", "70"),
        ("From", "<sip:fuzz@127.0.0.1>;tag=f{B}"), ("To", "<sip:cc.example.com>"), ("Call-ID", "{B}@127.0.0.1"),
        ("CSeq", "1 OPTIONS"), ("Accept", "application/sdp"), ("Require", "timer")], ""),
}
SEPARATORS = ' \t";,=<>@:?\\%[]/'


def _overlong(rng: random.Random) -> str:
    n = int(30 * 2000 ** rng.random())            # 30 ... 60,000, log-scale
    pool = rng.choice(["token", "sep", "mixed"])
    chars = {"token": "aZ9-.!%*_+`'~", "sep": SEPARATORS, "mixed": "a9" + SEPARATORS}[pool]
    unit = "".join(rng.choice(chars) for _ in range(rng.randint(1, 4)))
    return (unit * (n // len(unit) + 1))[:n]


def _non_ascii(rng: random.Random, value: str) -> str:
    insert = rng.choice(["\u00e9\u4e2d\U0001f600", "\udc80\udcff\udcfe", "\x00", "\x7f", "\u00b2\u0663", "\r"])
    i = rng.randint(0, len(value))
    return value[:i] + insert * rng.randint(1, 200) + value[i:]


def mutate(rng: random.Random, method: str, branch: str, transport: str) -> tuple[str, bytes]:
    start, headers, body = BASES[method]
    lines = [[n, v.replace("{T}", transport).replace("{B}", branch)] for n, v in headers]
    target = rng.randrange(len(lines) + 1)           # len(lines): the request line
    op = rng.choice(["grow", "duplicate", "truncate", "empty", "overlong", "non-ascii", "delete"])
    if target == len(lines):
        name, value = "request-line", start
    else:
        name, value = lines[target]
    if op == "grow":
        value = value * rng.choice([2, 10, 100, 1000])
    elif op == "truncate":
        value = value[:rng.randrange(max(1, len(value)))]
    elif op == "empty":
        value = ""
    elif op == "overlong":
        i = rng.randint(0, len(value))
        value = value[:i] + _overlong(rng) + value[i:]
    elif op == "non-ascii":
        value = _non_ascii(rng, value)
    if target == len(lines):
        start = value if op not in ("duplicate", "delete") else start
    elif op == "delete":
        del lines[target]
    elif op == "duplicate":
        lines[target:target + 1] = [[name, value]] * rng.choice([2, 3, 50, 300])
    else:
        lines[target][1] = value
    raw_body = body.encode()
    text = "\r\n".join([start] + [f"{n}: {v}" for n, v in lines] + [f"Content-Length: {len(raw_body)}", "", ""])
    return f"{method}/{name}/{op}", text.encode("utf-8", "surrogateescape")[:65000] + raw_body


class Stream:
    """A TCP flow to the node whose answers are read and dropped; reopened after the node closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.sent = self.reopened = 0

    def send(self, data: bytes) -> None:
        if self.sock is None or self.sent >= 50:
            self.close()
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            self.sock.setblocking(False)
            self.sent = 0
            self.reopened += 1
        self.drain()
        try:
            view = memoryview(data)
            deadline = time.monotonic() + 2.0
            while view and self.sock is not None and time.monotonic() < deadline:
                try:
                    view = view[self.sock.send(view):]
                except BlockingIOError:
                    self.drain()
                    time.sleep(0.001)
            self.sent += 1
        except OSError:                              # the node closed the flow (fatal framing): a new one next
            self.close()

    def drain(self) -> None:
        try:
            while self.sock is not None:
                if not self.sock.recv(65535):
                    self.close()
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# Transactions keep their answer 64*T1 = 32 s (Timers H and J) and the INVITEs that reach the queue wait up
# to its 60 s max wait: RSS climbs that long under a steady flood, then must stay flat.
SETTLE = 75.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--every", type=int, default=25, help="cases between two timed OPTIONS")
    ap.add_argument("--rss-growth", type=float, default=64.0, help="MB of RSS growth that fails a short run")
    # Bounded tables may still fill after that: failed-login counts per username (50,000 x ~550 B) and the URI
    # cache (16,384 URIs of up to 256 characters); more than they can hold is a leak.
    ap.add_argument("--late-growth", type=float, default=48.0,
                    help=f"MB of RSS growth after the first {SETTLE:.0f} s that fails a longer run (a leak)")
    ap.add_argument("--quick", action="store_true", help="a smoke run of a second or two")
    args = ap.parse_args()
    if args.quick:
        args.cases = min(args.cases, 200)
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="mutfuzz-")
    config, port = example_config(work)
    node, _ = serve(config, work)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    tcp = Stream(port)
    pinger = Pinger(port)
    failures: list[str] = []
    kinds: set[str] = set()
    answered = 0
    try:
        pinger.ping()
        pinger.times.clear()
        rss_before = peak = rss_kb(node.pid)
        settled: int | None = None      # RSS once every kept transaction of the start has run its course
        cpu_before = cpu_seconds(node.pid)
        t0 = time.perf_counter()
        for i in range(1, args.cases + 1):
            method = rng.choice(list(BASES))
            kind, raw = mutate(rng, method, f"m{args.seed}x{i}u", "UDP")
            kinds.add(kind)
            udp.sendto(raw[:65507], ("127.0.0.1", port))
            tcp.send(mutate(random.Random(f"{args.seed}-{i}"), method, f"m{args.seed}x{i}t", "TCP")[1])
            if i % args.every == 0 or i == args.cases:
                try:
                    while udp.recv(65535):
                        answered += 1
                except BlockingIOError:
                    pass
                rtt = pinger.ping()
                if node.poll() is None:
                    rss = rss_kb(node.pid)
                    peak = max(peak, rss)
                    if settled is None and time.perf_counter() - t0 >= SETTLE:
                        settled = rss
                if node.poll() is not None:
                    failures.append(f"node exited with {node.returncode} after {i} cases")
                    break
                if rtt is None or rtt > LIMIT:
                    failures.append(f"OPTIONS {'unanswered' if rtt is None else f'took {rtt:.3f} s'} after case {i}")
                    if len(failures) >= 5:
                        break
        elapsed = time.perf_counter() - t0
        alive = node.poll() is None
        rss_after = rss_kb(node.pid) if alive else 0
        cpu = cpu_seconds(node.pid) - cpu_before if alive else float("nan")
    finally:
        tcp.close()
        stop(node)
    bugs = internal_errors(work)
    if bugs:
        failures.append(f"{bugs} internal errors in {work}/node.log")
    late = ""
    if alive and settled is not None and elapsed >= SETTLE + 15:
        # Long enough to see a plateau: what the node keeps for 32 s is there at both ends; growth is a leak.
        grew = (rss_after - settled) / 1024
        late = f" (+{grew:.1f} MB after the first {SETTLE:.0f} s)"
        if grew > args.late_growth:
            failures.append(f"RSS grew by {grew:.1f} MB after the first {SETTLE:.0f} s")
    elif alive and (rss_after - rss_before) / 1024 > args.rss_growth:
        failures.append(f"RSS grew by {(rss_after - rss_before) / 1024:.1f} MB")
    print(f"mutation_fuzz: {i} cases x UDP+TCP ({len(kinds)} kinds, {answered} UDP answers, {tcp.reopened} TCP "
          f"flows) in {elapsed:.1f} s, {i / elapsed:.0f} cases/s; {pinger.summary()}; node CPU {cpu:.1f} s; "
          f"RSS before {rss_before / 1024:.1f} MB peak {peak / 1024:.1f} MB after {rss_after / 1024:.1f} MB{late}; "
          f"{'FAIL: ' + '; '.join(failures) if failures else 'ok'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
