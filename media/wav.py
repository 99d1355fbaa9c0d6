"""WAV prompts in, call recordings out, and test-signal helpers; all audio is int16 8 kHz mono frames."""

from __future__ import annotations

import io
import wave

import numpy as np

from . import g711
# the header checks live apart, without numpy, for the settings; their names stay importable from here
from .wav_header import (FIX, MAX_CHANNELS, MAX_RATE, MAX_SAMPLES, MAX_SECONDS, MIN_RATE,  # noqa: F401
                         WAVE_FORMAT_ALAW, WAVE_FORMAT_EXTENSIBLE, WAVE_FORMAT_IEEE_FLOAT, WAVE_FORMAT_MULAW,
                         WAVE_FORMAT_PCM, WavError, WavInfo, check_format, open_source, scan_chunks, wav_info)

RATE = 8000
FRAME = 160


def _pcm24(body: bytes) -> np.ndarray:
    b = np.frombuffer(body, np.uint8).reshape(-1, 3).astype(np.int32)
    return (((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8) >> 16).astype(np.float64)   # keep top 16 bits


_DECODERS = {
    (WAVE_FORMAT_PCM, 8): lambda b: (np.frombuffer(b, np.uint8).astype(np.float64) - 128) * 256,   # unsigned
    (WAVE_FORMAT_PCM, 16): lambda b: np.frombuffer(b, "<i2").astype(np.float64),
    (WAVE_FORMAT_PCM, 24): _pcm24,
    (WAVE_FORMAT_PCM, 32): lambda b: np.frombuffer(b, "<i4").astype(np.float64) / 65536,
    (WAVE_FORMAT_IEEE_FLOAT, 32): lambda b: np.frombuffer(b, "<f4").astype(np.float64) * 32768,
    (WAVE_FORMAT_IEEE_FLOAT, 64): lambda b: np.frombuffer(b, "<f8").astype(np.float64) * 32768,
    (WAVE_FORMAT_MULAW, 8): lambda b: g711.ulaw_decode(np.frombuffer(b, np.uint8)).astype(np.float64),
    (WAVE_FORMAT_ALAW, 8): lambda b: g711.alaw_decode(np.frombuffer(b, np.uint8)).astype(np.float64),
}


def read_wav_raw(src) -> tuple[np.ndarray, int]:
    """(samples as float64 in int16 scale, shape (n, channels), sample rate) from a path, bytes or file.
    Raises WavError for anything unreadable, unsupported or past the bounds above, before decoding it."""
    f = open_source(src)
    try:
        fmt, start, length = scan_chunks(f)
        info = check_format(fmt, length)
        f.seek(start)
        body = f.read(info.frames * info.channels * info.bits // 8)
    finally:
        if f is not src:
            f.close()
    x = _DECODERS[info.tag, info.bits](body)
    return x.reshape(-1, info.channels), info.rate


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
    # linear interpolation on the uniform grid: the index is the position's floor (no search, as np.interp does)
    i = np.minimum(pos.astype(np.int64), len(x) - 1)
    frac = pos - i
    return x[i] * (1.0 - frac) + x[np.minimum(i + 1, len(x) - 1)] * frac


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def read_wav(src, rate: int = RATE) -> np.ndarray:
    """Any supported WAV -> int16 mono at `rate` (channels averaged)."""
    x, src_rate = read_wav_raw(src)
    return to_int16(resample(x[:, 0] if x.shape[1] == 1 else x.mean(axis=1), src_rate, rate))


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
