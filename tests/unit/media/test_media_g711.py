"""G.711 tables against a scalar transcription of the Sun/CCITT g711.c reference, over every input."""

import numpy as np
import pytest

from media import g711, g711_ref

# --- scalar reference (media.g711_ref), written independently of the vectorized table builders -------

ref_linear2ulaw, ref_ulaw2linear = g711_ref.linear2ulaw, g711_ref.ulaw2linear
ref_linear2alaw, ref_alaw2linear = g711_ref.linear2alaw, g711_ref.alaw2linear

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


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_mix2_table_is_decode_sum_clip_encode_for_every_pair(codec):
    dec, enc = ((g711_ref.ulaw2linear, g711_ref.linear2ulaw) if codec == "PCMU"
                else (g711_ref.alaw2linear, g711_ref.linear2alaw))
    want = [enc(max(-32768, min(32767, dec(a) + dec(b)))) for a in range(256) for b in range(256)]
    assert g711.MIX2[codec].tolist() == want
