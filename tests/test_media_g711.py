"""G.711 tables against a scalar transcription of the Sun/CCITT g711.c reference, over every input."""

import numpy as np
import pytest

from media import g711

# --- scalar reference, written independently of the vectorized table builders -------------------------

EXP_LUT = [0, 0] + [1] * 2 + [2] * 4 + [3] * 8 + [4] * 16 + [5] * 32 + [6] * 64 + [7] * 128


def ref_linear2ulaw(sample: int) -> int:
    sign = (sample >> 8) & 0x80
    if sign:
        sample = -sample
    if sample > 32635:
        sample = 32635
    sample += 0x84
    exponent = EXP_LUT[(sample >> 7) & 0xFF]
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ref_ulaw2linear(u: int) -> int:
    u = ~u & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return 0x84 - t if u & 0x80 else t - 0x84


SEG_AEND = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]


def ref_linear2alaw(pcm: int) -> int:
    pcm >>= 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg = 8
    for i, end in enumerate(SEG_AEND):
        if pcm <= end:
            seg = i
            break
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (pcm >> 1) & 0x0F if seg < 2 else (pcm >> seg) & 0x0F
    return aval ^ mask


def ref_alaw2linear(a: int) -> int:
    a ^= 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


ALL = np.arange(-32768, 32768, dtype=np.int16)
CODES = np.arange(256, dtype=np.uint8)


def test_ulaw_encode_exhaustive():
    ref = np.array([ref_linear2ulaw(int(x)) for x in ALL], dtype=np.uint8)
    got = g711.ulaw_encode(ALL)
    assert got.dtype == np.uint8
    bad = np.nonzero(got != ref)[0]
    assert bad.size == 0, f"first mismatch at {ALL[bad[0]]}"


def test_alaw_encode_exhaustive():
    ref = np.array([ref_linear2alaw(int(x)) for x in ALL], dtype=np.uint8)
    got = g711.alaw_encode(ALL)
    bad = np.nonzero(got != ref)[0]
    assert bad.size == 0, f"first mismatch at {ALL[bad[0]]}"


def test_decode_all_codes():
    assert g711.ulaw_decode(CODES).tolist() == [ref_ulaw2linear(c) for c in range(256)]
    assert g711.alaw_decode(CODES).tolist() == [ref_alaw2linear(c) for c in range(256)]
    assert g711.ulaw_decode(CODES).dtype == np.int16


def test_known_values():
    u = lambda v: int(g711.ulaw_encode(np.array([v], np.int16))[0])  # noqa: E731
    a = lambda v: int(g711.alaw_encode(np.array([v], np.int16))[0])  # noqa: E731
    assert u(0) == 0xFF
    assert u(-1) == 0x7F          # negative zero code
    assert u(32767) == 0x80 and u(-32768) == 0x00
    assert a(0) == 0xD5 and a(-1) == 0x55
    assert a(32767) == 0xAA and a(-32768) == 0x2A
    assert g711.ulaw_decode([0x80, 0x00, 0xFF, 0x7F]).tolist() == [32124, -32124, 0, 0]
    assert g711.alaw_decode([0xD5, 0x55, 0xAA, 0x2A]).tolist() == [8, -8, 32256, -32256]


def test_decode_encode_error_bounded():
    x = ALL.astype(np.int32)
    mag = np.abs(x)
    err_u = np.abs(g711.ulaw_decode(g711.ulaw_encode(ALL)).astype(np.int32) - x)
    # Half a quantization step: step is 2**(e+3) within segment e, which starts at 2**(e+7) - 132.
    bound_u = np.where(mag > g711.CLIP, mag - 32124, (mag + 132) // 32 + 1)
    assert np.all(err_u <= bound_u)
    assert err_u.max() == 644          # -32768 clipped to the top code
    err_a = np.abs(g711.alaw_decode(g711.alaw_encode(ALL)).astype(np.int32) - x)
    bound_a = np.maximum(8, mag // 32 + 1)
    assert np.all(err_a <= bound_a)
    assert err_a.max() == 512


def test_encode_decode_code_round_trip():
    u = g711.ulaw_encode(g711.ulaw_decode(CODES))
    # 0x7F is mu-law "negative zero": it decodes to 0, which encodes as the positive zero 0xFF.
    expect = CODES.copy()
    expect[0x7F] = 0xFF
    assert np.array_equal(u, expect)
    assert np.array_equal(g711.alaw_encode(g711.alaw_decode(CODES)), CODES)


def test_codec_dispatch_bytes_and_pt():
    pcm = (np.sin(np.arange(160) * 0.3) * 12000).astype(np.int16)
    for codec, enc in (("PCMU", g711.ulaw_encode), ("PCMA", g711.alaw_encode)):
        payload = g711.encode(pcm, codec)
        assert isinstance(payload, bytes) and len(payload) == 160
        assert payload == enc(pcm).tobytes()
        assert np.array_equal(g711.decode(payload, codec), g711.decode(np.frombuffer(payload, np.uint8), codec))
    assert g711.PT == {"PCMU": 0, "PCMA": 8}
    with pytest.raises(ValueError):
        g711.encode(pcm, "G729")
    with pytest.raises(ValueError):
        g711.decode(b"\x00", "opus")


def test_wide_input_saturates():
    wide = np.array([40000, -40000, 100], dtype=np.int32)
    assert g711.ulaw_encode(wide).tolist() == g711.ulaw_encode(np.array([32767, -32768, 100], np.int16)).tolist()
