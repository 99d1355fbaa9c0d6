"""MediaEngine over real UDP sockets on 127.0.0.1: rooms, prompts, ticker, DTMF, recording, modes, video.

The "phones" are plain blocking Python sockets with a receiver thread collecting every datagram. Most
tests run the engine on a clock they move themselves (Clock): the phones' packets are handed to the
streams between ticks, so what is counted does not depend on the host's speed or load. The tests of the
real timer and of real packet I/O assert only what a slow host cannot change.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import socket
import threading
import time

import numpy as np
import pytest

from media import g711
from media.dtmf import DtmfReceiver, tone_packets
from media.engine import MediaEngine
from media.rtp import ReceiverReport, SenderReport, build_rtcp, build_rtp, parse_rtcp, parse_rtp
from media.wav import dominant_frequency, frames, goertzel, read_wav_raw, tone

try:
    import uvloop
except ImportError:     # pragma: no cover
    uvloop = None

LOOPS = ["asyncio"] + (["uvloop"] if uvloop is not None else [])
CODEC = {0: "PCMU", 8: "PCMA"}


def run(coro_fn, loop_kind: str = "asyncio", timeout: float = 15.0):
    factory = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(coro_fn(), timeout))


@contextlib.asynccontextmanager
async def engine_running(**kw):
    eng = MediaEngine(asyncio.get_running_loop(), **kw)
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()


class Clock:
    """The engine's clock, moved by the test. A tick runs only when the test steps to it, and the phones'
    datagrams are handed to the streams' protocols between ticks (as if they had arrived then), so what a
    test counts does not depend on how fast the host is or what else it runs. What the engine sends still
    leaves through its real sockets; settle() waits until the phones have it."""

    def __init__(self, eng: MediaEngine) -> None:
        self.eng = eng
        self.t = eng.loop.time() + 1e6      # far ahead of the loop's clock: the engine's own timer never fires
        self.sources: list = []             # [phone, stream, iterator of datagrams]: one datagram per tick
        self.pairs: list = []               # (phone, stream) whose output settle() waits for
        eng.clock = lambda: self.t

    def watch(self, phone: "Phone", stream) -> None:
        if (phone, stream) not in self.pairs:
            self.pairs.append((phone, stream))

    def deliver(self, phone: "Phone", stream, data: bytes, rtcp: bool = False) -> None:
        transport = stream.rtcp_transport if rtcp else stream.transport
        transport.get_protocol().datagram_received(data, ("127.0.0.1", phone.port))

    def feed(self, phone: "Phone", stream, datagrams) -> None:
        self.watch(phone, stream)
        self.sources.append([phone, stream, iter(datagrams)])

    def audio(self, phone: "Phone", stream, pcm_frames) -> None:
        """A phone talking: frame k arrives between ticks k and k + 1 from now."""
        def packets():
            for k, f in enumerate(pcm_frames):
                pkt = phone.rtp(g711.encode(f, CODEC[phone.pt]), marker=k == 0)
                phone.ts = (phone.ts + 160) & 0xFFFFFFFF
                yield pkt
        self.feed(phone, stream, packets())

    async def step(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.t += self.eng.ptime / 2
            for src in list(self.sources):
                phone, stream, it = src
                data = next(it, None)
                if data is None:
                    self.sources.remove(src)
                elif not stream.closed:
                    self.deliver(phone, stream, data)
            self.t += self.eng.ptime / 2
            self.eng.run_due()
            await asyncio.sleep(0)          # futures resolved by the tick run their callbacks

    async def seconds(self, s: float) -> None:
        await self.step(round(s / self.eng.ptime))

    async def until(self, fut, limit: int = 1000) -> None:
        for _ in range(limit):
            if fut.done():
                return
            await self.step()
        raise AssertionError(f"not done after {limit} ticks")

    async def settle(self) -> None:
        """Wait (on the wall clock, only as a bound on a hang) until every watched phone has received
        everything its stream sent it."""
        deadline = time.monotonic() + 20
        for phone, stream in self.pairs:
            want = stream.stats["tx_packets"]
            while phone.mark() < want:
                assert time.monotonic() < deadline, (phone.mark(), want)
                await asyncio.sleep(0.005)


async def until(pred, what: str = "") -> None:
    """Wait for a condition; the wall-clock deadline only bounds a hang."""
    deadline = time.monotonic() + 20
    while not pred():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def clocked_engine(**kw):
    eng = MediaEngine(asyncio.get_running_loop(), **kw)
    clk = Clock(eng)
    await eng.start()
    eng.run_due()                           # tick 0, due now
    try:
        yield eng, clk
    finally:
        await eng.stop()


class Phone:
    """A UDP endpoint on 127.0.0.1 with a receiver thread; sends G.711 frames or raw datagrams."""

    def __init__(self, pt: int = 0) -> None:
        self.pt = pt
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)    # a stalled receiver loses nothing
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.02)
        self.port = self.sock.getsockname()[1]
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)
        self.raw: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._recv_loop, daemon=True)]
        self._threads[0].start()

    def _recv_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.raw.append((time.monotonic(), data))

    def sendto(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, ("127.0.0.1", port))

    def rtp(self, payload: bytes, pt: int | None = None, marker: bool = False, ts: int | None = None) -> bytes:
        pkt = build_rtp(self.pt if pt is None else pt, self.seq, self.ts if ts is None else ts, self.ssrc,
                        payload, marker=marker)
        self.seq = (self.seq + 1) & 0xFFFF
        return pkt

    def mark(self) -> int:
        return len(self.raw)

    def packets(self, since: int = 0, pt: int | None = None) -> list:
        out = [parse_rtp(d) for _, d in self.raw[since:]]
        return [p for p in out if pt is None or p.payload_type == pt]

    def audio(self, since: int = 0) -> np.ndarray:
        pk = self.packets(since, self.pt)
        if not pk:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate([g711.decode(p.payload, CODEC[self.pt]) for p in pk])

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.sock.close()


@pytest.fixture
def phones():
    made: list[Phone] = []

    def make(pt: int = 0) -> Phone:
        p = Phone(pt)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


async def streams_for(eng: MediaEngine, *phones: Phone, room=None) -> list:
    """One engine stream per phone, sending to it in its codec; all joined to `room` if given."""
    out = []
    for p in phones:
        s = await eng.open_stream()
        s.set_remote("127.0.0.1", p.port, p.pt)
        if room is not None:
            eng.join(s, room)
        out.append(s)
    return out


def trace_ticks(eng: MediaEngine, stamp) -> list:
    """Record stamp(n, now) as each of the engine's ticks starts."""
    seen: list = []
    real_tick = eng._tick

    def traced(n, now):
        seen.append(stamp(n, now))
        real_tick(n, now)
    eng._tick = traced
    return seen


