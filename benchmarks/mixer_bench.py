"""Per-tick media kernel cost: G.711 decode -> room mix -> G.711 encode, vectorized vs pure Python.

    .venv/bin/python benchmarks/mixer_bench.py [--legs 100,1000,10000] [--rooms 2,3,10] [--ticks 30] [--quick]

For every (N legs, room size) pair it times the full per-tick kernel path on an (N, 160) uint8 array of
PCMU payloads, G.711 decode -> room mix (sum minus own frame, saturated) -> G.711 encode, three ways:

* kernel: media.mixer.CodecRoomMixer on preallocated buffers with a RoomLayout built once (as an engine
  rebuilds it only when rooms change). Timed per tick: gathering the payload rows in layout order
  (np.take into a preallocated buffer) + decode + mix + encode into a preallocated uint8 output.
* Mixer.mix: the engine's general mixer (supervisor overrides, prompts), decode into Mixer.frames with
  np.take(out=), Mixer.mix, encode with np.take(out=) into a preallocated buffer.
* naive: the old allocate-everything path (fancy-index decode, mix_rooms, fancy-index encode).

Reported per tick is the median over --ticks ticks, plus legs mixed per millisecond.

Two pure-Python per-sample references (decode every frame once, then per leg and sample: sum the others
in the room, clip, encode) run on --ref-legs legs only (default 100) and are extrapolated linearly to N:

* plain: G.711 computed per sample as in the g711.c reference code (media.g711_ref), the way a pure-Python
  media stack without numpy does it. The speedup target is judged against this one (the issue calibrates
  "pure Python about 1.3 s" per tick for 10,000 legs in 3-party rooms on this machine).
* tables: the same loop with G.711 as list lookups (faster Python; reported beside it).

The two-party matching-codec case (both phones PCMU, so no transcoding is needed) is reported separately:
each leg's outgoing payload is its peer's incoming payload, i.e. a row swap (numpy gather of the (N, 160)
array) or, as an engine would do it without numpy, a swap of bytes objects in a Python list.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^measured: "

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from media.g711 import ULAW_DECODE, ULAW_ENCODE, decode_into, encode_into  # noqa: E402
from media.g711_ref import linear2ulaw, ulaw2linear  # noqa: E402
from media.mixer import FRAME, CodecRoomMixer, Mixer, RoomLayout, mix_rooms  # noqa: E402

TARGET = "target: 10,000 legs in 3-party rooms <= 5 ms per tick; >= 250x pure Python (plain per-sample reference)"


def median_time(fn, ticks: int, warmup: int = 2) -> float:
    """Median seconds per call of fn() over `ticks` calls (after `warmup` untimed calls)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(ticks):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def make_payloads(n: int, seed: int = 1) -> np.ndarray:
    """(n, 160) uint8 mu-law codes of speech-like level (not full-scale noise, so clipping is rare)."""
    rng = np.random.default_rng(seed)
    pcm = (rng.standard_normal((n, FRAME)) * 3000).clip(-32768, 32767).astype(np.int16)
    return ULAW_ENCODE[pcm.view(np.uint16)]


