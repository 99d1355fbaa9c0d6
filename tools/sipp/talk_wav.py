"""The audio SIPp phones stream in the RTP scenarios (customer_call_rtp.xml, agent_uas_rtp.xml): a G.711 u-law
WAV, which SIPp's rtp_stream sends as it is (payload type 0, 160 bytes every 20 ms), looped for the whole call."""

from __future__ import annotations

import struct

import numpy as np

from media.g711 import ulaw_encode
from media.wav import tone

NAME = "talk.wav"          # the scenarios name it relative to SIPp's working directory


def write_talk_wav(path: str, seconds: float = 2.0, freq: float = 440.0) -> str:
    """A quiet tone encoded u-law in a WAVE_FORMAT_MULAW file (with the fact chunk non-PCM formats carry)."""
    codes = ulaw_encode(tone(freq, seconds, amplitude=0.2)).astype(np.uint8).tobytes()
    fmt = struct.pack("<HHIIHHH", 7, 1, 8000, 8000, 1, 8, 0)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<II", 4, len(codes))
            + b"data" + struct.pack("<I", len(codes)) + codes)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path