def power(x: np.ndarray, f: float) -> float:
    return goertzel(x, f) / max(1, len(x)) ** 2


def active_frames(x: np.ndarray, threshold: float = 1000.0) -> int:
    n = len(x) // 160
    if n == 0:
        return 0
    rms = np.sqrt(np.mean(x[: n * 160].reshape(n, 160).astype(np.float64) ** 2, axis=1))
    return int(np.sum(rms > threshold))


# --- (1) two parties in a room ---------------------------------------------------------------------

@pytest.mark.parametrize("loop_kind", LOOPS)
def test_two_party_room_each_hears_the_other(phones, loop_kind):
    pa, pb = phones(0), phones(8)          # PCMU on one leg, PCMA on the other: the engine transcodes

    async def scenario():
        async with clocked_engine() as (eng, clk):
            a = await eng.open_stream()
            b = await eng.open_stream()
            assert a.port % 2 == 0 and b.port % 2 == 0 and a.port != b.port
            a.set_remote("127.0.0.1", pa.port, 0)
            b.set_remote("127.0.0.1", pb.port, 8)
            eng.join(a, "call")
            eng.join(b, "call")
            clk.audio(pa, a, frames(tone(440, 1.0)))
            clk.audio(pb, b, frames(tone(1000, 1.0)))
            await clk.seconds(1.25)
            await clk.settle()
            return dict(a.stats), dict(b.stats)

    sa, sb = run(scenario, loop_kind)
    for phone, own, other in ((pa, 440, 1000), (pb, 1000, 440)):
        x = phone.audio()
        assert active_frames(x) >= 40, "most of the other party's second of tone arrives"
        assert abs(dominant_frequency(x) - other) < 10
        assert power(x, own) < 1e-3 * power(x, other), "nobody hears themselves"
        # RTP framing of what the engine sent: one SSRC, +1 seq, +160 timestamp, marker on the first only.
        pk = phone.packets()
        assert {p.payload_type for p in pk} == {phone.pt}
        assert len({p.ssrc for p in pk}) == 1
        assert all((q.seq - p.seq) & 0xFFFF == 1 for p, q in zip(pk, pk[1:]))
        assert all((q.timestamp - p.timestamp) & 0xFFFFFFFF == 160 for p, q in zip(pk, pk[1:]))
        assert pk[0].marker and not any(p.marker for p in pk[1:])
        assert all(len(p.payload) == 160 for p in pk)
    for st in (sa, sb):
        # a packet for each of the other's frames; the quarter second after both tones ended, the room is
        # silent and sends nothing (as the phones do), where it sent silence before
        assert st["rx_packets"] == 50 and st["lost"] == 0 and st["tx_packets"] == 50
        assert st["garbage"] == 0 and st["errors"] == 0


def test_a_silent_room_sends_nothing_then_marks_the_first_packet_when_someone_speaks(phones):
    pa, pb = phones(0), phones(8)          # different codecs: the pair is mixed by the tick, not relayed

    async def scenario():
        async with clocked_engine() as (eng, clk):
            a, b = await eng.open_stream(), await eng.open_stream()
            a.set_remote("127.0.0.1", pa.port, 0)
            b.set_remote("127.0.0.1", pb.port, 8)
            eng.join(a, "call")
            eng.join(b, "call")
            await clk.seconds(0.3)              # nobody speaks: nothing sent either way
            await clk.settle()
            quiet = (pa.mark(), pb.mark(), a.stats["tx_packets"], b.stats["tx_packets"])
            clk.audio(pa, a, frames(tone(440, 0.2)))
            clk.watch(pb, b)                    # settle() waits for what b sent too
            await clk.seconds(0.4)
            await clk.settle()
            return quiet

    quiet = run(scenario)
    assert quiet == (0, 0, 0, 0)
    pk = pb.packets()
    assert len(pk) == 10 and pk[0].marker and not any(p.marker for p in pk[1:])
    assert abs(dominant_frequency(pb.audio()) - 440) < 10
    # the speaker hears the silence of the other (its own voice makes the room sound), then nothing again
    assert len(pa.packets()) == 10


# --- (2) prompts and music on hold ----------------------------------------------------------------

def test_play_prompt_then_music_on_hold(phones):
    p = phones(0)

    async def scenario():
        async with clocked_engine() as (eng, clk):
            s = await eng.open_stream()
            s.set_remote("127.0.0.1", p.port, 0)
            clk.watch(p, s)
            started = clk.t
            prompt = eng.play(s, frames(tone(600, 0.5)))
            await clk.until(prompt)
            result = prompt.result()
            elapsed = clk.t - started
            await clk.seconds(0.1)
            await clk.settle()
            after_prompt = p.mark()
            await clk.seconds(0.1)
            await clk.settle()
            silent_after = p.mark() - after_prompt       # not in a room, not playing: sends nothing
            # Music on hold: a 0.1 s loop keeps playing until stopped.
            moh_start = p.mark()
            fut = eng.play(s, frames(tone(800, 0.1)), loop=True)
            await clk.seconds(0.4)
            eng.stop_play(s)
            moh_result = await fut
            await clk.settle()
            moh = p.mark() - moh_start
            # A prompt still playing when the engine stops resolves False.
            pending = eng.play(s, frames(tone(800, 5.0)))
        return result, elapsed, after_prompt, silent_after, moh_start, moh, moh_result, pending

    result, elapsed, after_prompt, silent_after, moh_start, moh, moh_result, pending = run(scenario)
    assert result is True
    assert 0.49 <= elapsed <= 0.53, elapsed         # 25 frames: done on the tick after the last one
    prompt = p.audio(0)[: after_prompt * 160]
    assert after_prompt == 25
    assert abs(dominant_frequency(prompt) - 600) < 10
    assert silent_after == 0
    assert moh_result is False
    assert 19 <= moh <= 21, "the 5-frame loop repeated for the whole 0.4 s"
    assert abs(dominant_frequency(p.audio(moh_start)) - 800) < 10
    assert pending.done() and pending.result() is False


