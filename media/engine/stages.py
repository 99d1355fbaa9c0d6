"""The stages of one tick, as small functions over the streams the tick owns (the relayed pairs excepted).

1. receive: one frame per stream out of its jitter buffer, grouped by payload type.
2. mix: the common case, one codec and no supervisor override, stays in G.711 (the codes go straight
   through the CodecRoomMixer kernel; a lost frame is the codec's silence code). Anything else is decoded
   to int16 for the general mixer, which applies the overrides. Recordings take what each party said here.
3. send: prompts replace room audio (their frames encoded once, _Player.payload), DTMF replaces both;
   room audio is encoded per codec; then everything is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..mixer import FRAME
from .codecs import DECODE, ENCODE, SILENCE

if TYPE_CHECKING:
    from .core import MediaEngine
    from .recording import Recording
    from .stream import Stream


def receive(decode: list[Stream], index: dict, now: float):
    """(silent rows, {pt: (rows, payloads)} of whole frames, [(row, pt, payload)] odd-sized, heard pts,
    rooms with a member that sent a frame)."""
    silent: list[int] = []
    sounding: set = set()
    groups: dict[int, tuple[list[int], list[bytes]]] = {}
    odd: list[tuple[int, int, bytes]] = []
    pts: set[int] = set()
    for s in decode:            # every leg on every tick: index is the mixer's leg -> row dict
        row = index[s]
        if s.room is not None or s._recordings:     # heard: its codec takes part in the mix
            pts.add(s.pt)
        f = s.jb.get(now)
        payload = f.payload if f is not None else None
        if payload is None:
            silent.append(row)
            continue
        if s.room is not None:
            sounding.add(s.room)
        if len(payload) == FRAME:
            g = groups.get(s.pt)
            if g is None:
                g = groups[s.pt] = ([], [])
            g[0].append(row)
            g[1].append(payload)
        else:
            odd.append((row, s.pt, payload))
    pts.discard(None)
    return silent, groups, odd, pts, sounding


def gather_codes(n_rows: int, groups: dict, silent: list[int], pt: int) -> np.ndarray:
    """The (rows, 160) G.711 codes of a one-codec tick, lost frames as the codec's silence code."""
    codes = np.empty((n_rows, FRAME), dtype=np.uint8)
    for rows, payloads in groups.values():
        codes[rows] = np.frombuffer(b"".join(payloads), np.uint8).reshape(-1, FRAME)
    if silent:
        codes[silent] = SILENCE[pt]
    return codes


def record_codes(recordings: set[Recording], codes: np.ndarray, index: dict, pt: int) -> None:
    for r in recordings:      # what each party said
        r._add(DECODE[pt][codes[[index[r.customer], index[r.agent]]]])


def decode_frames(frames: np.ndarray, groups: dict, silent: list[int], odd: list) -> None:
    """Decode every frame into the general mixer's int16 rows (lost frames are zeros)."""
    if silent:
        frames[silent] = 0
    for pt, (rows, payloads) in groups.items():
        frames[rows] = np.take(DECODE[pt], np.frombuffer(b"".join(payloads), np.uint8)).reshape(-1, FRAME)
    for row, pt, payload in odd:        # odd packetization: decode alone, pad or cut to one frame
        pcm = DECODE[pt][np.frombuffer(payload, np.uint8)][:FRAME]
        frames[row] = 0
        frames[row, :len(pcm)] = pcm


def record_frames(recordings: set[Recording], frames: np.ndarray, index: dict) -> None:
    for r in recordings:
        r._add(frames[[index[r.customer], index[r.agent]]])


def plan(engine: MediaEngine, ticked: list[Stream], n: int, index: dict, sounding: set):
    """What each stream sends this tick: (prompt frames as (stream, payload), [(stream, mixer row)]).

    DTMF packets and due RTCP reports go out from here; a prompt's time passes even while nobody can
    hear it yet. A room of two or more where nobody sent a frame (`sounding`: the rooms where someone
    did) sends nothing this tick, as the phones themselves do (silence suppression, RFC 3551 s. 4.1;
    the next packet carries the marker bit), unless a supervisor's override is set.
    """
    rtcp_due = n % engine.rtcp_every == 0 and n > 0
    mixer = engine.mixer
    suppress = not mixer.has_overrides
    mixed_rows: list[tuple[Stream, int]] = []
    outgoing: list[tuple[Stream, bytes]] = []
    for s in ticked:
        p = s._player
        if p is not None:
            p = engine._player_step(s, p)
        if s.remote is None or s.pt is None:
            if p is not None:
                p.pos += 1
            s._sent_last_tick = False
            continue
        if s._dtmf_out:
            s._send_dtmf_packet(n)
            if not s._dtmf_out:
                engine._reroute(s)
            continue
        if p is None and s.room is None:
            s._sent_last_tick = False
            continue
        if rtcp_due:
            s._send_sr(n)
        if p is not None:
            outgoing.append((s, p.payload(s.pt)))
            p.pos += 1
        elif suppress and s.room not in sounding and mixer.room_size(s.room) > 1:
            s._sent_last_tick = False
        else:
            mixed_rows.append((s, index[s]))
    return outgoing, mixed_rows


def encode_rows(out: np.ndarray, mixed_rows: list[tuple[Stream, int]], g711_mix: bool) -> list[tuple[Stream, bytes]]:
    """The mixed audio of each stream as its codec's payload."""
    if g711_mix:
        buf = out.tobytes()
    else:
        enc_rows: dict[int, list[int]] = {}
        for s, row in mixed_rows:
            enc_rows.setdefault(s.pt, []).append(row)
        codes = np.empty((out.shape[0], FRAME), dtype=np.uint8)
        for pt, rows in enc_rows.items():
            codes[rows] = np.take(ENCODE[pt], out[rows].view(np.uint16))   # take(): ~2x fancy indexing
        buf = codes.tobytes()
    # One copy to bytes, then slices: cheaper than a row view's tobytes() per leg.
    return [(s, buf[row * FRAME:(row + 1) * FRAME]) for s, row in mixed_rows]


def send(outgoing: list[tuple[Stream, bytes]], n: int) -> None:
    for s, payload in outgoing:
        try:
            s._send_audio(n, payload)
        except OSError:
            s.counters["send_errors"] += 1
