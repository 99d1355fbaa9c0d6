"""Run a node with N generated softphone accounts, for load benchmarks (prints its port, stops on SIGTERM).

    .venv/bin/python benchmarks/node_runner.py --users 5000 --port 5070
Users are 100000..100000+N-1 with password "Pw-<user>!" in realm "bench.test".
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from softswitch import log
from softswitch.credentials import Credentials, ha1_pair
from softswitch.node import Listen, Node, NodeOptions, new_loop, tune_gc
from softswitch.registrar import RegistrarOptions

REALM = "bench.test"


def users(n: int) -> list[tuple[str, str]]:
    return [(str(100000 + i), f"Pw-{100000 + i}!") for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--port", type=int, default=5070)
    ap.add_argument("--profile", help="write a cProfile dump here on exit")
    args = ap.parse_args()
    log.setup(level="warning")
    creds = Credentials(REALM, {u: ha1_pair(u, REALM, p) for u, p in users(args.users)})
    loop = new_loop()
    asyncio.set_event_loop(loop)
    opts = NodeOptions(listen=[Listen("udp", "127.0.0.1", args.port), Listen("tcp", "127.0.0.1", args.port)],
                       registrar=RegistrarOptions(realm=REALM, max_expires=3600))
    node = Node(opts, None, loop, credentials=creds)
    loop.run_until_complete(node.start())
    tune_gc()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    prof = None
    if args.profile:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    print(f"ready {args.port}", flush=True)
    loop.run_until_complete(stop.wait())
    if prof:
        prof.disable()
        prof.dump_stats(args.profile)
    loop.run_until_complete(node.stop())


if __name__ == "__main__":
    main()