def test_caller_on_hold_is_counted_not_played_out_then_heard_again(phones):
    """A caller taken out of a conference onto music on hold: heard by nobody, so its packets are counted
    but not played out; back in the room it is heard at once, the pause counted as neither loss nor a
    restart of its stream."""
    pc, pa, pb = phones(0), phones(0), phones(0)

    async def scenario():
        async with clocked_engine() as (eng, clk):
            c, a, b = await streams_for(eng, pc, pa, pb, room="conf")
            clk.watch(pa, a)
            clk.audio(pc, c, frames(tone(440, 2.0)))
            await clk.seconds(0.4)
            in_room = c.jb.stats.played
            eng.leave(c)
            moh = eng.play(c, frames(tone(800, 0.1)), loop=True)
            await clk.seconds(0.6)
            on_hold = dict(c.stats), c.jb.stats.played
            eng.stop_play(c)
            await moh
            eng.join(c, "conf")
            await clk.seconds(0.15)
            await clk.settle()
            m = pa.mark()
            await clk.seconds(0.4)
            await clk.settle()
            return in_room, on_hold, pa.audio(m), dict(c.stats), c.jb.stats

    in_room, (held, played_by_then), heard, after, js = run(scenario)
    assert in_room >= 10 and played_by_then <= in_room + 3      # nothing played out while on hold
    assert held["rx_packets"] >= 45 and held["lost"] == 0
    assert abs(dominant_frequency(heard) - 440) < 10 and active_frames(heard) >= 15
    assert after["rx_packets"] > held["rx_packets"] and after["lost"] == 0
    assert after["concealed"] <= 3 and js.resyncs == 0, (after, js)


def test_prompt_replaces_room_audio(phones):
    pa, pb = phones(0), phones(0)

    async def scenario():
        async with clocked_engine() as (eng, clk):
            a, b = await streams_for(eng, pa, pb, room="r")
            # 1050 Hz is off the 100 Hz line grid of the 700 Hz prompt's own G.711 distortion.
            clk.audio(pb, b, frames(tone(1050, 0.6)))
            clk.audio(pa, a, frames(tone(440, 0.6)))
            await clk.seconds(0.1)
            await clk.settle()
            m = pa.mark()
            await clk.until(eng.play(a, frames(tone(700, 0.3))))
            await clk.settle()
            end = pa.mark()
            await clk.seconds(0.4)              # the rest of the tones
            await clk.settle()
            return m, end

    m, end = run(scenario)
    assert 15 <= end - m <= 17
    # The frames at the edges may be room audio still in flight when play() started, or sent on the tick
    # after the prompt ended (when the future resolves); the middle of the window is the prompt alone.
    x = pa.audio(m)[2 * 160: 13 * 160]
    assert abs(dominant_frequency(x) - 700) < 10
    assert power(x, 1050) < 1e-3 * power(x, 700), "while the prompt plays the room is not heard"
    assert abs(dominant_frequency(pb.audio()) - 440) < 10, "but the room still hears the listener"


# --- (3) the ticker ------------------------------------------------------------------------------

@pytest.mark.parametrize("loop_kind", LOOPS)
def test_ticker_keeps_time_and_catches_up(loop_kind):
    async def scenario():
        loop = asyncio.get_running_loop()
        async with engine_running() as eng:
            s = await eng.open_stream()          # some real work on every tick
            eng.join(s, "alone")
            seen = trace_ticks(eng, lambda n, now: (n, loop.time()))
            await asyncio.sleep(1.0)
            first = dict(eng.stats)
            loop.call_soon(time.sleep, 0.1)      # a deliberately blocked loop
            await asyncio.sleep(1.0)
            end = loop.time()
            return eng.t0, end, first, dict(eng.stats), seen

    t0, end, first, st, seen = run(scenario, loop_kind)
    ptime = 0.02
    elapsed = end - t0
    # Only what a slow or busy host cannot change is checked here (how late ticks run on this host is
    # for benchmarks/; the catch-up itself is checked on a clock moved by hand, below).
    # No drift: every tick the clock says is due ran or was counted as skipped (a stall of over 1 s).
    assert abs(st["ticks"] + st["skipped_ticks"] - (int(elapsed / ptime) + 1)) <= 1
    assert st["ticks"] >= 50
    if st["skipped_ticks"] == 0:
        assert [n for n, _ in seen] == list(range(seen[0][0], seen[0][0] + len(seen)))
    for n, at in seen:
        assert at >= t0 + n * ptime - 0.002, "never early"
    # The block (at least 100 ms) is caught up back-to-back and counted.
    assert st["late_ticks"] - first["late_ticks"] >= 4
    assert st["max_lateness_ms"] >= 80


def test_a_blocked_loop_is_caught_up_back_to_back_then_ticks_are_on_time_again():
    """On a clock moved by hand: ticks run on time are not late; after a 100 ms block the four ticks
    missed run back to back behind the first one and count as late; then the schedule is on time
    again; a stall longer than max_catchup ticks drops the oldest and stays anchored at t0."""
    async def scenario():
        eng = MediaEngine(asyncio.get_running_loop(), max_catchup=10)
        s = await eng.open_stream()
        eng.join(s, "alone")                            # some real work on every tick
        clk = Clock(eng)
        seen = trace_ticks(eng, lambda n, due: (n, due, clk.t))
        await eng.start()
        eng.run_due()
        await clk.step(20)
        on_time = dict(eng.stats)
        clk.t += 0.101                                  # the loop blocked for 100 ms (and a bit)
        eng.run_due()
        blocked = dict(eng.stats), len(seen)
        await clk.step(10)
        after = dict(eng.stats), len(seen)
        clk.t += 1.0                                    # 50 ticks: more than max_catchup
        eng.run_due()
        stalled = dict(eng.stats), eng.tick_no, eng.t0, clk.t
        await eng.stop()
        return seen, on_time, blocked, after, stalled

    seen, on_time, (blocked, n_blocked), (after, n_after), (stalled, tick_no, t0, t) = run(scenario)
    assert on_time["ticks"] == 21 and on_time["late_ticks"] == 0 and on_time["max_lateness_ms"] < 0.001
    assert [n for n, _, _ in seen[:n_after]] == list(range(n_after))
    assert blocked["ticks"] == 26 and blocked["late_ticks"] == 4                  # 5 due: 1 + 4 back to back
    assert blocked["max_lateness_ms"] == pytest.approx(81, abs=0.01)
    assert len({at for _, _, at in seen[21:n_blocked]}) == 1                      # all at once
    assert after["ticks"] == 36 and after["late_ticks"] == 4
    assert all(at - due < 0.011 for _, due, at in seen[n_blocked:n_after]), "on time again"
    assert stalled["skipped_ticks"] == 50 - 1 - 10 and stalled["late_ticks"] == 4 + 10
    assert tick_no == int((t - t0) / 0.02 + 1e-6) + 1, "the schedule stays anchored at t0"


