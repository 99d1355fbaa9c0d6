"""The G.711 payload types the engine speaks, and their lookup tables."""

from __future__ import annotations

from .. import g711

CODEC_BY_PT = {0: "PCMU", 8: "PCMA"}
DECODE = {0: g711.ULAW_DECODE, 8: g711.ALAW_DECODE}
ENCODE = {0: g711.ULAW_ENCODE, 8: g711.ALAW_ENCODE}
SILENCE = {0: 0xFF, 8: 0xD5}           # the code nearest to 0 (mu-law 0xFF is 0, A-law 0xD5 is +8)
