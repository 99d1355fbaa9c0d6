"""A trunk's `codecs` applied to SDP: what the node offers a trunk, and what it may answer a trunk's offer with.

A trunk lists its codecs in order of preference (PCMU, PCMA, and telephone-event for RFC 4733 DTMF). The audio
m-line of an SDP body for that trunk keeps only those formats, in that order; the rtpmap/fmtp lines of the
formats dropped go too, and every other line (other media, connection, direction) is left as it was. Pure:
bytes in, bytes out.
"""

from __future__ import annotations

from ..sip.sdp import AUDIO_CODECS

EVENT = "TELEPHONE-EVENT"


def _names(section: list[str]) -> dict[str, str]:
    """Format -> codec name (upper case, no clock rate) for the rtpmap lines of one media section."""
    out: dict[str, str] = {}
    for line in section:
        if line.startswith("a=rtpmap:"):
            fmt, _, enc = line[9:].partition(" ")
            name, _, rate = enc.strip().partition("/")
            if rate.split("/")[0] == "8000":
                out[fmt] = name.upper()
    return out


def restrict(body: bytes, codecs: tuple[str, ...], *, answer: bool = False) -> bytes | None:
    """`body` with its first audio m-line cut to the trunk's `codecs` in their order; None when no audio codec of
    the trunk is left (a trunk's offer so cut is refused with 488). `answer`: the offer of a trunk the node is
    about to answer keeps only the trunk's most preferred audio codec it offers (the answer names one), and
    telephone-event if the trunk allows it."""
    text = body.decode("utf-8", "replace")
    nl = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(nl)
    start = next((i for i, line in enumerate(lines) if line.startswith("m=audio ")), None)
    if start is None:
        return body                   # no audio offered: the node's own checks answer that
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("m=")), len(lines))
    section = lines[start + 1:end]
    parts = lines[start].split(" ")
    if len(parts) < 4:
        return None
    fmts = parts[3:]
    names = _names(section)
    for f in fmts:
        if f not in names and f.isdigit() and int(f) in AUDIO_CODECS:
            names[f] = AUDIO_CODECS[int(f)].split("/")[0]
    wanted = [c.upper() for c in codecs]
    audio = [f for c in wanted if c != EVENT for f in fmts if names.get(f) == c]
    if not audio:
        return None
    if answer:
        audio = audio[:1]
    events = [f for f in fmts if names.get(f) == EVENT][:1] if EVENT in wanted else []
    keep = list(dict.fromkeys(audio + events))
    dropped = set(fmts) - set(keep)

    def stays(line: str) -> bool:
        if line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
            return line.split(":", 1)[1].split(" ", 1)[0] not in dropped
        return True
    out = lines[:start] + [" ".join(parts[:3] + keep)] + [x for x in section if stays(x)] + lines[end:]
    return nl.join(out).encode()