def test_packet_paths_run_due_ticks_within_the_catch_up_budget():
    """With a clock the test moves by hand (no loop iteration in between): a datagram arriving after a
    tick fell due runs it; an engine whose ticks cost more than a tick runs one budget of catch-up and
    then leaves the catch-up to its timer, instead of running another budget on every datagram."""
    async def scenario():
        eng = MediaEngine(asyncio.get_running_loop(), max_catchup=4)
        s = await eng.open_stream()
        eng.join(s, "alone")
        clock = [1000.0]
        eng.clock = lambda: clock[0]
        await eng.start()                               # tick 0 due now; nothing has run yet
        proto = s.transport.get_protocol()

        def datagram():
            proto.datagram_received(b"\x00", ("127.0.0.1", 9))     # garbage: counted, then the clock check
        datagram()
        on_time = eng.stats["ticks"]
        clock[0] += 0.05                                # ticks 1 and 2 fall due
        datagram()
        caught_up = eng.stats["ticks"]
        real_tick = eng._tick

        def slow_tick(n, now):                          # every tick now costs 30 ms of clock
            clock[0] += 0.03
            real_tick(n, now)
        eng._tick = slow_tick
        clock[0] += 0.1
        datagram()
        overloaded = eng.stats["ticks"]
        datagram()
        datagram()
        again = eng.stats["ticks"]
        clock[0] += 0.02
        datagram()
        next_budget = eng.stats["ticks"]
        await eng.stop()
        return on_time, caught_up, overloaded, again, next_budget, s.counters["garbage"]

    on_time, caught_up, overloaded, again, next_budget, garbage = run(scenario)
    assert (on_time, caught_up) == (1, 3)
    assert overloaded == caught_up + 5                  # one budget: max_catchup + 1 ticks
    assert again == overloaded                          # no new budget per datagram
    assert next_budget == overloaded + 5                # a tick later, the next budget
    assert garbage == 6


def test_early_timer_waits_and_a_stopped_engine_ticks_no_more():
    async def scenario():
        loop = asyncio.get_running_loop()
        eng = MediaEngine(loop)
        s = await eng.open_stream()
        clock = [500.0]
        eng.clock = lambda: clock[0]
        await eng.start()
        eng.run_due()                                   # tick 0
        clock[0] += 0.0185                              # tick 1 is due in 1.5 ms: a timer this early waits
        before = loop.time()
        eng.run_due()
        early = eng.stats["ticks"], eng._handle.when() - before
        clock[0] += 0.002
        eng.run_due()
        on_time = eng.stats["ticks"]
        await eng.stop()
        clock[0] += 1.0
        s.transport.get_protocol().datagram_received(b"\x00", ("127.0.0.1", 9))     # on a closed stream
        return early, on_time, eng.stats["ticks"], eng.next_due, eng._handle

    (early_ticks, wait), on_time, after_stop, next_due, handle = run(scenario)
    assert early_ticks == 1 and wait >= 0.001 - 1e-9      # at least 1 ms after the call (float rounding aside)
    assert on_time == 2
    assert after_stop == 2 and next_due == float("inf") and handle is None


@pytest.mark.parametrize("relayed", [True, False], ids=["relay", "mixed"])
def test_ticks_run_from_the_packet_paths_through_a_long_burst_of_packets(relayed):
    """uvloop (the node's loop) runs timers only between iterations, and one iteration reading a burst
    of thousands of queued packets (up to 32 per socket, for every ready socket) takes far longer than a
    tick, so the packet paths run the due ticks themselves. Here the burst is handed to the streams'
    protocols one datagram after the other with no loop iteration in between (so the timer can never
    run) on a clock the test moves by hand: each datagram costs 50 us of clock. Every tick that falls due
    during the burst must run from a datagram soon after, on time: a mixed stream checks the clock on
    every datagram, a relayed one on one packet in 8 of its stream. (How late ticks run on a real host
    is measured by benchmarks/tick_burst_bench.py.)"""
    calls, per_leg, cost = 105, 60, 50e-6          # 210 legs: 105 relayed pairs, or 70 mixed rooms of 3
    rnd = random.Random(15)

    async def scenario():
        eng = MediaEngine(asyncio.get_running_loop(), port_range=(42000, 48000))
        legs = []
        for i in range(2 * calls):
            s = await eng.open_stream()
            s.set_remote("127.0.0.1", 9, pt=0, latch=False)     # discard port: nobody listens
            eng.join(s, f"call-{i // 2}" if relayed else f"room-{i // 3}")
            legs.append(s)
        clock = [1000.0]
        eng.clock = lambda: clock[0]
        seen = trace_ticks(eng, lambda n, due: (due, clock[0]))
        await eng.start()                               # tick 0 due now; from here on nothing awaits
        ssrc = {s.port: rnd.getrandbits(32) for s in legs}
        seq0 = {s.port: rnd.getrandbits(16) for s in legs}

        def deliver(s, k):
            clock[0] += cost
            seq = (seq0[s.port] + k) & 0xFFFF
            data = build_rtp(0, seq, 160 * k, ssrc[s.port], b"\xff" * 160)
            s.transport.get_protocol().datagram_received(data, ("127.0.0.1", 9))
        for k in range(3):                              # a few packets first, so relay routes are in place
            for s in legs:
                deliver(s, k)
        relayed_before = eng.stats["relayed_frames"]
        begin = clock[0]
        for k in range(3, 3 + per_leg):
            for s in legs:
                deliver(s, k)
        end = clock[0]
        out = (eng.t0, begin, end, seen, dict(eng.stats), relayed_before,
               sum(s.stats["rx_packets"] for s in legs), len(legs))
        await eng.stop()
        return out

    t0, begin, end, seen, st, relayed_before, rx, n_legs = run(scenario)
    assert rx == n_legs * (3 + per_leg)
    if relayed:
        assert st["relayed_frames"] - relayed_before == n_legs * per_leg, "the burst took the relay path"
    else:
        assert st["relayed_frames"] == 0
    # Every tick due by the end of the burst ran, in order, each one once, none of them caught up late.
    assert [round((due - t0) / 0.02) for due, _ in seen] == list(range(int((end - t0) / 0.02 + 1e-9) + 1))
    assert st["late_ticks"] == 0 and st["skipped_ticks"] == 0
    during = [at - due for due, at in seen if begin <= due]
    assert len(during) >= 0.9 * (end - begin) / 0.02        # the burst spans 31.5 ticks of clock
    # Late by at most the datagrams handled between two clock checks (a timer alone would have waited for
    # the whole burst: over 0.7 s of clock).
    bound = 60 * cost if relayed else 1.5 * cost
    assert max(during) <= bound, [round(1e6 * x) for x in during]


# --- (4) RFC 4733 --------------------------------------------------------------------------------

