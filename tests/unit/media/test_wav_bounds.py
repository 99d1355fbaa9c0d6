"""A prompt file is hostile input too: a WAV whose header claims an odd rate, a huge chunk or hours of audio is
refused from its headers (WavError saying why and how to fix it), before anything is decoded or resampled,
and the announcement settings report it as `file:line: key: message`."""

from __future__ import annotations

import struct
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from media import wav, wav_header
from media.wav import MAX_SECONDS, WavError, read_wav, tone, wav_bytes, wav_info
from softswitch.settings import ConfigError, load_config
from tests.integration.test_settings import BASE
from tests.unit.media.test_media_wav import riff


def chunk(cid: bytes, body: bytes, size: int | None = None) -> bytes:
    return cid + struct.pack("<I", len(body) if size is None else size) + body + b"\x00" * (len(body) & 1)


def wave_of(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("rate", [1, 1999, 48001, 96000, 2 ** 30])
def test_a_rate_outside_the_bounds_is_refused_before_resampling(rate):
    data = riff(1, 1, rate, 16, b"\x00\x01" * 4000)
    with pytest.raises(WavError, match=r"sample rate .* outside 2000\.\.48000 Hz; convert it to 8 kHz mono"):
        read_wav(data)


@pytest.mark.parametrize("rate", [2000, 11025, 22050, 44100, 48000])
def test_odd_rates_inside_the_bounds_are_resampled_to_8k(rate):
    x = read_wav(wav_bytes(tone(440, 0.5, rate=rate), rate=rate))
    assert abs(len(x) - 4000) <= 1


def test_too_long_is_refused_from_the_header():
    data = riff(7, 1, 8000, 8, b"\xff" * int(8000 * (MAX_SECONDS + 1)))
    with pytest.raises(WavError, match=r"601 s long \(at most 600 s\)"):
        read_wav(data)
    assert wav_info(riff(7, 1, 8000, 8, b"\xff" * 8000 * 600)).seconds == 600


def test_too_many_channels_or_samples():
    with pytest.raises(WavError, match=r"9 channels \(at most 8\)"):
        read_wav(riff(1, 9, 8000, 16, b"\x00" * 18 * 10))
    # 8 channels at 48 kHz for 40 s: within the duration, over what one load may decode
    fmt = struct.pack("<HHIIHH", 1, 8, 48000, 48000 * 16, 16, 16)
    huge = wave_of(chunk(b"fmt ", fmt), chunk(b"data", b"", size=48000 * 16 * 40))
    assert wav_info(huge).frames == 0       # a data chunk cut short: what the file holds counts, not the claim
    with pytest.raises(WavError, match="too many samples"):
        read_wav(wave_of(chunk(b"fmt ", fmt), chunk(b"data", b"\x00" * 48000 * 16 * 40)))


def test_a_chunk_that_claims_4_gb_is_skipped_not_read():
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    data = wave_of(chunk(b"fmt ", fmt), chunk(b"data", b"\x01\x00" * 800), chunk(b"LIST", b"ab", size=2 ** 32 - 2))
    assert len(read_wav(data)) == 800
    # a data chunk that claims more than the file holds: what is there
    data = wave_of(chunk(b"fmt ", fmt), b"data" + struct.pack("<I", 2 ** 32 - 2) + b"\x01\x00" * 800)
    assert len(read_wav(data)) == 800


def test_many_empty_chunks_walk_in_linear_time():
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    filler = chunk(b"junk", b"") * 200_000
    assert len(read_wav(wave_of(filler, chunk(b"fmt ", fmt), chunk(b"data", b"\x00\x00" * 160)))) == 160
    with pytest.raises(WavError, match="missing fmt or data"):
        read_wav(wave_of(filler))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tag=st.sampled_from([1, 3, 6, 7, 0xFFFE, 0, 2, 0xFFFF]), channels=st.integers(0, 70000),
       rate=st.one_of(st.integers(0, 2 ** 32 - 1), st.sampled_from([1, 2000, 8000, 48000, 48001])),
       bits=st.sampled_from([0, 1, 8, 12, 16, 24, 32, 64, 65535]), align=st.integers(0, 65535),
       body=st.binary(max_size=4000), declared=st.one_of(st.none(), st.integers(0, 2 ** 32 - 1)))
def test_any_header_gives_samples_within_bounds_or_a_wav_error(tag, channels, rate, bits, align, body, declared):
    fmt = struct.pack("<HHIIHH", tag, channels % 65536, rate, 0, align, bits)
    data = wave_of(chunk(b"fmt ", fmt), chunk(b"data", body, size=declared))
    try:
        x = read_wav(data)
    except WavError:
        return
    assert x.dtype == np.int16 and len(x) <= MAX_SECONDS * 8000


def test_announcement_files_are_checked_with_file_line_and_key(tmp_path):
    (tmp_path / "long.wav").write_bytes(riff(7, 1, 8000, 8, b"\xff" * 8000 * 700))
    (tmp_path / "hifi.wav").write_bytes(riff(1, 1, 96000, 16, b"\x00" * 960))
    (tmp_path / "text.wav").write_bytes(b"not a wav")
    (tmp_path / "ok.wav").write_bytes(wav_bytes(tone(440, 1.0)))
    text = BASE.replace("{name: q1}", "{name: q1, announce: {entry: long.wav}, music_on_hold: hifi.wav}")
    text += textwrap.dedent("""\
        ivr:
          main:
            - play: [ok.wav, text.wav, not-there-yet.wav]
        """)
    path = tmp_path / "cc.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    got = {(line, key): msg for f, line, key, msg in exc.value.problems}
    assert all(f == str(path) for f, *_ in exc.value.problems)
    line_q = text.splitlines().index("  - {name: q1, announce: {entry: long.wav}, music_on_hold: hifi.wav}") + 1
    assert got.keys() == {(line_q, "skill_queues[0].announce.entry"), (line_q, "skill_queues[0].music_on_hold"),
                          (len(text.splitlines()), "ivr.main[0].play[1]")}
    assert got[line_q, "skill_queues[0].announce.entry"].endswith("long.wav: 700 s long (at most 600 s)")
    assert "sample rate 96000 Hz is outside" in got[line_q, "skill_queues[0].music_on_hold"]
    assert got[len(text.splitlines()), "ivr.main[0].play[1]"].endswith("text.wav: not a RIFF/WAVE file")


def test_the_header_check_accepts_exactly_the_formats_the_decoder_reads():
    """The settings check prompts with media.wav_header (no numpy); media.wav decodes: one list of formats."""
    assert set(wav._DECODERS) == wav_header.SUPPORTED
    for tag, bits in wav_header.SUPPORTED:
        channels, align = 1, bits // 8
        fmt = struct.pack("<HHIIHH", tag, channels, 8000, 8000 * align, align, bits)
        assert wav_header.check_format(fmt, 800 * align).frames == 800
    with pytest.raises(WavError, match="unsupported WAV format tag 1 with 40 bits"):
        wav_header.check_format(struct.pack("<HHIIHH", 1, 1, 8000, 40000, 5, 40), 50)
