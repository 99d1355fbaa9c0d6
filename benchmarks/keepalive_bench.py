"""How fast `softswitch serve` notices phones that went away: by OPTIONS keepalives, and by closed connections.

    .venv/bin/python benchmarks/keepalive_bench.py [--phones 2000] [--interval 5] [--timeout 1] [--failures 3]
                                                   [--flows 50] [--quick]

A generated tenant (benchmarks/tenant.py) with `phones: {keepalive: {...}}` as given. Its phones register over
UDP to one socket of this process, which answers every OPTIONS 200 for a while (several rounds), then goes
silent for all of them at once: the figure is how long after that each binding is marked unreachable (GET
/health every 10 ms), against the bound failures x interval + timeout. Then `--flows` phones register over TCP
connections of their own, which all close at once: how long until their bindings are gone. The node's CPU
while it watches the phones is printed too (the schedule's cost is per probe, not per tick).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
import urllib.request

from common import ROOT, cpu_seconds, serve, stop
from tenant import write_tenant

sys.path.insert(0, ROOT)
from softswitch.sip.digest import make_authorization  # noqa: E402
from softswitch.sip.framing import StreamFramer  # noqa: E402
from softswitch.sip.message import make_response  # noqa: E402
from softswitch.sip.parser import parse_message  # noqa: E402
from tools.agents_load import register_agents  # noqa: E402

# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^keepalive_bench: \d+ phones silent: all unreachable after [\d.]+ s"


class Responder:
    """One UDP socket standing for every phone: answers OPTIONS 200 while `alive`."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.alive = True
        self.answered = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data, src = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if self.alive and data.startswith(b"OPTIONS "):
                self.sock.sendto(make_response(parse_message(data), 200, to_tag="b").serialize(), src)
                self.answered += 1

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def health(http_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=10) as r:
        return json.loads(r.read())


def register_tcp(sip_port: int, user: str, password: str, realm: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", sip_port), timeout=5)
    host, port = s.getsockname()[:2]
    framer = StreamFramer()

    def req(cseq: int, auth: str = "") -> bytes:
        return (f"REGISTER sip:{realm} SIP/2.0\r\nVia: SIP/2.0/TCP {host}:{port};branch=z9hG4bK-t{user}{cseq}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:{user}@{realm}>;tag=t{user}\r\nTo: <sip:{user}@{realm}>\r\n"
                f"Call-ID: tcp-{user}@bench\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{user}@{host}:{port};transport=tcp>\r\nExpires: 3600\r\n{auth}"
                "Content-Length: 0\r\n\r\n").encode()

    def answer():
        while True:
            items = framer.feed(s.recv(65535))
            if items:
                return items[0]
    s.sendall(req(1))
    challenge = answer()
    auth = make_authorization(challenge.get_all("WWW-Authenticate")[0], "REGISTER", f"sip:{realm}", user, password)
    s.sendall(req(2, f"Authorization: {auth}\r\n"))
    if answer().status != 200:
        raise RuntimeError(f"{user} could not register over TCP")
    return s


def wait(pred, timeout: float, step: float = 0.01) -> float | None:
    """Seconds until pred() holds (polled every `step`), None past the timeout."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if pred():
            return time.perf_counter() - t0
        time.sleep(step)
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phones", type=int, default=2000)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--failures", type=int, default=3)
    ap.add_argument("--flows", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    args = ap.parse_args()
    if args.quick:
        args.phones, args.interval, args.timeout, args.failures, args.flows = 20, 1.0, 0.3, 2, 5
    work = tempfile.mkdtemp(prefix="keepalivebench-")
    n = args.phones + args.flows
    tenant = write_tenant(os.path.join(work, "tenant.yaml"), agents=n, queues=1, workdir=work)
    with open(tenant.path, "a") as f:
        f.write(f"phones: {{keepalive: {{interval: {args.interval}s, timeout: {args.timeout}s, "
                f"failures: {args.failures}}}}}\n")
    node, _ = serve(tenant.path, work)
    responder = Responder()
    flows: list[socket.socket] = []
    bound = args.failures * args.interval + args.timeout
    try:
        udp, tcp = tenant.phones[:args.phones], tenant.phones[args.phones:n]
        if register_agents(tenant.sip_port, udp, tenant.realm, responder.port) != len(udp):
            raise RuntimeError("not every phone registered")
        # a few rounds answered: every binding has been probed and is reachable
        if wait(lambda: responder.answered >= 2 * len(udp), 3 * args.interval + 30) is None:
            raise RuntimeError(f"keepalives not answered: {responder.answered}")
        cpu0, t_cpu = cpu_seconds(node.pid), time.perf_counter()
        time.sleep(args.interval)
        watch_cpu = (cpu_seconds(node.pid) - cpu0) / (time.perf_counter() - t_cpu)
        before = health(tenant.http_port)["keepalive"]["unreachable"]
        responder.alive = False
        t0 = time.perf_counter()
        times: list[float] = []
        seen = before
        while len(times) < len(udp) and time.perf_counter() - t0 < 3 * bound + 30:
            now = health(tenant.http_port)["keepalive"]["unreachable"] - before
            times.extend([time.perf_counter() - t0] * (now - seen))
            seen = now
            time.sleep(0.01)
        if len(times) < len(udp):
            raise RuntimeError(f"only {len(times)} of {len(udp)} phones found unreachable")
        times.sort()

        flows = [register_tcp(tenant.sip_port, u, p, tenant.realm) for u, p in tcp]
        bindings = health(tenant.http_port)["bindings"]
        for s in flows:
            s.close()
        gone = wait(lambda: health(tenant.http_port)["bindings"] == bindings - len(flows), 30)
        if gone is None:
            raise RuntimeError("the closed connections' bindings stayed")
        print(f"keepalive: interval {args.interval:g} s, timeout {args.timeout:g} s, failures {args.failures}: "
              f"bound {bound:g} s; node CPU while watching {len(udp)} phones: {100 * watch_cpu:.1f} %")
        print(f"keepalive_bench: {len(udp)} phones silent: all unreachable after {times[-1]:.2f} s "
              f"(first {times[0]:.2f} s, median {times[len(times) // 2]:.2f} s; bound {bound:g} s); "
              f"{len(flows)} TCP connections closed: bindings gone after {1000 * gone:.0f} ms")
        if times[-1] > bound + 1.0:       # a loaded host polls late; said, not failed on
            print(f"note: the last phone was found {times[-1] - bound:.2f} s past the bound")
        return 0
    finally:
        responder.close()
        for s in flows:
            s.close()
        stop(node)


if __name__ == "__main__":
    sys.exit(main())