def test_dtmf_in_and_out(phones):
    p = phones(0)

    async def scenario():
        async with clocked_engine() as (eng, clk):
            s = await eng.open_stream()
            s.set_remote("127.0.0.1", p.port, 0, event_pt=101)
            clk.watch(p, s)
            digits: list[str] = []
            s.on_dtmf = digits.append
            ts = 5000
            for digit in "5#":
                pkts = tone_packets(digit, ts, 800)
                for k in pkts:
                    clk.deliver(p, s, p.rtp(k.payload, pt=101, marker=k.marker, ts=k.timestamp))
                    await clk.step()
                # A late retransmission of the end packet is still the same event.
                clk.deliver(p, s, p.rtp(pkts[-1].payload, pt=101, ts=pkts[-1].timestamp))
                ts += 1600
            await clk.seconds(0.1)
            s.send_dtmf("7")
            await clk.seconds(0.3)
            await clk.settle()
            return digits, dict(s.stats)

    digits, st = run(scenario)
    assert digits == ["5", "#"]
    assert st["dtmf_events"] == 2
    rx = DtmfReceiver()
    got = [d for pk in p.packets(pt=101) if (d := rx.feed(pk.timestamp, pk.payload, pk.marker))]
    assert got == ["7"]
    ev = p.packets(pt=101)
    assert len(ev) == 7 and len({pk.timestamp for pk in ev}) == 1   # 4 updates + 3 end packets
    assert ev[0].marker and not any(pk.marker for pk in ev[1:])


def test_dtmf_between_two_parties_of_different_codecs_is_sent_on_with_each_sides_payload_type(phones):
    """A carrier leg (PCMU, events on 101) and an agent phone (PCMA, events on 96) are mixed, not relayed: each
    digit one sends reaches the other as RFC 4733 events of the other's own payload type."""
    pa, pb = phones(0), phones(8)

    async def scenario():
        async with clocked_engine() as (eng, clk):
            a, b = await eng.open_stream(), await eng.open_stream()
            a.set_remote("127.0.0.1", pa.port, 0, event_pt=101)
            b.set_remote("127.0.0.1", pb.port, 8, event_pt=96)
            clk.watch(pa, a)
            clk.watch(pb, b)
            heard: list[str] = []
            a.on_dtmf = heard.append
            eng.join(a, "call"), eng.join(b, "call")
            await clk.step()
            routes = eng.routes()
            for sender, stream, pt, digit in ((pa, a, 101, "5"), (pb, b, 96, "#")):
                for k in tone_packets(digit, sender.ts, 800):
                    clk.deliver(sender, stream, sender.rtp(k.payload, pt=pt, marker=k.marker, ts=k.timestamp))
                    await clk.step()
                await clk.seconds(0.3)
            await clk.settle()
            return routes, heard

    routes, heard = run(scenario)
    assert routes == {}, "different codecs: mixed, not relayed"
    assert heard == ["5"]                   # the digit still reaches the node's own listener
    for phone, pt, digit, other in ((pb, 96, "5", 101), (pa, 101, "#", 96)):
        rx = DtmfReceiver()
        got = [d for pk in phone.packets(pt=pt) if (d := rx.feed(pk.timestamp, pk.payload, pk.marker))]
        assert got == [digit], f"{digit} as payload type {pt}"
        assert not phone.packets(pt=other)


# --- (5) recording -------------------------------------------------------------------------------

def test_recording_is_stereo_customer_left_agent_right(phones, tmp_path):
    pc, pa = phones(0), phones(8)
    path = tmp_path / "call.wav"

    async def scenario():
        async with clocked_engine() as (eng, clk):
            c, a = await streams_for(eng, pc, pa, room="call")
            rec = eng.record(c, a, path)
            clk.audio(pc, c, frames(tone(440, 0.8)))
            clk.audio(pa, a, frames(tone(1000, 0.8)))
            await clk.seconds(1.0)
            rec.close()
            return rec.samples

    samples = run(scenario)
    x, rate = read_wav_raw(str(path))
    assert rate == 8000 and x.shape[1] == 2 and len(x) == samples and len(x) % 160 == 0
    assert len(x) >= 0.9 * 8000
    left, right = x[:, 0], x[:, 1]
    assert abs(dominant_frequency(left) - 440) < 10
    assert abs(dominant_frequency(right) - 1000) < 10
    assert power(left, 1000) < 1e-3 * power(left, 440)
    assert power(right, 440) < 1e-3 * power(right, 1000)
    assert active_frames(left.astype(np.int16)) >= 35 and active_frames(right.astype(np.int16)) >= 35


@pytest.mark.parametrize("pts", [(0, 0, 0), (8, 8, 8), (0, 8, 0)], ids=["PCMU", "PCMA", "mixed"])
def test_conference_recorded_in_one_codec_or_mixed(phones, tmp_path, pts):
    """Three talkers and a listener who never sends. In one codec with no supervisor override the tick
    mixes G.711 codes directly (Mixer.mix_codes, a missing frame being the codec's silence code);
    otherwise it decodes for the general mixer. Either way each talker hears the other two and not
    itself, the listener hears all three, and a recording of two of them keeps each one's voice."""
    F = {"customer": 440, "agent": 1000, "third": 1650}
    ph = {k: phones(pt) for k, pt in zip(F, pts)}
    quiet = phones(pts[0])
    path = tmp_path / "conf.wav"
    used = {"mix_codes": 0, "mix": 0}

    async def scenario():
        async with clocked_engine() as (eng, clk):
            for name in used:
                real = getattr(eng.mixer, name)

                def spy(*a, name=name, real=real):
                    used[name] += 1
                    return real(*a)
                setattr(eng.mixer, name, spy)
            *talkers, last = await streams_for(eng, *ph.values(), quiet, room="conf")
            st = dict(zip(F, talkers))
            clk.watch(quiet, last)
            rec = eng.record(st["customer"], st["agent"], path)
            for k, f in F.items():
                clk.audio(ph[k], st[k], frames(tone(f, 1.0, amplitude=0.3)))
            await clk.seconds(0.3)
            await clk.settle()
            marks = {k: p.mark() for k, p in (*ph.items(), ("quiet", quiet))}
            await clk.seconds(0.5)
            await clk.settle()
            heard = {k: p.audio(marks[k]) for k, p in (*ph.items(), ("quiet", quiet))}
            await clk.seconds(0.4)
            rec.close()
            return heard, eng.stats

    heard, stats = run(scenario)
    assert stats["relayed_frames"] == 0
    one_codec = len(set(pts)) == 1
    assert (used["mix_codes"] > 40 and used["mix"] == 0) if one_codec else (used["mix"] > 40 and not used["mix_codes"])
    for listener, x in heard.items():
        assert len(x) >= 20 * 160
        p = {k: power(x, f) for k, f in F.items()}
        others = [p[k] for k in F if k != listener]
        assert min(others) > 0.3 * max(others), (listener, p)
        if listener in F:
            assert p[listener] < 1e-3 * min(others), (listener, p)
    x, rate = read_wav_raw(str(path))
    left, right = x[:, 0], x[:, 1]
    assert abs(dominant_frequency(left) - 440) < 10 and abs(dominant_frequency(right) - 1000) < 10
    assert power(left, 1000) < 1e-3 * power(left, 440)


# --- (6) supervisor modes ----------------------------------------------------------------------------

