"""RTP packets per second through the MediaEngine for N two-party calls, next to a bare uvloop UDP relay.

    .venv/bin/python benchmarks/rtp_relay_bench.py [--calls 100,300,600] [--seconds 5] [--warmup 1] [--repeat 1]
    .venv/bin/python benchmarks/rtp_relay_bench.py --party 3 --calls 100,300,500    (mixed rooms, engine only)
    .venv/bin/python benchmarks/rtp_relay_bench.py --party 1 --calls 1000,2000      (callers on music on hold)

Per N calls (2N audio legs, each pair joined in its own room):

* a load process (separate from the server process, so it does not share its CPU time accounting) owns
  2N generator sockets and 2N sink sockets on uvloop. Each generator sends one 20 ms PCMU packet (valid
  RTP header as media.rtp.build_rtp makes it, 160-byte payload) to its leg every 20 ms, i.e. 50 pps per
  leg, with the legs spread over 20 one-millisecond slots. Sinks count what comes back.
* the server process is either the MediaEngine (streams from open_stream(), set_remote() to the leg's
  sink with latch=False, join() pairwise) or a bare uvloop relay: one DatagramProtocol per leg that
  forwards each packet it receives, unchanged, to its peer leg's sink. Same offered load for both.
* measured over --seconds after --warmup: packets/s arriving at the sinks, server-process CPU
  (resource.getrusage of that process, user+sys), and tick lateness. For the engine, each tick's lateness
  is observed by wrapping the engine instance's _tick attribute from this script (the engine unchanged):
  lateness = time.monotonic() at the tick's start minus the tick's due time on the engine's own schedule
  (t0 + n * 20 ms on the engine's clock, time.monotonic(), which is also the loop's clock: for uvloop
  CLOCK_MONOTONIC truncated to 1 ms). Catch-up ticks are included. For the bare relay, the same
  measurement is made on an empty 20 ms call_at ticker in its loop.

With --party K > 2, --calls counts rooms of K legs each and only the engine runs (a relay has nothing to
compare with): every leg's packets go through its jitter buffer, and every tick decodes, mixes, encodes
and sends a frame to every leg. With --party 1 every leg is a caller waiting in a queue: in no room, on
one shared 10 s music-on-hold loop, still sending (counted, not played out). Reported: packets in and
out, CPU per leg and tick lateness.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import socket
import statistics
import struct
import sys
import time

# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^measured: \d+ calls: \d+% of bare relay rate"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import uvloop  # noqa: E402

from media.g711 import ULAW_ENCODE  # noqa: E402
from media.rtp import build_rtp  # noqa: E402

TARGET = "target: >= 75% of the bare uvloop relay's packets per CPU-second, p99 tick lateness < 5 ms"
PTIME = 0.02
SLOTS = 20          # the load process spreads its legs over 20 x 1 ms send slots
HOST = "127.0.0.1"
_HDR = struct.Struct("!BBHII")


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def percentiles(xs: list[float]) -> tuple[float, float, float]:
    if not xs:
        return float("nan"), float("nan"), float("nan")
    a = np.asarray(xs)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())


def new_loop() -> asyncio.AbstractEventLoop:
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


# --- load process: generators + sinks ---------------------------------------------------------------

class _Count(asyncio.DatagramProtocol):
    """Counts what arrives, and apart from it what was made from a received packet: with `exact` the sent
    payload itself (a two-party call relays it unchanged), else anything but a frame of silence (a mix of
    received audio). The silence the engine sends for a missing frame is not a delivered packet."""

    def __init__(self, payload: bytes, exact: bool) -> None:
        self.n = 0
        self.real = 0
        self.payload = payload
        self.exact = exact
        self.silence = bytes([0xFF]) * len(payload)      # mu-law silence, as the engine conceals a lost frame

    def datagram_received(self, data, addr) -> None:
        self.n += 1
        body = data[12:]
        if body == self.payload if self.exact else body != self.silence:
            self.real += 1


class _Quiet(asyncio.DatagramProtocol):
    def error_received(self, exc) -> None:
        pass


def load_main(conn, legs: int, warmup: float, seconds: float, party: int = 2) -> None:
    raise_nofile()
    loop = new_loop()
    loop.run_until_complete(_load(conn, legs, warmup, seconds, party))
    loop.close()


async def _load(conn, legs: int, warmup: float, seconds: float, party: int = 2) -> None:
    loop = asyncio.get_running_loop()
    # 20 ms of speech-like PCMU; every leg sends the same payload with its own SSRC/seq/timestamp.
    rng = np.random.default_rng(7)
    pcm = (rng.standard_normal(160) * 3000).astype(np.int16)
    payload = ULAW_ENCODE[pcm.view(np.uint16)].tobytes()
    sinks = []
    for _ in range(legs):
        tr, pr = await loop.create_datagram_endpoint(lambda: _Count(payload, party == 2), local_addr=(HOST, 0))
        sinks.append((tr, pr))
    conn.send([tr.get_extra_info("sockname")[1] for tr, _ in sinks])
    targets = await loop.run_in_executor(None, conn.recv)
    gens = []
    for port in targets:
        tr, _ = await loop.create_datagram_endpoint(_Quiet, local_addr=(HOST, 0), remote_addr=(HOST, port))
        gens.append(tr)
    ssrc = [0x10000000 + i for i in range(legs)]
    seq = [i * 7 & 0xFFFF for i in range(legs)]
    ts = [i * 1000 for i in range(legs)]
    first = build_rtp(0, seq[0], ts[0], ssrc[0], payload)
    assert _HDR.pack(0x80, 0, seq[0], ts[0], ssrc[0]) + payload == first   # same bytes as build_rtp
    groups = [list(range(k, legs, SLOTS)) for k in range(SLOTS)]
    sent = [0]

    def send_group(k: int) -> None:
        pack = _HDR.pack
        for i in groups[k]:
            gens[i].sendto(pack(0x80, 0, seq[i], ts[i], ssrc[i]) + payload)
            seq[i] = (seq[i] + 1) & 0xFFFF
            ts[i] = (ts[i] + 160) & 0xFFFFFFFF
        sent[0] += len(groups[k])

    await loop.run_in_executor(None, conn.recv)     # "go"
    t0 = loop.time()
    state = {"slot": 0, "run": True}
    step = PTIME / SLOTS

    def on_slot() -> None:
        if not state["run"]:
            return
        now = loop.time()
        s = state["slot"]
        while t0 + s * step <= now + 1e-4:          # catch up on missed slots, drift-free
            send_group(s % SLOTS)
            s += 1
        state["slot"] = s
        loop.call_at(t0 + s * step, on_slot)

    loop.call_at(t0, on_slot)
    await asyncio.sleep(warmup)
    all0, rx0, tx0, w0 = sum(p.n for _, p in sinks), sum(p.real for _, p in sinks), sent[0], time.perf_counter()
    await asyncio.sleep(seconds)
    all1, rx1, tx1, w1 = sum(p.n for _, p in sinks), sum(p.real for _, p in sinks), sent[0], time.perf_counter()
    state["run"] = False
    await asyncio.sleep(0.1)
    conn.send(dict(rx=rx1 - rx0, rx_all=all1 - all0, tx=tx1 - tx0, wall=w1 - w0))
    for tr in gens:
        tr.close()
    for tr, _ in sinks:
        tr.close()


# --- server process: MediaEngine or bare relay ------------------------------------------------------

def server_main(conn, mode: str, party: int, sink_ports: list[int], warmup: float, seconds: float) -> None:
    raise_nofile()
    loop = new_loop()
    coro = _engine(conn, party, sink_ports, warmup, seconds) if mode == "engine" else \
        _bare(conn, sink_ports, warmup, seconds)
    loop.run_until_complete(coro)
    loop.close()


class _TickObserver:
    """Per-tick lateness: time.monotonic() when the tick starts minus its due time on the loop clock.

    The engine's schedule is on time.monotonic(), and so is the bare relay's: uvloop's loop.time() (like
    asyncio's) is CLOCK_MONOTONIC, only in whole milliseconds, so its due times t0 + n * ptime compare
    directly with time.monotonic(); check_clock() makes sure the two clocks agree before trusting this.
    """

    def __init__(self) -> None:
        self.lat: list[float] = []
        self.record = False

    def seen(self, due: float) -> None:
        if self.record:
            self.lat.append((time.monotonic() - due) * 1000)


def check_clock(loop) -> float:
    """Offset of time.monotonic() from loop.time(), seconds (must be within the 1 ms truncation)."""
    off = time.monotonic() - loop.time()
    if not -0.0005 <= off <= 0.005:
        raise RuntimeError(f"loop clock is not CLOCK_MONOTONIC (offset {off:.6f} s); lateness would be wrong")
    return off


async def _measure(conn, loop, warmup: float, seconds: float, obs: _TickObserver, rx_total) -> dict:
    await loop.run_in_executor(None, conn.recv)     # "go"
    await asyncio.sleep(warmup)
    c0, w0, r0 = cpu_seconds(), time.perf_counter(), rx_total()
    obs.record = True
    await asyncio.sleep(seconds)
    obs.record = False
    c1, w1, r1 = cpu_seconds(), time.perf_counter(), rx_total()
    p50, p99, mx = percentiles(obs.lat)
    return dict(cpu=c1 - c0, wall=w1 - w0, rx=r1 - r0, lat_p50=p50, lat_p99=p99, lat_max=mx, ticks=len(obs.lat))


async def _engine(conn, party: int, sink_ports: list[int], warmup: float, seconds: float) -> None:
    from media.engine import MediaEngine
    loop = asyncio.get_running_loop()
    engine = MediaEngine(loop, address=HOST, port_range=(40000, 59999))
    streams = []
    rng = np.random.default_rng(3)
    moh = (rng.standard_normal((500, 160)) * 2000).astype(np.int16)      # 10 s, loaded once like a prompt
    for i in range(len(sink_ports)):
        s = await engine.open_stream()
        s.set_remote(HOST, sink_ports[i], pt=0, latch=False)
        if party == 1:
            engine.play(s, moh, loop=True)
        else:
            engine.join(s, f"room-{i // party}")
        streams.append(s)
    obs = _TickObserver()
    orig_tick = engine._tick            # instance attribute shadows the method; the engine is not edited

    def observed_tick(n, now):
        obs.seen(now)                   # the engine passes due(n) as `now`
        return orig_tick(n, now)
    engine._tick = observed_tick
    conn.send([s.port for s in streams])
    check_clock(loop)
    await engine.start()
    st0 = dict(engine.stats)
    res = await _measure(conn, loop, warmup, seconds, obs, lambda: sum(s.stats["rx_packets"] for s in streams))
    st1 = dict(engine.stats)
    res.update(late_ticks=st1["late_ticks"] - st0["late_ticks"], skipped=st1["skipped_ticks"] - st0["skipped_ticks"],
               max_lateness_ms=st1["max_lateness_ms"], max_tick_ms=st1["max_tick_ms"],
               garbage=sum(s.counters["garbage"] for s in streams))
    conn.send(res)
    await engine.stop()


class _Relay(asyncio.DatagramProtocol):
    __slots__ = ("transport", "peer", "sink", "n")

    def __init__(self, sink) -> None:
        self.transport = None
        self.peer: _Relay | None = None
        self.sink = sink
        self.n = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data, addr) -> None:
        self.n += 1
        p = self.peer
        p.transport.sendto(data, p.sink)

    def error_received(self, exc) -> None:
        pass


async def _bare(conn, sink_ports: list[int], warmup: float, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    legs = []
    for i in range(len(sink_ports)):
        _, pr = await loop.create_datagram_endpoint(lambda i=i: _Relay((HOST, sink_ports[i])), local_addr=(HOST, 0))
        legs.append(pr)
    for a, b in zip(legs[0::2], legs[1::2]):
        a.peer, b.peer = b, a
    conn.send([p.transport.get_extra_info("sockname")[1] for p in legs])
    # an empty 20 ms ticker: how late the loop runs timer callbacks under this load
    obs = _TickObserver()
    check_clock(loop)
    t0 = loop.time()
    state = {"n": 0, "run": True}

    def tick() -> None:
        if not state["run"]:
            return
        n = state["n"]
        obs.seen(t0 + n * PTIME)
        n += 1
        while t0 + n * PTIME <= loop.time():
            n += 1
        state["n"] = n
        loop.call_at(t0 + n * PTIME, tick)
    loop.call_at(t0, tick)
    res = await _measure(conn, loop, warmup, seconds, obs, lambda: sum(p.n for p in legs))
    state["run"] = False
    conn.send(res)
    for p in legs:
        p.transport.close()


# --- orchestration ----------------------------------------------------------------------------------

def run_one(mode: str, calls: int, warmup: float, seconds: float, party: int = 2) -> tuple[dict, dict]:
    ctx = mp.get_context("spawn")
    lp, lc = ctx.Pipe()
    sp, sc = ctx.Pipe()
    load = ctx.Process(target=load_main, args=(lc, party * calls, warmup, seconds, party), daemon=True)
    load.start()
    try:
        sink_ports = lp.recv()
        server = ctx.Process(target=server_main, args=(sc, mode, party, sink_ports, warmup, seconds), daemon=True)
        server.start()
        try:
            targets = sp.recv()
            lp.send(targets)
            time.sleep(0.3)                 # let the load process bind its generators
            sp.send("go")
            lp.send("go")
            timeout = warmup + seconds + 60
            if not sp.poll(timeout) or not lp.poll(timeout):
                raise RuntimeError(f"{mode} run with {calls} calls did not report")
            srv, ld = sp.recv(), lp.recv()
        finally:
            server.join(10)
            if server.is_alive():
                server.kill()
    finally:
        load.join(10)
        if load.is_alive():
            load.kill()
    return srv, ld


def medians(runs: list[dict]) -> dict:
    """Figure by figure, the median over repeated runs (a shared machine is noisy)."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def relay_figures(eng: dict, eld: dict, bare: dict, bld: dict) -> dict:
    """The figures of one engine run and one bare run at the same load."""
    f = dict(offered=eld["tx"] / eld["wall"], e_pps=eld["rx"] / eld["wall"], b_pps=bld["rx"] / bld["wall"],
             e_cpu=100 * eng["cpu"] / eng["wall"], b_cpu=100 * bare["cpu"] / bare["wall"],
             # CPU per packet handled: the engine receives one and sends one per leg per tick, bare the same
             e_us=1e6 * eng["cpu"] / max(1, eld["rx"]), b_us=1e6 * bare["cpu"] / max(1, bld["rx"]),
             e_in=eng["rx"] / eng["wall"], b_in=bare["rx"] / bare["wall"], b_tx=bld["tx"] / bld["wall"],
             e_other=(eld["rx_all"] - eld["rx"]) / eld["wall"])
    f.update({f"e_{k}": eng[k] for k in ("lat_p50", "lat_p99", "lat_max", "late_ticks", "skipped", "ticks",
                                          "max_lateness_ms", "max_tick_ms")})
    f.update(b_lat_p50=bare["lat_p50"], b_lat_p99=bare["lat_p99"])
    f["ratio"] = f["e_pps"] / f["b_pps"] if f["b_pps"] else float("nan")
    # packets per CPU-second, engine / bare: the capacity ratio once the engine's core is the limit
    f["cpu_ratio"] = f["b_us"] / f["e_us"] if f["e_us"] else float("nan")
    return f


