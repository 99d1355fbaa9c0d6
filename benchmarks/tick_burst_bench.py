"""How late the MediaEngine's ticks run while uvloop reads a long burst of queued RTP packets.

    .venv/bin/python benchmarks/tick_burst_bench.py [--calls 300] [--packets 60] [--repeat 3] [--quick]

uvloop runs timers only between loop iterations, and one iteration reading a burst of thousands of queued
packets (up to 32 per socket, for every ready socket) takes far longer than a 20 ms tick; the engine's
packet paths therefore run due ticks themselves (media/engine/ticker.py). tests/integration/test_media_engine.py
proves that logic on a clock it moves by hand; this script measures what it gives on this host.

Per mode (relay: --calls two-party calls relayed packet by packet; mixed: rooms of 3 legs, every leg
through the jitter buffer and the mixer), a few packets go to every leg first (relay routes in place), then
--packets more per leg are sent from this process while the engine's loop is blocked, so its next
iteration finds every socket full. Each tick's lateness is time.monotonic() at its start minus its due
time on the engine's schedule. Reported: how long the burst took to read, and the median and worst
lateness of the ticks due while it was read, leaving out the first 40 ms (sending the burst blocked the
loop; those ticks are caught up at once). Without the packet-path check ticks queue up behind the burst
(10-120 ms late, median ~30 ms, measured on a 2-core VM).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import resource
import socket
import statistics
import sys
import time

# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^tick_burst_bench: \d+ legs x \d+ packets"


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import uvloop  # noqa: E402

from media.engine import MediaEngine  # noqa: E402
from media.rtp import build_rtp  # noqa: E402

TARGET = "target: median lateness < 5 ms and worst < 40 ms during the burst"


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, 8192)), hard))


async def burst(calls: int, per_leg: int, relayed: bool) -> tuple[float, list[float]]:
    """(seconds the burst took to read, lateness in seconds of each tick due while it was read)."""
    loop = asyncio.get_running_loop()
    eng = MediaEngine(loop, port_range=(42000, 48000))
    await eng.start()
    try:
        legs = []
        for i in range(2 * calls):
            s = await eng.open_stream()
            s.set_remote("127.0.0.1", 9, pt=0, latch=False)     # discard port: nobody listens
            eng.join(s, f"call-{i // 2}" if relayed else f"room-{i // 3}")
            legs.append(s)
        seen: list[tuple[float, float]] = []
        real_tick = eng._tick

        def traced(n, now):
            seen.append((now, time.monotonic()))
            real_tick(n, now)
        eng._tick = traced
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
        ssrc = {s.port: random.getrandbits(32) for s in legs}
        seq0 = {s.port: random.getrandbits(16) for s in legs}

        def send(s, k):
            seq = (seq0[s.port] + k) & 0xFFFF
            tx.sendto(build_rtp(0, seq, 160 * k, ssrc[s.port], b"\xff" * 160), ("127.0.0.1", s.port))
        for k in range(3):
            for s in legs:
                send(s, k)
            await asyncio.sleep(0.05)
        for k in range(3, 3 + per_leg):         # the loop is blocked while this runs
            for s in legs:
                send(s, k)
        sent = time.monotonic()
        await asyncio.sleep(0)
        want = len(legs) * (3 + per_leg) * 0.95     # a few may be dropped by a full socket buffer
        deadline = sent + 30
        while sum(s.stats["rx_packets"] for s in legs) < want and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        busy = time.monotonic() - sent
        await asyncio.sleep(0.1)
        tx.close()
        return busy, [at - due for due, at in seen if sent + 0.04 < due < sent + busy]
    finally:
        await eng.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=300, help="two-party calls (relay) or legs/2 (mixed)")
    ap.add_argument("--packets", type=int, default=60, help="packets per leg in the burst")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one run per mode")
    a = ap.parse_args()
    repeat = 1 if a.quick else a.repeat
    raise_nofile(4 * a.calls + 100)
    gc.disable()        # a full collection during the burst would show up as late ticks of its own
    parts = []
    for relayed in (True, False):
        busy, late = [], []
        for _ in range(repeat):
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                b, lt = runner.run(burst(a.calls, a.packets, relayed))
            busy.append(b)
            late += lt
        name = "relay" if relayed else "mixed"
        if late:
            parts.append(f"{name}: burst read in {1000 * statistics.median(busy):.0f} ms, {len(late)} ticks due, "
                         f"lateness median {1000 * statistics.median(late):.1f} ms, max {1000 * max(late):.1f} ms")
        else:
            parts.append(f"{name}: burst read in {1000 * statistics.median(busy):.0f} ms, too short to show a tick")
    gc.enable()
    print(f"tick_burst_bench: {2 * a.calls} legs x {a.packets} packets, uvloop; " + "; ".join(parts)
          + f" ({TARGET})")


if __name__ == "__main__":
    main()