def test_listen_whisper_barge(phones):
    F = {"customer": 440, "agent": 1000, "supervisor": 1650}
    ph = {k: phones(0) for k in F}

    async def scenario():
        async with clocked_engine() as (eng, clk):
            st = {}
            for k in F:
                st[k] = await eng.open_stream()
                st[k].set_remote("127.0.0.1", ph[k].port, 0)
            eng.join(st["customer"], "call"), eng.join(st["agent"], "call")
            for k, f in F.items():
                clk.audio(ph[k], st[k], frames(tone(f, 1.7, amplitude=0.3)))
            heard = {}
            for mode in ("listen", "whisper", "barge"):
                eng.mode(st["supervisor"], st["agent"], st["customer"], mode)
                await clk.seconds(0.15)             # let what was in flight drain
                await clk.settle()
                marks = {k: ph[k].mark() for k in F}
                await clk.seconds(0.3)
                await clk.settle()
                heard[mode] = {k: ph[k].audio(marks[k]) for k in F}
            return heard

    heard = run(scenario)

    def hears(x, who):
        p = {k: power(x, f) for k, f in F.items()}
        loud = max(p.values())
        return {k for k, v in p.items() if v > 0.05 * loud}, {k for k, v in p.items() if v < 1e-3 * loud}

    expect = {   # listener -> who it hears, per mode
        "listen": {"customer": {"agent"}, "agent": {"customer"}, "supervisor": {"agent", "customer"}},
        "whisper": {"customer": {"agent"}, "agent": {"customer", "supervisor"},
                    "supervisor": {"agent", "customer"}},
        "barge": {"customer": {"agent", "supervisor"}, "agent": {"customer", "supervisor"},
                  "supervisor": {"agent", "customer"}},
    }
    for mode, table in expect.items():
        for listener, want in table.items():
            present, absent = hears(heard[mode][listener], listener)
            assert present == want, (mode, listener, present)
            assert absent == set(F) - want, (mode, listener, absent)


# --- (7) video passthrough --------------------------------------------------------------------------

def test_video_relay_forwards_unchanged(phones):
    pa, pb = phones(96), phones(96)
    rnd = random.Random(7)
    a_to_b = [build_rtp(96, i, 90000 + 3000 * i, 0xABCDEF, rnd.randbytes(rnd.randrange(1, 1200)),
                        marker=i % 3 == 2) for i in range(20)]
    b_to_a = [build_rtp(97, 100 + i, 3000 * i, 0x123456, rnd.randbytes(300)) for i in range(5)]
    rtcp = build_rtcp(ReceiverReport(0xABCDEF))

    async def scenario():
        async with engine_running() as eng:
            va = await eng.open_stream("video")
            vb = await eng.open_stream("video")
            eng.relay(va, vb)
            vb.set_remote("127.0.0.1", pb.port, 96)        # va's remote is learned from its first packet
            for d in a_to_b:
                pa.sendto(d, va.port)
            pa.sendto(b"\x00garbage", va.port)             # not RTP: counted, not forwarded
            pa.sendto(rtcp, va.port)                       # rtcp-mux: relayed too
            await until(lambda: pb.mark() >= len(a_to_b) + 1 and va.stats["garbage"] == 1)
            for d in b_to_a:
                pb.sendto(d, vb.port)
            await until(lambda: pa.mark() >= len(b_to_a))
            await asyncio.sleep(0.05)                      # nothing more comes (checked below)
            return dict(va.stats), dict(vb.stats)

    sa, sb = run(scenario)
    assert [d for _, d in pb.raw] == a_to_b + [rtcp]
    assert [d for _, d in pa.raw] == b_to_a
    assert sa["rx_packets"] == 20 and sa["garbage"] == 1 and sa["tx_packets"] == 5
    assert sb["rx_packets"] == 5 and sb["tx_packets"] == 20


# --- (8) garbage ------------------------------------------------------------------------------------

def test_garbage_is_counted_and_ignored(phones):
    pa, pb = phones(0), phones(0)
    rnd = random.Random(1)
    junk = [b"", b"\x80", b"\x80\x00" * 5 + b"\x00",                     # empty, 1 byte, 11 bytes
            bytes([0x8F]) + bytes(11),                                 # 15 CSRCs announced, none there
            bytes([0x90]) + bytes(11) + b"\x00\x00\x00\x09",           # extension longer than the packet
            bytes([0xA0, 0]) + bytes(10) + b"\x00",                    # padding count 0
            bytes([0xA0, 0]) + bytes(10) + b"\x40",                    # padding past the header
            build_rtp(101, 1, 1, 1, b"\x01\x02")]                      # telephone-event shorter than 4 bytes
    junk += [bytes([rnd.choice([0x00, 0x40, 0xC0, 0xFF])]) + rnd.randbytes(rnd.randrange(0, 400))
             for _ in range(60)]                                       # wrong RTP version
    ignored = [build_rtp(13, 7, 7, 7, b"\x40"),                         # comfort noise: not our codec
               build_rtp(8, 8, 8, 8, bytes(160))]                       # PCMA on a PCMU stream

    async def scenario():
        async with clocked_engine() as (eng, clk):
            a = await eng.open_stream()
            b = await eng.open_stream()
            a.set_remote("127.0.0.1", pa.port, 0, event_pt=101)
            b.set_remote("127.0.0.1", pb.port, 0)
            eng.join(a, "r"), eng.join(b, "r")
            clk.watch(pb, b)
            for d in junk + ignored:
                clk.deliver(pa, a, d)
                clk.deliver(pa, a, d, rtcp=True)                       # and on its RTCP port
            await clk.seconds(0.04)
            # Odd packetizations are still played (10 ms and 30 ms payloads, cut or padded to 20 ms).
            clk.deliver(pa, a, pa.rtp(g711.encode(tone(1000, 0.01), "PCMU")))
            await clk.step()
            clk.deliver(pa, a, pa.rtp(g711.encode(tone(1000, 0.03), "PCMU")))
            await clk.step()
            clk.audio(pa, a, frames(tone(440, 0.5)))
            await clk.seconds(0.7)
            await clk.settle()
            return dict(a.stats), eng.stats["ticks"]

    st, ticks = run(scenario)
    assert st["garbage"] >= 2 * len(junk) - 8 - 4     # RTCP port: the 8 handcrafted ones are only partly junk
    assert st["ignored"] == len(ignored)
    assert st["errors"] == 0 and st["dtmf_events"] == 0
    assert st["rx_packets"] == 27
    assert ticks == 1 + 2 + 2 + 35
    assert abs(dominant_frequency(pb.audio()) - 440) < 10, "the stream still works"


# --- RTCP, long stalls, stream lifecycle ------------------------------------------------------------

