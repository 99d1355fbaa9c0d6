"""What the stall watchdog costs per handled input: the clock pair and the histogram update the transports do
around every datagram, chunk and WebSocket message, beside the cost of parsing one SIPp REGISTER.

    .venv/bin/python benchmarks/watchdog_cost.py [--n 200000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import timeit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # this tree's softswitch
from softswitch.sip.parser import parse_message  # noqa: E402
from softswitch.security.watchdog import Watchdog  # noqa: E402

REGISTER = (b"REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-1-1;rport\r\n"
            b"From: <sip:100001@bench.test>;tag=1234SIPpTag001\r\nTo: <sip:100001@bench.test>\r\n"
            b"Call-ID: 1-1234@127.0.0.1\r\nCSeq: 1 REGISTER\r\nContact: <sip:100001@127.0.0.1:6000;transport=UDP>\r\n"
            b"Max-Forwards: 70\r\nExpires: 3600\r\nUser-Agent: SIPp\r\nContent-Length: 0\r\n\r\n")


# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^watchdog: -?\d+ ns per handled input"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--quick", action="store_true", help="a smoke run of a fraction of a second")
    args = ap.parse_args()
    n = min(args.n, 2000) if args.quick else args.n
    wd = Watchdog(0.1, time.perf_counter)

    def handled() -> None:          # what udp.py does around ep.on_datagram, with the handler left out
        clock = wd.clock
        t0 = clock()
        dt = clock() - t0
        if wd.observe("udp", dt):
            wd.stall("udp", dt, "", "")

    def bare() -> None:
        pass
    cost = (min(timeit.repeat(handled, number=n, repeat=5)) - min(timeit.repeat(bare, number=n, repeat=5))) / n
    parse = min(timeit.repeat(lambda: parse_message(REGISTER), number=n // 20, repeat=3)) / (n // 20)
    print(f"watchdog: {cost * 1e9:.0f} ns per handled input ({100 * cost / parse:.1f}% of parsing one REGISTER, "
          f"{parse * 1e6:.1f} us)")


if __name__ == "__main__":
    main()
