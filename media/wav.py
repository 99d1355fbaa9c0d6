"""WAV prompts in, call recordings out, and test-signal helpers; all audio is int16 8 kHz mono frames."""

from __future__ import annotations

import io
import os
import struct
import wave

import numpy as np

from . import g711
from .errors import RemoteProtocolError

RATE = 8000
FRAME = 160

WAVE_FORMAT_PCM = 1
WAVE_FORMAT_IEEE_FLOAT = 3
WAVE_FORMAT_ALAW = 6
WAVE_FORMAT_MULAW = 7
WAVE_FORMAT_EXTENSIBLE = 0xFFFE


class WavError(RemoteProtocolError):
    """An unreadable or unsupported WAV file."""


def _chunks(data: bytes):
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE file")
    off = 12
    while off + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, off)
        yield cid, data[off + 8:off + 8 + size]
        off += 8 + size + (size & 1)   # chunks are word aligned


def read_wav_raw(src) -> tuple[np.ndarray, int]:
    """(samples as float64 in int16 scale, shape (n, channels), sample rate) from a path, bytes or file."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        with open(src, "rb") as f:
            data = f.read()
    else:
        data = src.read()
    fmt = body = None
    for cid, chunk in _chunks(data):
        if cid == b"fmt ":
            fmt = chunk
        elif cid == b"data":
            body = chunk
    if fmt is None or body is None or len(fmt) < 16:
        raise WavError("missing fmt or data chunk")
    tag, channels, rate, _, align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack_from("<H", fmt, 24)[0]   # first two bytes of the SubFormat GUID
    if channels < 1 or rate < 1 or align < 1:
        raise WavError("bad fmt chunk")
    if bits % 8 or align != channels * bits // 8:
        # Block align is one sample of every channel; anything else cannot be cut into samples.
        raise WavError(f"block align {align} does not fit {channels} channels of {bits} bits")
    body = body[: len(body) - len(body) % align]
    if tag == WAVE_FORMAT_PCM and bits == 8:
        x = (np.frombuffer(body, np.uint8).astype(np.float64) - 128) * 256   # 8-bit PCM is unsigned
    elif tag == WAVE_FORMAT_PCM and bits == 16:
        x = np.frombuffer(body, "<i2").astype(np.float64)
    elif tag == WAVE_FORMAT_PCM and bits == 24:
        b = np.frombuffer(body, np.uint8).reshape(-1, 3).astype(np.int32)
        x = (((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8) >> 16).astype(np.float64)  # keep top 16 bits
    elif tag == WAVE_FORMAT_PCM and bits == 32:
        x = np.frombuffer(body, "<i4").astype(np.float64) / 65536
    elif tag == WAVE_FORMAT_IEEE_FLOAT and bits in (32, 64):
        x = np.frombuffer(body, "<f4" if bits == 32 else "<f8").astype(np.float64) * 32768
    elif tag == WAVE_FORMAT_MULAW and bits == 8:
        x = g711.ulaw_decode(np.frombuffer(body, np.uint8)).astype(np.float64)
    elif tag == WAVE_FORMAT_ALAW and bits == 8:
        x = g711.alaw_decode(np.frombuffer(body, np.uint8)).astype(np.float64)
    else:
        raise WavError(f"unsupported WAV format tag {tag} with {bits} bits")
    return x.reshape(-1, channels), rate


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Resample float samples by linear interpolation, low-passing first when going down in rate."""
    if src == dst or x.size == 0:
        return x
    if dst < src:
        # Windowed-sinc FIR at 0.9 x the new Nyquist, so content above it does not alias into the band.
        cutoff = 0.9 * (dst / 2) / src
        taps = 8 * int(np.ceil(src / dst)) + 1
        n = np.arange(taps) - taps // 2
        h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(taps)
        x = np.convolve(x, h / h.sum(), mode="same")
    n_out = int(len(x) * dst // src)
    pos = np.arange(n_out) * (src / dst)
    return np.interp(pos, np.arange(len(x)), x)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def read_wav(src, rate: int = RATE) -> np.ndarray:
    """Any supported WAV -> int16 mono at `rate` (channels averaged)."""
    x, src_rate = read_wav_raw(src)
    return to_int16(resample(x.mean(axis=1), src_rate, rate))


def frames(samples: np.ndarray, size: int = FRAME) -> np.ndarray:
    """Split into (n, size) frames, zero-padding the last one."""
    samples = np.asarray(samples, dtype=np.int16)
    n = -(-len(samples) // size)
    out = np.zeros((n, size), dtype=np.int16)
    out.reshape(-1)[: len(samples)] = samples
    return out


def read_frames(src) -> np.ndarray:
    """A WAV prompt as (n, 160) int16 frames at 8 kHz."""
    return frames(read_wav(src))


class Recorder:
    """Stereo 8 kHz PCM16 WAV, left = customer, right = agent, written as frames arrive."""

    def __init__(self, dest, rate: int = RATE) -> None:
        self._w = wave.open(dest, "wb")
        self._w.setnchannels(2)
        self._w.setsampwidth(2)
        self._w.setframerate(rate)
        self.samples = 0

    def write(self, customer, agent) -> None:
        c = np.asarray(customer, dtype=np.int16).reshape(-1)
        a = np.asarray(agent, dtype=np.int16).reshape(-1)
        n = max(len(c), len(a))
        st = np.zeros((n, 2), dtype="<i2")   # a side that sent less is padded with silence
        st[: len(c), 0] = c
        st[: len(a), 1] = a
        # wave patches the header on each write, so the file is valid even if the process dies.
        self._w.writeframes(st.tobytes())
        self.samples += n

    def close(self) -> None:
        self._w.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_wav(dest, samples: np.ndarray, rate: int = RATE) -> None:
    """PCM16 WAV from int16 (n,) or (n, channels) samples."""
    s = np.asarray(samples, dtype="<i2")
    with wave.open(dest, "wb") as w:
        w.setnchannels(1 if s.ndim == 1 else s.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(s.tobytes())


def wav_bytes(samples: np.ndarray, rate: int = RATE) -> bytes:
    buf = io.BytesIO()
    write_wav(buf, samples, rate)
    return buf.getvalue()


# --- test signals ----------------------------------------------------------------------------------

def tone(freq: float, seconds: float, rate: int = RATE, amplitude: float = 0.5, phase: float = 0.0) -> np.ndarray:
    """A sine at `amplitude` of full scale, int16."""
    t = np.arange(int(round(seconds * rate))) / rate
    return to_int16(amplitude * 32767 * np.sin(2 * np.pi * freq * t + phase))


def goertzel(samples: np.ndarray, freq: float, rate: int = RATE) -> float:
    """Power at `freq` (normalized: a full-window sine of amplitude A gives about (A * n / 2) ** 2)."""
    x = np.asarray(samples, dtype=np.float64)
    # One DFT bin at an arbitrary frequency; equal to the Goertzel recurrence's output power.
    w = np.exp(-2j * np.pi * freq / rate * np.arange(len(x)))
    return float(abs(np.dot(x, w)) ** 2)


def dominant_frequency(samples: np.ndarray, rate: int = RATE) -> float:
    """Strongest frequency (Hz) by FFT with parabolic interpolation of the peak bin."""
    x = np.asarray(samples, dtype=np.float64)
    x = (x - x.mean()) * np.hanning(len(x))
    mag = np.abs(np.fft.rfft(x))
    k = int(np.argmax(mag[1:])) + 1
    if 1 <= k < len(mag) - 1:
        a, b, c = np.log(mag[k - 1 : k + 2] + 1e-12)
        k += 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c else 0.0
    return k * rate / len(x)