def _udp_pair() -> tuple[socket.socket, socket.socket]:
    """Sockets on an even port P and P + 1 of 127.0.0.1 (RTP and RTCP of a phone)."""
    for _ in range(100):
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        port = a.getsockname()[1]
        if port % 2:
            a.close()
            continue
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            b.bind(("127.0.0.1", port + 1))
        except OSError:
            a.close(), b.close()
            continue
        return a, b
    raise RuntimeError("no free even/odd port pair")


def test_rtcp_reports_long_stall_and_close():
    rtp_sock, rtcp_sock = _udp_pair()
    rtcp_sock.settimeout(1.0)

    async def scenario():
        loop = asyncio.get_running_loop()
        async with engine_running(rtcp_interval=0.1, max_catchup=3) as eng:
            s = await eng.open_stream()
            s.set_remote("127.0.0.1", rtp_sock.getsockname()[1], 8)
            eng.join(s, "solo")                       # alone in a room: sends silence
            await asyncio.sleep(0.25)
            loop.call_soon(time.sleep, 0.25)          # a stall far beyond max_catchup ticks
            await asyncio.sleep(0.1)
            port = s.port
            playing = eng.play(s, frames(tone(500, 1.0)))
            s.close()
            s.close()                                 # idempotent
            reopened = await eng.open_stream()
            return dict(eng.stats), port, playing, dict(s.stats), reopened.port, len(eng.streams)

    try:
        st, port, playing, sst, new_port, n_streams = run(scenario)
        sr = parse_rtcp(rtcp_sock.recv(2048))[0]
        silence = parse_rtp(rtp_sock.recv(2048))
    finally:
        rtp_sock.close(), rtcp_sock.close()
    assert isinstance(sr, SenderReport) and sr.packets > 0
    assert silence.payload_type == 8 and silence.payload == g711.encode(np.zeros(160, np.int16), "PCMA")
    assert st["skipped_ticks"] >= 5 and st["late_ticks"] >= 3
    assert playing.done() and playing.result() is False
    assert sst["rtcp_tx"] >= 2
    assert new_port != port, "a just-closed port is not handed out again at once"
    assert n_streams == 1


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_closed_streams_sockets_rest_then_serve_a_later_stream(loop_kind):
    """A closed stream's sockets stay bound, dropping what still arrives, and serve a later stream once they
    have rested port_rest seconds (on the engine's clock, moved by hand here): that stream opens without
    waiting and receives on them. A range with no free port takes a resting pair early; stop() closes them."""
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone.bind(("127.0.0.1", 0))

    async def scenario():
        async with clocked_engine(port_range=(43000, 43005), port_rest=2.0) as (eng, clk):
            a = await eng.open_stream()
            old = a.port
            a.close()
            phone.sendto(build_rtp(0, 1, 160, 7, b"\xff" * 160), ("127.0.0.1", old))     # late packet, dropped
            assert eng.open_stream_now() is None, "not rested yet"
            b = await eng.open_stream()
            assert b.port != old
            clk.t += 2.5                                # the engine's clock; no tick is due on it meanwhile
            c = eng.open_stream_now()
            assert c is not None and c.port == old and not c.closed and c in eng.streams
            c.set_remote("127.0.0.1", phone.getsockname()[1], 0, latch=False)
            phone.sendto(build_rtp(0, 5, 800, 9, b"\xff" * 160), ("127.0.0.1", old))
            await until(lambda: c.stats["rx_packets"] == 1, "the rested socket receives for its new stream")
            c_rx = dict(c.stats)
            # 3 pairs in the range (43000, 43002, 43004): b and c hold two, d the last; then a recent pair
            d = await eng.open_stream()
            b.close()
            e = await eng.open_stream()                 # no free port: b's pair, closed a moment ago
            assert e.port == b.port
            with pytest.raises(OSError):
                await eng.open_stream()
            c.close(), d.close(), e.close()
        return old, c_rx, [d.port, e.port]

    try:
        old, c_rx, ports = run(scenario, loop_kind)
    finally:
        phone.close()
    assert c_rx["rx_packets"] == 1 and c_rx["errors"] == 0
    for port in (old, *ports):                      # stop() closed every resting socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", port))
        s.close()


# --- (9) two-party relay without transcoding -------------------------------------------------------

def _payload_frames(seed: int, count: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, 160, dtype=np.uint8).tobytes() for _ in range(count)]


def _payload_packets(phone: "Phone", payloads: list[bytes]):
    """RTP packets of the given payloads, one frame apart (for Clock.feed)."""
    for k, pay in enumerate(payloads):
        yield phone.rtp(pay, marker=k == 0)
        phone.ts = (phone.ts + 160) & 0xFFFFFFFF


@pytest.mark.parametrize("pts", [(0, 0), (8, 8), (0, 8)])
def test_two_party_same_codec_relays_bytes_unchanged(phones, pts):
    pa, pb = phones(pts[0]), phones(pts[1])
    sent_a, sent_b = _payload_frames(1, 25), _payload_frames(2, 25)

    async def scenario():
        async with clocked_engine() as (eng, clk):
            a, b = await streams_for(eng, pa, pb, room="call")
            clk.feed(pa, a, _payload_packets(pa, sent_a))
            clk.feed(pb, b, _payload_packets(pb, sent_b))
            await clk.seconds(0.75)
            await clk.settle()
            return eng.stats["relayed_frames"]

    relayed = run(scenario)
    got_b = [p.payload for p in pb.packets(pt=pts[1])]
    got_a = [p.payload for p in pa.packets(pt=pts[0])]
    assert all(len(x) == 160 for x in got_a + got_b)
    silence = {0: b"\xff" * 160, 8: b"\xd5" * 160}
    if pts[0] == pts[1]:
        assert relayed >= 40
        # every payload a phone sent reaches the other one byte for byte, in order; the rest is silence
        for got, sent in ((got_b, sent_a), (got_a, sent_b)):
            fwd = [sent.index(x) for x in got if x in set(sent)]
            assert fwd == sorted(set(fwd)) and len(fwd) >= len(sent) - 2, "in order, unchanged, ~all"
        assert all(x in set(sent_a) or x == silence[pts[1]] for x in got_b)
        assert all(x in set(sent_b) or x == silence[pts[0]] for x in got_a)
    else:
        assert relayed == 0
        want_b = {g711.encode(g711.decode(x, CODEC[pts[0]]), CODEC[pts[1]]) for x in sent_a}
        assert sum(x in want_b for x in got_b) == len(sent_a), "transcoded PCMU -> PCMA"
        want_a = {g711.encode(g711.decode(x, CODEC[pts[1]]), CODEC[pts[0]]) for x in sent_b}
        assert sum(x in want_a for x in got_a) == len(sent_b)