def room_index(n: int, size: int) -> np.ndarray:
    """Legs 0..n-1 in consecutive rooms of `size` (the last room may be smaller)."""
    return (np.arange(n) // size).astype(np.int64)


# --- vectorized kernels ------------------------------------------------------------------------------

def tick_mix_rooms(codes: np.ndarray, rooms: np.ndarray) -> np.ndarray:
    pcm = ULAW_DECODE[codes]                       # (N, 160) int16
    out = mix_rooms(pcm, rooms)                    # (N, 160) int16, room sum minus own, saturated
    return ULAW_ENCODE[out.view(np.uint16)]        # (N, 160) uint8


def make_tick_kernel(n: int, rooms: np.ndarray):
    """CodecRoomMixer tick; returns (tick(codes) -> (N, 160) uint8 in leg order, layout)."""
    lay = RoomLayout(rooms)
    kern = CodecRoomMixer()
    gathered = np.empty((lay.order.size, FRAME), np.uint8)
    out = np.empty((lay.order.size, FRAME), np.uint8)

    def tick(codes: np.ndarray) -> np.ndarray:
        np.take(codes, lay.order, axis=0, out=gathered, mode="clip")
        return kern.run(gathered, lay.groups, "PCMU", out)     # row i is what leg order[i] hears

    def in_leg_order(res: np.ndarray) -> np.ndarray:
        full = np.full((n, FRAME), ULAW_ENCODE[0], np.uint8)
        full[lay.order] = res
        return full
    return tick, in_leg_order


def make_tick_mixer(n: int, rooms: np.ndarray):
    m = Mixer(capacity=n)
    for i in range(n):
        m.add_leg(i, int(rooms[i]))
    enc = np.empty((n, FRAME), np.uint8)

    def tick(codes: np.ndarray) -> np.ndarray:
        decode_into(codes, "PCMU", m.frames[:n])    # the engine writes decoded rows in place
        out = m.mix()
        return encode_into(out, "PCMU", enc)
    return tick


# --- pure-Python reference ------------------------------------------------------------------------

DEC_LIST = ULAW_DECODE.tolist()
ENC_LIST = ULAW_ENCODE.tolist()


def tick_pure_python(payloads: list[bytes], members: list[list[int]], room_of: list[int],
                     tables: bool = True) -> list[bytes]:
    # ENC_LIST is indexed by the uint16 view of a sample: a negative index is exactly that view.
    dec, enc = (DEC_LIST.__getitem__, ENC_LIST.__getitem__) if tables else (ulaw2linear, linear2ulaw)
    pcm = [[dec(b) for b in p] for p in payloads]
    out = []
    for i in range(len(payloads)):
        others = [pcm[j] for j in members[room_of[i]] if j != i]
        frame = bytearray(FRAME)
        for k in range(FRAME):
            s = 0
            for o in others:
                s += o[k]
            if s > 32767:
                s = 32767
            elif s < -32768:
                s = -32768
            frame[k] = enc(s)
        out.append(bytes(frame))
    return out


def pure_python_setup(codes: np.ndarray, rooms: np.ndarray):
    payloads = [row.tobytes() for row in codes]
    room_of = [int(r) for r in rooms]
    members: dict[int, list[int]] = {}
    for i, r in enumerate(room_of):
        members.setdefault(r, []).append(i)
    mlist = [members[r] for r in range(max(room_of) + 1)]
    return payloads, mlist, room_of


# --- two-party relay without transcoding ----------------------------------------------------------

def relay_numpy(codes: np.ndarray, peer: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.take(codes, peer, axis=0, out=out, mode="clip")     # row i <- row of i's peer


def relay_list(payloads: list[bytes]) -> list[bytes]:
    out = payloads[:]                               # swap each pair's bytes objects
    out[0::2], out[1::2] = payloads[1::2], payloads[0::2]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--legs", default=None, help="comma list of N (default 100,1000,10000)")
    ap.add_argument("--rooms", default="2,3,10", help="comma list of room sizes")
    ap.add_argument("--ticks", type=int, default=None, help="timed ticks per case (default 30)")
    ap.add_argument("--ref-legs", type=int, default=100, help="legs for the pure-Python reference")
    ap.add_argument("--quick", action="store_true", help="N 100,1000; 10 ticks; 3 reference ticks")
    a = ap.parse_args()
    legs = [int(x) for x in (a.legs or ("100,1000" if a.quick else "100,1000,10000")).split(",")]
    sizes = [int(x) for x in a.rooms.split(",")]
    ticks = a.ticks or (10 if a.quick else 30)
    ref_ticks = 3 if a.quick else 5

    print(f"mixer_bench: numpy {np.__version__}, python {sys.version.split()[0]}, "
          f"median of {ticks} ticks per case, PCMU, 160-sample frames")
    print(f"pure-Python reference: measured on {a.ref_legs} legs (median of {ref_ticks} ticks) and "
          f"extrapolated linearly to N (ref/tick = measured * N / {a.ref_legs})")
    print()

    # Pure-Python references per room size, measured once on ref_legs legs.
    ref_per_leg: dict[int, float] = {}
    tab_per_leg: dict[int, float] = {}
    for size in sizes:
        codes = make_payloads(a.ref_legs)
        rooms = room_index(a.ref_legs, size)
        payloads, members, room_of = pure_python_setup(codes, rooms)
        # check the references agree with the vectorized kernel before timing any
        want = tick_mix_rooms(codes, rooms)
        for tables, per_leg in ((False, ref_per_leg), (True, tab_per_leg)):
            ref = np.frombuffer(b"".join(tick_pure_python(payloads, members, room_of, tables)),
                                np.uint8).reshape(-1, FRAME)
            if not np.array_equal(ref, want):
                raise SystemExit(f"pure-Python reference (tables={tables}) disagrees with mix_rooms (room {size})")
            t = median_time(lambda: tick_pure_python(payloads, members, room_of, tables), ref_ticks, warmup=0)
            per_leg[size] = t / a.ref_legs

    hdr = (f"{'legs':>6} {'room':>4} | {'kernel ms':>9} {'legs/ms':>8} | {'Mixer.mix ms':>12} {'legs/ms':>8} |"
           f" {'naive ms':>8} | {'pure-Py ms plain':>16} {'speedup':>8} | {'tables ms':>9} {'speedup':>8}")
    print("full tick: decode (N,160) + mix + encode; speedup = pure-Python (extrapolated) / kernel")
    print(hdr)
    print("-" * len(hdr))
    summary = {}
    for n in legs:
        codes = make_payloads(n)
        for size in sizes:
            rooms = room_index(n, size)
            want = tick_mix_rooms(codes, rooms)
            t_naive = median_time(lambda: tick_mix_rooms(codes, rooms), ticks)
            tick_k, in_leg_order = make_tick_kernel(n, rooms)
            if not np.array_equal(in_leg_order(tick_k(codes)), want):
                raise SystemExit("CodecRoomMixer and mix_rooms disagree")
            t_vec = median_time(lambda: tick_k(codes), ticks)
            tick_m = make_tick_mixer(n, rooms)
            if not np.array_equal(tick_m(codes), want):
                raise SystemExit("Mixer.mix and mix_rooms disagree")
            t_mix = median_time(lambda: tick_m(codes), ticks)
            t_ref = ref_per_leg[size] * n
            t_tab = tab_per_leg[size] * n
            speed = t_ref / t_vec
            summary[(n, size)] = (t_vec, t_mix, speed, t_tab / t_vec)
            print(f"{n:>6} {size:>4} | {t_vec * 1e3:>9.3f} {n / (t_vec * 1e3):>8.0f} | {t_mix * 1e3:>12.3f} "
                  f"{n / (t_mix * 1e3):>8.0f} | {t_naive * 1e3:>8.3f} | {t_ref * 1e3:>16.1f} {speed:>7.0f}x | "
                  f"{t_tab * 1e3:>9.1f} {t_tab / t_vec:>7.0f}x")
    print()

    print("two-party, same codec both sides: relay payloads without transcoding (row swap)")
    hdr2 = f"{'legs':>6} | {'numpy gather ms':>15} {'legs/ms':>9} | {'list swap ms':>12} {'legs/ms':>9} | {'vs full 2-party tick':>20}"
    print(hdr2)
    print("-" * len(hdr2))
    for n in legs:
        n2 = n - (n & 1)
        codes = make_payloads(n2)
        peer = np.arange(n2) ^ 1
        payloads = [row.tobytes() for row in codes]
        assert relay_list(payloads)[0] == payloads[1]
        buf = np.empty_like(codes)
        t_np = median_time(lambda: relay_numpy(codes, peer, buf), ticks)
        t_li = median_time(lambda: relay_list(payloads), ticks)
        full = summary.get((n, 2))
        cmp = f"{full[0] / t_np:>19.1f}x" if full else f"{'-':>20}"
        print(f"{n2:>6} | {t_np * 1e3:>15.4f} {n2 / (t_np * 1e3):>9.0f} | {t_li * 1e3:>12.4f} "
              f"{n2 / (t_li * 1e3):>9.0f} | {cmp}")
    print()

    print(TARGET)
    key = (10000, 3)
    if key in summary:
        t_vec, t_mix, speed, speed_tab = summary[key]
        ok = t_vec * 1e3 <= 5 and speed >= 250
        print(f"measured: 10,000 legs in 3-party rooms {t_vec * 1e3:.3f} ms per tick (kernel), "
              f"{t_mix * 1e3:.3f} ms (Mixer.mix); {speed:.0f}x the plain pure-Python reference "
              f"({speed_tab:.0f}x the table-driven one) -> {'MET' if ok else 'NOT MET'}")
    else:
        print("measured: (10,000 x 3-party case not run; drop --quick or pass --legs 10000 --rooms 3)")


if __name__ == "__main__":
    main()
