"""Failover of outbound calls between trunks, with SIPp as the carriers (UAS on free ports of 127.0.0.1): how long
an outbound call takes to be answered when the dial plan's first trunk answers 503 (failover on the answer), and
when it does not answer at all (failover when the attempt timer gives it up), against a first trunk that
answers. The second trunk challenges each INVITE (401, answered with its outbound_auth) and answers.

The calls are placed on the node's own loop through trunk_calls.place_via_dial_plan, as an agent's outbound
call or a callback places them; the caller's side is left out (no phone), so the figures are the trunks' part.

    .venv/bin/python benchmarks/trunk_failover_bench.py [--calls 20]
    .venv/bin/python benchmarks/trunk_failover_bench.py --quick          (3 calls of each kind)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# the line the smoke run (tests/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^trunk failover: answered in \d+\.\d+ ms direct, \d+\.\d+ ms after a 503, \d+\.\d+ s after silence"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from softswitch.calls.call import Call  # noqa: E402
from softswitch.calls.leg import LegState  # noqa: E402
from softswitch.legs import Leg  # noqa: E402
from softswitch.node import Node, credentials_from_config, new_loop, options_from_config  # noqa: E402
from softswitch.settings import parse_config  # noqa: E402
from softswitch.transport.base import Target  # noqa: E402
from softswitch.trunk_calls import place_via_dial_plan  # noqa: E402
from tools.kamailioserver import free_udp_port  # noqa: E402

SIPP_DATA = os.path.join(ROOT, "tests", "data", "sipp")
SDP = (b"v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def config(tmp: Path, refuser: int, silent: int, answerer: int):
    auth = "outbound_auth: {username: acct7, password: Trunk-Pass9}"
    return parse_config(f"""\
server:
  sip: {{listen: [udp:127.0.0.1:{free_udp_port()}], domain: cc.bench}}
  media: {{anchor: false}}
  storage: {{cdr: "sqlite:///{tmp}/cdr.db"}}
trunks:
  - {{name: refuser, proxy: "127.0.0.1:{refuser}"}}
  - {{name: silent, proxy: "127.0.0.1:{silent}"}}
  - {{name: answerer, proxy: "127.0.0.1:{answerer}", {auth}}}
dial_plan:
  routes:
    - {{numbers: "+1*", trunks: [answerer]}}
    - {{numbers: "+2*", trunks: [refuser, answerer]}}
    - {{numbers: "+3*", trunks: [silent, answerer]}}
""", str(tmp / "bench.yaml"))


def sipp(tmp: Path, scenario: str, port: int) -> subprocess.Popen:
    return subprocess.Popen(["sipp", "-sf", os.path.join(SIPP_DATA, scenario), "-i", "127.0.0.1", "-p", str(port),
                             "-aa", "-nostdin"], cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def one_call(node, number: str, n: int) -> float:
    cc, loop = node.calls, asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()
    caller = LegState("uas")
    call = Call(f"bench-{number}-{n}", caller, number, time.time())
    caller.call = call
    leg = Leg(cc, "uac", call, Target("udp", "127.0.0.1", 0))
    call.outbound_to = leg

    def answered(lg, resp) -> None:
        if lg.accept_2xx(resp) and not done.done():
            done.set_result(time.perf_counter() - t0)
            lg.bye()

    def failed(lg, status, reason) -> None:
        if not done.done():
            done.set_exception(SystemExit(f"call to {number} not answered: {status} {reason}"))

    t0 = time.perf_counter()
    place_via_dial_plan(cc, call, leg, number, SDP, caller_fallback="bench",
                        on_progress=lambda lg, status, resp: lg.provisional(status), on_answered=answered,
                        on_failed=failed)
    return await asyncio.wait_for(done, 60)


async def run(args, tmp: Path) -> None:
    ports = [free_udp_port() for _ in range(3)]
    peers = [sipp(tmp, "trunk_503.xml", ports[0]), sipp(tmp, "trunk_answers.xml", ports[2])]
    cfg = config(tmp, *ports)
    node = Node(options_from_config(cfg), cfg, asyncio.get_running_loop(), credentials_from_config(cfg))
    node.calls.max_loop_lag = node.calls.max_busy = node.calls.max_resend_ratio = float("inf")
    await node.start()
    try:
        await asyncio.sleep(0.5)                       # SIPp up and bound
        figures = {}
        for kind, number, calls in (("direct", "+1555", args.calls), ("after 503", "+2555", args.calls),
                                    ("after silence", "+3555", max(1, args.calls // 5))):
            figures[kind] = [await one_call(node, number, i) for i in range(calls)]
            print(f"{kind}: {len(figures[kind])} calls, median {statistics.median(figures[kind]) * 1000:.2f} ms, "
                  f"worst {max(figures[kind]) * 1000:.2f} ms")
        med = {k: statistics.median(v) for k, v in figures.items()}
        print(f"trunk failover: answered in {med['direct'] * 1000:.2f} ms direct, {med['after 503'] * 1000:.2f} ms "
              f"after a 503, {med['after silence']:.2f} s after silence (the attempt timer)")
    finally:
        await node.stop()
        for p in peers:
            p.kill()
            p.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="3 calls of each kind")
    args = ap.parse_args()
    if args.quick:
        args.calls = 3
    with tempfile.TemporaryDirectory() as tmp:
        loop = new_loop()
        try:
            loop.run_until_complete(run(args, Path(tmp)))
        finally:
            loop.close()


if __name__ == "__main__":
    main()