def test_relay_stops_for_prompt_and_supervisor(phones):
    pa, pb, ps = phones(0), phones(0), phones(0)

    async def scenario():
        async with engine_running() as eng:
            a, b = await streams_for(eng, pa, pb, room="call")
            s, = await streams_for(eng, ps)
            assert set(eng.routes()) == {a, b}
            fut = eng.play(a, frames(tone(700, 1.0)))
            assert eng.routes() == {}
            eng.stop_play(a)
            await fut
            assert set(eng.routes()) == {a, b}
            eng.mode(s, a, b, "listen")         # three in the room now, and overrides
            assert eng.routes() == {}
            eng.mode(s, a, b, None)
            eng.leave(s)
            assert set(eng.routes()) == {a, b}
            eng.mixer.set_hears(a, b, False)     # an override alone also disables the relay
            assert eng.routes() == {}

    run(scenario)


def test_relay_is_transparent_counts_loss_and_passes_rtcp_and_dtmf(phones):
    """A relayed pair: packets arrive unchanged (sender's SSRC/seq/timestamps), loss is counted exactly,
    RTCP goes end to end, RFC 4733 events are forwarded with the far side's payload type and still reach
    on_dtmf; after the relay ends (a prompt) the far end hears the engine's own SSRC again."""
    pa, pb = phones(0), phones(0)
    payloads = _payload_frames(3, 300)
    skip = {40, 41, 42, 77, 180}            # never sent: 5 lost packets

    async def scenario():
        async with clocked_engine() as (eng, clk):
            a, b = await eng.open_stream(), await eng.open_stream()
            a.set_remote("127.0.0.1", pa.port, 0, event_pt=101)
            b.set_remote("127.0.0.1", pb.port, 0, event_pt=96)
            clk.watch(pb, b)
            digits: list[str] = []
            a.on_dtmf = digits.append
            eng.join(a, "call"), eng.join(b, "call")
            await clk.step()                            # routes are made at the next tick
            pa.seq = 0xFFFF - 100                       # the relay crosses the 16-bit wrap
            sent: list[bytes] = []
            for k, pay in enumerate(payloads):          # ten times faster than real time
                pkt = pa.rtp(pay, marker=k == 0)
                pa.ts = (pa.ts + 160) & 0xFFFFFFFF
                if k not in skip:
                    clk.deliver(pa, a, pkt)
                    sent.append(pkt)
                if k % 10 == 9:
                    await clk.step()
            await clk.seconds(0.1)
            st_mid = a.stats
            routes = eng.routes()
            sr = build_rtcp(SenderReport(pa.ssrc, 1 << 32, pa.ts, 295, 295 * 160, []))
            clk.deliver(pa, a, sr, rtcp=True)           # RTCP on its own port
            clk.deliver(pa, a, sr)                      # and multiplexed
            for ev in tone_packets("9", pa.ts, 800):
                clk.deliver(pa, a, pa.rtp(ev.payload, pt=101, marker=ev.marker, ts=ev.timestamp))
                await clk.step()
            await clk.seconds(0.2)
            await clk.settle()
            await until(lambda: any(d == sr for _, d in pb.raw), "the multiplexed RTCP is relayed")
            mark = pb.mark()
            fut = eng.play(b, frames(tone(500, 0.2)))   # the relay ends: b gets a prompt from the engine
            await clk.until(fut)
            await clk.seconds(0.1)
            await clk.settle()
            return sent, st_mid, routes, digits, mark, eng.stats, b.ssrc, sr

    sent, st, routes, digits, mark, est, b_ssrc, sr = run(scenario)
    assert len(routes) == 2
    got = [d for _, d in pb.raw[:mark] if parse_rtp(d).payload_type == 0 and parse_rtp(d).ssrc == pa.ssrc]
    assert got == sent, "every audio packet forwarded byte for byte, in order"
    assert all(parse_rtp(d).ssrc in (pa.ssrc, b_ssrc) for _, d in pb.raw[:mark] if d[1] & 0x7F == 0)
    assert st["rx_packets"] == len(sent) and st["lost"] == len(skip)
    assert est["relayed_frames"] >= len(sent)
    assert digits == ["9"]
    events = [parse_rtp(d) for _, d in pb.raw[:mark] if parse_rtp(d).payload_type == 96]
    assert len(events) >= 4 and all(e.ssrc == pa.ssrc for e in events), "DTMF forwarded as pt 96"
    rtcp = [d for _, d in pb.raw[:mark] if d == sr]
    assert len(rtcp) == 1                   # the multiplexed one; the other went to pb's port + 1
    after = pb.packets(mark, pt=0)
    assert after and all(p.ssrc == b_ssrc for p in after), "the prompt comes with the engine's own SSRC"


def test_recorded_relayed_call_still_records_both_sides(phones, tmp_path):
    pc, pa = phones(0), phones(0)
    path = tmp_path / "relay.wav"

    async def scenario():
        async with clocked_engine(record_flush=5) as (eng, clk):
            c, a = await streams_for(eng, pc, pa, room="call")
            clk.audio(pc, c, frames(tone(400, 1.0)))
            clk.audio(pa, a, frames(tone(1000, 1.0)))
            await clk.seconds(0.3)
            rec = eng.record(c, a, path)                # recording starts mid-relay
            await clk.seconds(0.6)
            rec.close()
            await clk.seconds(0.1)
            return eng.stats["relayed_frames"], eng.routes()

    relayed, routes = run(scenario)
    assert relayed >= 80 and len(routes) == 2
    samples, _ = read_wav_raw(path)
    left, right = samples[:, 0], samples[:, 1]
    assert len(left) >= 0.4 * 8000
    assert dominant_frequency(left) == pytest.approx(400, abs=20)
    assert dominant_frequency(right) == pytest.approx(1000, abs=20)


@pytest.mark.parametrize("pt", [0, 8])
def test_prompt_frames_encoded_once_per_block_for_all_players(pt):
    from media.engine import _Player
    loop = asyncio.new_event_loop()
    eng = MediaEngine(loop)
    rng = np.random.default_rng(5)
    pcm = rng.integers(-32768, 32768, (123, 160)).astype(np.int16)     # 2.46 s: three blocks, the last partial
    p = _Player(pcm, True, None, eng._coded_for(pcm))
    got = []
    for pos in list(range(123)) + [0, 51, 122]:
        p.pos = pos
        got.append(p.payload(pt))
    want = [g711.encode(f, CODEC[pt]) for f in pcm]
    assert got[:123] == want and got[123:] == [want[0], want[51], want[122]]
    assert sorted(p._coded) == [(pt, 0), (pt, 1), (pt, 2)]
    # A second caller on the same prompt shares the encoded blocks; they go when the prompt goes.
    q = _Player(pcm, True, None, eng._coded_for(pcm))
    q.pos = 60
    assert q._coded is p._coded and q.payload(pt) is got[60]
    assert eng._coded_for(pcm.copy()) is not p._coded
    del p, q, pcm
    gc.collect()
    assert eng._prompt_codes == {}
    loop.close()
