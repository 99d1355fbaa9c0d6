"""SDP text edits a WebRtcLeg makes around aiortc: rejected m-lines, telephone-event on the audio m-line (aiortc
knows no RFC 4733), and whether an offer asks for video."""

from __future__ import annotations


def video_offered(sdp_text: str) -> bool:
    """The offer's first video m-line is live: a port, and a direction other than inactive."""
    video = None
    for line in sdp_text.splitlines():
        if line.startswith("m="):
            if video is not None:
                break
            if line.startswith("m=video "):
                video = line.split(" ")[1] != "0"
        elif video and line.strip() == "a=inactive":
            video = False
    return bool(video)


def _reject_mids(sdp_text: str, mids: set[str]) -> str:
    """Set the port of the m-sections with these mids to 0 and take them out of BUNDLE groups."""
    if not mids:
        return sdp_text
    sections: list[list[str]] = [[]]
    for line in sdp_text.splitlines():
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    out = []
    for lines in sections[1:]:
        mid = next((ln[6:] for ln in lines if ln.startswith("a=mid:")), None)
        if mid in mids:
            parts = lines[0].split(" ")
            parts[1] = "0"
            lines = [" ".join(parts)] + [ln for ln in lines[1:] if not ln.startswith(
                ("a=candidate:", "a=end-of-candidates", "a=sendrecv", "a=sendonly", "a=recvonly",
                 "a=inactive", "a=ssrc", "a=msid:"))] + ["a=inactive"]
        out.append(lines)
    head = []
    for ln in sections[0]:
        if ln.startswith("a=group:BUNDLE"):
            items = [x for x in ln.split(" ")[1:] if x not in mids]
            if not items:
                continue
            ln = " ".join(["a=group:BUNDLE"] + items)
        head.append(ln)
    return "\r\n".join(head + [ln for sec in out for ln in sec]) + "\r\n"


def _telephone_event_pt(sdp_text: str) -> int | None:
    """The payload type of telephone-event/8000 in the first audio m-section, if any."""
    audio = False
    for line in sdp_text.splitlines():
        if line.startswith("m="):
            if audio:
                return None
            audio = line.startswith("m=audio")
        elif audio and line.lower().startswith("a=rtpmap:") and "telephone-event/8000" in line.lower():
            try:
                return int(line[9:].split(" ", 1)[0])
            except ValueError:
                return None
    return None


def _add_telephone_event(sdp_text: str, pt: int | None = None) -> tuple[str, int | None]:
    """Our SDP with telephone-event/8000 on its first (non-rejected) audio m-line: payload type `pt`, or one
    no m-section uses. Returns the text and the payload type (None when there is no audio to add it to)."""
    lines = sdp_text.splitlines()
    used = {int(x) for ln in lines if ln.startswith("m=") for x in ln.split(" ")[3:] if x.isdigit()}
    if pt is None:
        pt = next((p for p in (101, 126, 127, 110, 112, 113, 114, 115) if p not in used), None)
    start = next((i for i, ln in enumerate(lines) if ln.startswith("m=audio ") and not ln.startswith("m=audio 0 ")),
                 None)
    if pt is None or start is None:
        return sdp_text, None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("m=")), len(lines))
    at = max((i for i in range(start, end) if lines[i].startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"))),
             default=end - 1) + 1
    lines[start] += f" {pt}"
    lines[at:at] = [f"a=rtpmap:{pt} telephone-event/8000", f"a=fmtp:{pt} 0-16"]
    return "\r\n".join(lines) + "\r\n", pt


_CODEC_LINES = ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:", "a=extmap:")


def _split(sdp_text: str) -> list[list[str]]:
    """The session part, then each m= section, as lines."""
    out: list[list[str]] = [[]]
    for line in sdp_text.splitlines():
        if line.startswith("m="):
            out.append([])
        if line:
            out[-1].append(line)
    return out


def _extmap(line: str) -> tuple[int, str] | None:
    """(id, uri) of an a=extmap line (``a=extmap:3 URI`` or ``a=extmap:3/sendrecv URI``)."""
    head, _, rest = line[9:].partition(" ")
    ident = head.split("/", 1)[0]
    return (int(ident), rest.split(" ", 1)[0]) if ident.isdigit() and rest else None


def keep_negotiated(offer: str, local: str, remote: str) -> str:
    """Our re-offer made to agree with the session in use. aiortc offers its default payload types and header
    extension ids again, while its audio sender keeps the ones negotiated first, and a browser refuses an id
    remapped mid-call. So the first audio section offers the codecs and extensions of our current description
    (`local`), and in every other section a known extension keeps its id, a new one takes a free id."""
    ours = next((s for s in _split(local)[1:] if s[0].startswith("m=audio ")), None)
    ids: dict[str, int] = {}
    taken: set[int] = set()
    for text in (local, remote):
        for line in text.splitlines():
            pair = _extmap(line) if line.startswith("a=extmap:") else None
            if pair is not None:
                taken.add(pair[0])
                ids.setdefault(pair[1], pair[0])
    out: list[str] = []
    audio_done = False
    for i, section in enumerate(_split(offer)):
        if i and not audio_done and ours is not None and section[0].startswith("m=audio "):
            audio_done = True
            keep = [ln for ln in section[1:] if not ln.startswith(_CODEC_LINES)]
            m = section[0].split(" ")[:3] + ours[0].split(" ")[3:]
            out += [" ".join(m), *keep[:1], *[ln for ln in ours if ln.startswith(_CODEC_LINES)], *keep[1:]]
            continue
        for line in section:
            pair = _extmap(line) if line.startswith("a=extmap:") else None
            if pair is not None:
                if pair[1] not in ids:
                    ids[pair[1]] = next(n for n in range(1, 256) if n not in taken and n != 15)
                    taken.add(ids[pair[1]])
                line = f"a=extmap:{ids[pair[1]]} {pair[1]}"
            out.append(line)
    return "\r\n".join(out) + "\r\n"
