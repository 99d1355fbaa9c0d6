"""WAV reading/resampling, the stereo call recorder, and the test-signal helpers."""

import io
import struct
import wave

import numpy as np
import pytest

from media import g711
from media.wav import (Recorder, WavError, dominant_frequency, frames, goertzel, read_frames, read_wav, tone,
                       wav_bytes, write_wav)


def riff(tag, channels, rate, bits, body, extensible=False):
    align = channels * bits // 8
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * align, align, bits, 22, bits, 0) \
            + struct.pack("<H", tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"LIST" + struct.pack("<I", 3) + b"abc\x00"          # odd-sized chunk: must be skipped
    chunks += b"data" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def test_tone_and_dominant_frequency():
    for f in (350.0, 440.0, 1000.0, 1633.0, 3000.0):
        assert dominant_frequency(tone(f, 0.5)) == pytest.approx(f, abs=2)
    x = tone(697, 0.1) // 2 + tone(1209, 0.1) // 2
    assert goertzel(x, 697) > 100 * goertzel(x, 770)
    assert goertzel(x, 1209) > 100 * goertzel(x, 1336)
    t = tone(1000, 1.0, amplitude=0.25)
    assert t.dtype == np.int16 and len(t) == 8000
    assert abs(int(t.max()) - 8192) <= 2


def test_pcm16_mono_8k_identity():
    x = tone(440, 0.3)
    assert np.array_equal(read_wav(wav_bytes(x)), x)


@pytest.mark.parametrize("rate", [16000, 44100, 48000, 11025, 22050])
def test_resampled_to_8k(rate):
    x = tone(440, 1.0, rate=rate)
    y = read_wav(wav_bytes(x, rate))
    assert abs(len(y) - 8000) <= 1
    assert dominant_frequency(y) == pytest.approx(440, abs=2)
    assert 0.45 * 32767 < np.abs(y[100:-100]).max() < 0.55 * 32767   # level kept


def test_downsampling_suppresses_aliases():
    # 6 kHz at 48 kHz would fold to 2 kHz at 8 kHz without the low-pass.
    y = read_wav(wav_bytes(tone(6000, 1.0, rate=48000), 48000))
    assert np.abs(y[200:-200]).max() < 0.02 * 32767


def test_stereo_mixed_down():
    left, right = tone(500, 0.5, rate=16000), tone(1500, 0.5, rate=16000)
    y = read_wav(wav_bytes(np.stack([left, right], axis=1), 16000))
    assert goertzel(y, 500) == pytest.approx(goertzel(y, 1500), rel=0.2)
    assert np.abs(y).max() < 0.55 * 32767            # averaged, not summed
    cancel = read_wav(wav_bytes(np.stack([left, -left], axis=1), 16000))
    assert np.abs(cancel).max() <= 1


@pytest.mark.parametrize("tag,enc,dec", [(7, g711.ulaw_encode, g711.ulaw_decode),
                                         (6, g711.alaw_encode, g711.alaw_decode)])
def test_g711_wav(tag, enc, dec):
    x = tone(800, 0.4)
    codes = enc(x)
    y = read_wav(riff(tag, 1, 8000, 8, codes.tobytes()))
    assert np.array_equal(y, dec(codes))


def test_other_pcm_widths_and_extensible():
    x = tone(700, 0.2)
    b24 = np.zeros((len(x), 3), np.uint8)
    v = x.astype(np.int32) << 8
    b24[:, 0], b24[:, 1], b24[:, 2] = v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF
    assert np.array_equal(read_wav(riff(1, 1, 8000, 24, b24.tobytes())), x)
    assert np.array_equal(read_wav(riff(1, 1, 8000, 16, x.astype("<i2").tobytes(), extensible=True)), x)
    f32 = (x / 32768).astype("<f4")
    assert np.array_equal(read_wav(riff(3, 1, 8000, 32, f32.tobytes())), x)
    u8 = ((x >> 8) + 128).astype(np.uint8)
    assert np.abs(read_wav(riff(1, 1, 8000, 8, u8.tobytes())).astype(int) - x).max() < 256


def test_bad_files_raise():
    with pytest.raises(WavError):
        read_wav(b"RIFX....WAVE")
    with pytest.raises(WavError):
        read_wav(riff(1, 1, 8000, 16, b"")[:20])
    with pytest.raises(WavError):
        read_wav(riff(85, 1, 8000, 16, b"\x00" * 10))   # MP3 in WAV


@pytest.mark.parametrize("bits, align", [(16, 1), (24, 1), (32, 2), (12, 2)])
def test_a_block_align_that_does_not_fit_the_samples_is_a_wav_error(bits, align):
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 8000 * align, align, bits)
    body = b"\x00" * 7
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(body)) + body
    with pytest.raises(WavError, match="block align"):
        read_wav(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)


def test_frames_split_and_pad(tmp_path):
    x = np.arange(1, 401, dtype=np.int16)
    f = frames(x)
    assert f.shape == (3, 160)
    assert np.array_equal(f.reshape(-1)[:400], x) and not f[2, 80:].any()
    p = tmp_path / "prompt.wav"
    write_wav(str(p), tone(440, 1.0, rate=16000), 16000)
    assert read_frames(p).shape == (50, 160)
    assert frames(np.zeros(0, np.int16)).shape == (0, 160)


def test_recorder_stereo(tmp_path):
    path = tmp_path / "call.wav"
    cust, agent = tone(300, 1.0), tone(2000, 1.0)
    with Recorder(str(path)) as rec:
        for i in range(50):
            rec.write(cust[i * 160:(i + 1) * 160], agent[i * 160:(i + 1) * 160])
        rec.write(np.ones(160, np.int16), np.ones(80, np.int16))       # short side padded
    assert rec.samples == 8160
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (2, 2, 8000, 8160)
        data = np.frombuffer(w.readframes(8160), "<i2").reshape(-1, 2)
    assert np.array_equal(data[:8000, 0], cust) and np.array_equal(data[:8000, 1], agent)
    assert data[8000:, 0].tolist() == [1] * 160 and data[8080:, 1].tolist() == [0] * 80
    assert dominant_frequency(data[:8000, 0]) == pytest.approx(300, abs=2)


def test_recorder_header_valid_before_close():
    buf = io.BytesIO()
    rec = Recorder(buf)
    rec.write(tone(440, 0.1), tone(440, 0.1))
    rec.write(tone(440, 0.1), tone(440, 0.1))
    with wave.open(io.BytesIO(buf.getvalue()), "rb") as w:   # readable mid-call
        assert w.getnframes() == 1600
    rec.close()
