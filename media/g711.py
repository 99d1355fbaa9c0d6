"""G.711 mu-law (PCMU) and A-law (PCMA) by table lookup.

Encode tables (65536 entries, indexed by the int16 sample's bit pattern) and decode tables (256 entries)
are built once at import from the ITU G.711 reference algorithm as in the classic Sun/CCITT g711.c.
"""

from __future__ import annotations

import numpy as np

from .errors import LocalProtocolError

PT = {"PCMU": 0, "PCMA": 8}

# mu-law: 16-bit input, magnitude clipped at CLIP so that magnitude + BIAS still fits in 15 bits.
BIAS = 0x84
CLIP = 32635


def _build_ulaw_encode() -> np.ndarray:
    x = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(x < 0, 0x80, 0)
    # No ZEROTRAP: G.711 permits the all-zero code word, so 0x00 is emitted for the loudest negatives.
    mag = np.minimum(np.abs(x), CLIP) + BIAS
    # exponent = position of the highest set bit of mag above bit 7 (mag is in [132, 32767]).
    exponent = np.floor(np.log2(mag >> 7)).astype(np.int32)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    code = ~(sign | (exponent << 4) | mantissa) & 0xFF
    table = np.empty(65536, dtype=np.uint8)
    table[x & 0xFFFF] = code  # index by the two's-complement bit pattern, i.e. pcm.view(uint16)
    return table


def _build_ulaw_decode() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, BIAS - t, t - BIAS).astype(np.int16)


# A-law segment end points on the 13-bit magnitude (Sun g711.c seg_aend).
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _build_alaw_encode() -> np.ndarray:
    x = np.arange(-32768, 32768, dtype=np.int32)
    v = x >> 3
    # Negative values use one's complement (-v - 1) so the law is symmetric; even bits toggled by 0x55.
    mask = np.where(v >= 0, 0xD5, 0x55)
    v = np.where(v >= 0, v, -v - 1)
    seg = np.searchsorted(_SEG_AEND, v, side="left")  # first segment whose end >= v
    quant = np.where(seg < 2, v >> 1, v >> np.maximum(seg, 1)) & 0x0F
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | quant) ^ mask
    table = np.empty(65536, dtype=np.uint8)
    table[x & 0xFFFF] = code
    return table


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE = _build_ulaw_encode()
ULAW_DECODE = _build_ulaw_decode()
ALAW_ENCODE = _build_alaw_encode()
ALAW_DECODE = _build_alaw_decode()
for _t in (ULAW_ENCODE, ULAW_DECODE, ALAW_ENCODE, ALAW_DECODE):
    _t.flags.writeable = False


def _as_pcm(pcm) -> np.ndarray:
    a = np.asarray(pcm)
    if a.dtype != np.int16:
        # Wider inputs (e.g. int32 mixer sums) saturate rather than wrap.
        a = np.clip(a, -32768, 32767).astype(np.int16)
    return a


def _as_codes(codes) -> np.ndarray:
    if isinstance(codes, (bytes, bytearray, memoryview)):
        return np.frombuffer(codes, dtype=np.uint8)
    return np.asarray(codes, dtype=np.uint8)


def ulaw_encode(pcm) -> np.ndarray:
    """int16 samples -> mu-law codes (uint8)."""
    return np.take(ULAW_ENCODE, _as_pcm(pcm).view(np.uint16))   # take() is about twice as fast as fancy indexing


def ulaw_decode(codes) -> np.ndarray:
    """mu-law codes -> int16 samples."""
    return np.take(ULAW_DECODE, _as_codes(codes))   # take() is about twice as fast as fancy indexing


def alaw_encode(pcm) -> np.ndarray:
    """int16 samples -> A-law codes (uint8)."""
    return np.take(ALAW_ENCODE, _as_pcm(pcm).view(np.uint16))   # take() is about twice as fast as fancy indexing


def alaw_decode(codes) -> np.ndarray:
    """A-law codes -> int16 samples."""
    return np.take(ALAW_DECODE, _as_codes(codes))   # take() is about twice as fast as fancy indexing


_ENC = {"PCMU": ULAW_ENCODE, "PCMA": ALAW_ENCODE}
_DEC = {"PCMU": ULAW_DECODE, "PCMA": ALAW_DECODE}


