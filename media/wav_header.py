"""WAV headers: the format of a file and whether a prompt may be it, read without the samples and without
numpy (the settings check every configured prompt this way; media/wav.py decodes them)."""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass

from .errors import RemoteProtocolError

WAVE_FORMAT_PCM = 1
WAVE_FORMAT_IEEE_FLOAT = 3
WAVE_FORMAT_ALAW = 6
WAVE_FORMAT_MULAW = 7
WAVE_FORMAT_EXTENSIBLE = 0xFFFE

# (format tag, bits per sample) that media/wav.py decodes
SUPPORTED = frozenset({(WAVE_FORMAT_PCM, 8), (WAVE_FORMAT_PCM, 16), (WAVE_FORMAT_PCM, 24), (WAVE_FORMAT_PCM, 32),
                       (WAVE_FORMAT_IEEE_FLOAT, 32), (WAVE_FORMAT_IEEE_FLOAT, 64), (WAVE_FORMAT_MULAW, 8),
                       (WAVE_FORMAT_ALAW, 8)})


class WavError(RemoteProtocolError):
    """An unreadable or unsupported WAV file."""


# What a prompt may be, so loading one takes bounded time and memory (decoding is linear in the samples, and
# the anti-alias filter's length grows with the rate ratio): telephone prompts are 8 kHz mono, music on hold a
# few minutes; anything past this is refused with the way to fix it.
MIN_RATE, MAX_RATE = 2000, 48000
MAX_CHANNELS = 8
MAX_SECONDS = 600.0
MAX_SAMPLES = 12_000_000        # frames x channels decoded at once (96 MB as float64)
FIX = "convert it to 8 kHz mono, e.g. `sox IN.wav -r 8000 -c 1 OUT.wav`"


@dataclass(frozen=True)
class WavInfo:
    tag: int
    channels: int
    rate: int
    bits: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


def open_source(src):
    if isinstance(src, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(src))
    if isinstance(src, (str, os.PathLike)):
        return open(src, "rb")
    if src.seekable():
        return src
    # not seekable: read no more than the biggest file allowed (samples + room for other chunks)
    data = src.read(MAX_SAMPLES * 8 + (1 << 20) + 1)
    if len(data) > MAX_SAMPLES * 8 + (1 << 20):
        raise WavError(f"file too large; {FIX}")
    return io.BytesIO(data)


def scan_chunks(f) -> tuple[bytes, int, int]:
    """(fmt chunk, data offset, data length) walking the chunk headers only: linear in the number of chunks,
    and a huge chunk is skipped, not read."""
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE file")
    end = f.seek(0, os.SEEK_END)
    off, fmt, data = 12, None, None
    while off + 8 <= end and (fmt is None or data is None):
        f.seek(off)
        cid, size = struct.unpack("<4sI", f.read(8))
        size = min(size, end - off - 8)          # a chunk cut short: what is there
        if cid == b"fmt " and fmt is None:
            fmt = f.read(min(size, 64))
        elif cid == b"data" and data is None:
            data = (off + 8, size)
        off += 8 + size + (size & 1)   # chunks are word aligned
    if fmt is None or data is None or len(fmt) < 16:
        raise WavError("missing fmt or data chunk")
    return fmt, data[0], data[1]


def check_format(fmt: bytes, data_len: int) -> WavInfo:
    tag, channels, rate, _, align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack_from("<H", fmt, 24)[0]   # first two bytes of the SubFormat GUID
    if channels < 1 or rate < 1 or align < 1:
        raise WavError("bad fmt chunk")
    if bits % 8 or align != channels * bits // 8:
        # Block align is one sample of every channel; anything else cannot be cut into samples.
        raise WavError(f"block align {align} does not fit {channels} channels of {bits} bits")
    if (tag, bits) not in SUPPORTED:
        raise WavError(f"unsupported WAV format tag {tag} with {bits} bits")
    info = WavInfo(tag, channels, rate, bits, data_len // align)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise WavError(f"sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz; {FIX}")
    if channels > MAX_CHANNELS:
        raise WavError(f"{channels} channels (at most {MAX_CHANNELS}); {FIX}")
    if info.seconds > MAX_SECONDS:
        raise WavError(f"{info.seconds:.0f} s long (at most {MAX_SECONDS:.0f} s)")
    if info.frames * channels > MAX_SAMPLES:
        raise WavError(f"too many samples ({info.frames * channels}, at most {MAX_SAMPLES}); {FIX}")
    return info


def wav_info(src) -> WavInfo:
    """The format of a WAV file, checked against what a prompt may be, reading its headers only."""
    f = open_source(src)
    try:
        fmt, _, length = scan_chunks(f)
        return check_format(fmt, length)
    finally:
        if f is not src:
            f.close()
