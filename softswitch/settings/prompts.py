"""Announcement files (queue announcements, music on hold, IVR prompts): a file that is there is checked when
the settings are read, headers only, so one that is unsupported or too long to load in bounded time is a
settings error (`file:line: key: message`), not a silent gap in a call. A file not there yet is loaded, or
reported, when a call first plays it."""

from __future__ import annotations

from pathlib import Path

from media.wav_header import WavError, wav_info

from . import reader as R
from .reader import Bad


def prompt_file(r, loc, path) -> str:
    v = R.nonempty(r, loc, path)
    p = Path(v) if Path(v).is_absolute() else Path(r.file).resolve().parent / v
    try:
        if not p.is_file():
            return v
        wav_info(p)
    except OSError as exc:
        raise Bad(f"cannot read {p}: {exc.strerror or exc}") from None
    except WavError as exc:
        raise Bad(f"{p}: {exc}") from None
    return v