def encode(pcm, codec: str) -> bytes:
    """int16 samples -> RTP payload bytes for codec "PCMU" or "PCMA"."""
    try:
        table = _ENC[codec]
    except KeyError:
        raise LocalProtocolError(f"unknown G.711 codec {codec!r}") from None
    return np.take(table, _as_pcm(pcm).view(np.uint16)).tobytes()


def decode(payload, codec: str) -> np.ndarray:
    """RTP payload (bytes or uint8 array) -> int16 samples."""
    try:
        table = _DEC[codec]
    except KeyError:
        raise LocalProtocolError(f"unknown G.711 codec {codec!r}") from None
    return np.take(table, _as_codes(payload))


# --- block kernels: preallocated outputs, tables shaped for whole-frame work ---------------------------
#
# np.take(..., mode="clip") skips the per-element bounds error path (~30% faster); every index below is
# in range by construction (uint8 / uint16 codes, biased sums), so "clip" never changes a result.

SAT_OFFSET = 65536      # ENCODE_SAT[codec][s + SAT_OFFSET] == encode(clip(s)) for s in [-65536, 65536)
PAIR_BIAS = 32768       # DECODE_PAIR_BIASED entries are decoded samples + PAIR_BIAS, as int32


def _build_pair_biased(dec: np.ndarray) -> np.ndarray:
    """65536 uint64 entries: the uint16 view of two codes -> their two int32 samples (+ PAIR_BIAS).

    Decoding a frame through the uint16 view of its bytes halves the number of lookups.
    """
    i = np.arange(65536)
    t = np.empty(65536, dtype=np.uint64)
    v = t.view(np.int32).reshape(65536, 2)
    lo, hi = (i & 0xFF, i >> 8) if np.little_endian else (i >> 8, i & 0xFF)
    v[:, 0] = dec[lo].astype(np.int32) + PAIR_BIAS
    v[:, 1] = dec[hi].astype(np.int32) + PAIR_BIAS
    return t


def _build_sat(enc: np.ndarray) -> np.ndarray:
    s = np.arange(-SAT_OFFSET, SAT_OFFSET)
    return enc[np.clip(s, -32768, 32767).astype(np.int16).view(np.uint16)]


DECODE_PAIR_BIASED = {"PCMU": _build_pair_biased(ULAW_DECODE), "PCMA": _build_pair_biased(ALAW_DECODE)}
ENCODE_SAT = {"PCMU": _build_sat(ULAW_ENCODE), "PCMA": _build_sat(ALAW_ENCODE)}
# TRANSCODE[(src, dst)][code] = dst-encode(src-decode(code)): a two-party leg hearing its peer.
TRANSCODE = {(a, b): np.take(_ENC[b], _DEC[a].view(np.uint16)) for a in _DEC for b in _ENC}


def _build_mix2(dec: np.ndarray, enc: np.ndarray) -> np.ndarray:
    """65536 uint8 entries: [(a << 8) | b] = encode(clip(decode(a) + decode(b))), symmetric in a and b.

    A leg of a three-party room hears exactly two others, so its whole decode-mix-encode is one lookup.
    """
    d = dec.astype(np.int32)
    return enc[np.clip(d[:, None] + d[None, :], -32768, 32767).astype(np.int16).view(np.uint16)].reshape(-1)


MIX2 = {c: _build_mix2(_DEC[c], _ENC[c]) for c in _DEC}
for _t in (*DECODE_PAIR_BIASED.values(), *ENCODE_SAT.values(), *TRANSCODE.values(), *MIX2.values()):
    _t.flags.writeable = False


def decode_into(codes: np.ndarray, codec: str, out: np.ndarray) -> np.ndarray:
    """uint8 codes -> int16 (or int32) samples written into the preallocated `out` (same shape)."""
    return np.take(_DEC[codec], codes, out=out, mode="clip")


def encode_into(pcm: np.ndarray, codec: str, out: np.ndarray) -> np.ndarray:
    """int16 samples -> uint8 codes written into the preallocated `out` (same shape)."""
    return np.take(_ENC[codec], pcm.view(np.uint16), out=out, mode="clip")