def mixed(rooms_list: list[int], a) -> None:
    """Engine only: rooms of `party` legs mixed on each tick, or (party 1) callers on music on hold."""
    print(f"rtp_relay_bench --party {a.party}: uvloop {uvloop.__version__}, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs; {a.seconds:g} s measured after {a.warmup:g} s warm-up per run; 50 pps per leg"
          + (f"; medians of {a.repeat} runs each" if a.repeat > 1 else ""))
    hdr = (f"{'rooms':>5} {'legs':>5} {'offered pps':>11} | {'pps in':>8} {'pps out':>8} {'CPU%':>6} "
           f"{'us/leg-s':>8} | {'lateness p50':>12} {'p99':>6} {'max':>6} {'late/skip':>9} {'max tick':>8}")
    print(hdr)
    print("-" * len(hdr))
    for rooms in rooms_list:
        legs = a.party * rooms

        def figures(eng: dict, eld: dict) -> dict:
            return dict(offered=eld["tx"] / eld["wall"], pps_in=eng["rx"] / eng["wall"],
                        pps_out=eld["rx"] / eld["wall"], cpu=100 * eng["cpu"] / eng["wall"],
                        us_leg=1e6 * eng["cpu"] / eng["wall"] / legs, **{k: eng[k] for k in (
                            "lat_p50", "lat_p99", "lat_max", "late_ticks", "skipped", "max_tick_ms")})
        f = medians([figures(*run_one("engine", rooms, a.warmup, a.seconds, a.party))
                     for _ in range(max(1, a.repeat))])
        print(f"{rooms:>5} {legs:>5} {f['offered']:>11.0f} | {f['pps_in']:>8.0f} {f['pps_out']:>8.0f} "
              f"{f['cpu']:>6.1f} {f['us_leg']:>8.1f} | {f['lat_p50']:>12.2f} {f['lat_p99']:>6.2f} "
              f"{f['lat_max']:>6.1f} {f['late_ticks']:>4g}/{f['skipped']:<4g} {f['max_tick_ms']:>8.1f}")
    print()
    print("(us/leg-s = server CPU microseconds per leg per second: receiving 50 packets and sending 50 frames of "
          "room audio or music on hold; lateness and max tick (the longest tick's own run time) in ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", default="100,300,600", help="comma list of concurrent two-party calls")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of load before measuring")
    ap.add_argument("--repeat", type=int, default=1,
                    help="engine and bare runs per load, alternating; each figure is the median over the runs")
    ap.add_argument("--party", type=int, default=2,
                    help="legs per room; above 2 the engine mixes every room, 1 puts every leg on music on "
                         "hold (neither has a bare relay to compare with)")
    ap.add_argument("--quick", action="store_true", help="20 calls, 0.5 s after 0.3 s warm-up (a smoke run)")
    a = ap.parse_args()
    if a.quick:
        a.calls, a.seconds, a.warmup, a.repeat = "20", 0.5, 0.3, 1
    if a.party < 1:
        ap.error("--party: 1 (callers on hold), 2 (calls) or more (conference rooms)")
    calls_list = [int(x) for x in a.calls.split(",")]
    if a.party != 2:
        mixed(calls_list, a)
        return
    print(f"rtp_relay_bench: uvloop {uvloop.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
          f"{a.seconds:g} s measured after {a.warmup:g} s warm-up per run; 50 pps per leg, 2 legs per call"
          + (f"; medians of {a.repeat} runs each" if a.repeat > 1 else ""))
    print("server CPU% = getrusage(user+sys) of the server process / wall; tick lateness = time.monotonic() at "
          "tick start - due time on the 20 ms schedule (engine: its own ticks; bare: an empty call_at ticker)")
    print()
    hdr = (f"{'calls':>5} {'offered pps':>11} | {'engine pps':>10} {'CPU%':>6} {'us/pkt':>7} {'tick p50':>8} "
           f"{'p99':>6} {'max':>6} {'late/skip':>9} | {'bare pps':>9} {'CPU%':>6} {'us/pkt':>7} {'p50':>6} {'p99':>6} |"
           f" {'ratio':>6} {'per-CPU':>7}")
    print(hdr)
    print("-" * len(hdr))
    rows = []
    for calls in calls_list:
        f = medians([relay_figures(*run_one("engine", calls, a.warmup, a.seconds),
                                   *run_one("bare", calls, a.warmup, a.seconds)) for _ in range(max(1, a.repeat))])
        rows.append((calls, f["ratio"], f["cpu_ratio"], f["e_lat_p99"]))
        print(f"{calls:>5} {f['offered']:>11.0f} | {f['e_pps']:>10.0f} {f['e_cpu']:>6.1f} {f['e_us']:>7.1f} "
              f"{f['e_lat_p50']:>8.2f} {f['e_lat_p99']:>6.2f} {f['e_lat_max']:>6.1f} "
              f"{f['e_late_ticks']:>4g}/{f['e_skipped']:<4g} | {f['b_pps']:>9.0f} {f['b_cpu']:>6.1f} "
              f"{f['b_us']:>7.1f} {f['b_lat_p50']:>6.2f} {f['b_lat_p99']:>6.2f} | {f['ratio']:>6.2f} "
              f"{f['cpu_ratio']:>7.2f}")
        print(f"{'':>5} engine: accepted {f['e_in']:.0f} RTP pps in, {f['e_ticks']:g} ticks observed, "
              f"stats max_lateness_ms {f['e_max_lateness_ms']:.1f}, max_tick_ms {f['e_max_tick_ms']:.1f}; "
              f"bare: {f['b_in']:.0f} pps in; load process sent {f['offered']:.0f} / {f['b_tx']:.0f} pps; "
              f"engine sent {f['e_other']:.0f} pps more that were not relayed packets (silence), not counted")
    print()
    print("(ratio = engine packets/s out / bare relay packets/s out at the same offered load; per-CPU = packets "
          "per CPU-second of the server process, engine / bare, i.e. the rate ratio once one core is the limit;")
    print(" pps out counts only packets relayed from a received one, not silence sent for a missing frame; "
          "lateness in ms; "
          "late/skip = engine catch-up / dropped ticks in the window)")
    print(TARGET)
    for calls, ratio, cpu_ratio, p99 in rows:
        # Below saturation both deliver what is offered; the per-CPU ratio is the capacity ratio.
        ok = ratio >= 0.99 and cpu_ratio >= 0.75 and p99 < 5
        print(f"measured: {calls} calls: {100 * ratio:.0f}% of bare relay rate at equal offered load, "
              f"{100 * cpu_ratio:.0f}% of its packets per CPU-second, p99 tick lateness {p99:.2f} ms "
              f"-> {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
