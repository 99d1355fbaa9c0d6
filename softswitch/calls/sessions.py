"""Session descriptions the core answers itself, without asking the other side: a re-INVITE on an anchored
leg (hold, resume, refresh) is answered with the session the leg already has and the direction mirrored
(RFC 3264 s. 6.1: sendonly is answered recvonly, inactive inactive)."""

from __future__ import annotations

from ..sip.sdp import ANSWER_DIRECTION, parse_sdp
from ..sip.errors import SipError

DIRECTIONS = ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")


def with_direction(sdp: bytes, direction: str) -> bytes:
    lines = sdp.decode().split("\r\n")
    return "\r\n".join(f"a={direction}" if ln in DIRECTIONS else ln for ln in lines).encode()


def as_dtls_answer(ours: bytes, offer: bytes) -> bytes:
    """Our first WebRTC description re-used as an answer: the DTLS role must be the opposite of the one the
    browser takes in its offer (RFC 5763 s. 5); ICE credentials and fingerprint stay, so nothing restarts."""
    theirs = "active"
    for line in offer.decode("latin-1").split("\r\n"):
        if line.startswith("a=setup:"):
            theirs = line[8:].strip()
    role = {"active": "passive", "passive": "active"}.get(theirs, "passive")
    return b"\r\n".join(b"a=setup:" + role.encode() if ln.startswith(b"a=setup:") else ln
                        for ln in ours.split(b"\r\n"))


def hold_answer(ours: bytes, offer: bytes, webrtc: bool) -> bytes:
    """Our answer to a re-INVITE on an anchored leg: our session, direction mirrored from the offer's audio;
    streams the offer adds (a browser turning a voice call into video) are refused, not ignored."""
    if not (offer and ours):
        return ours
    body = ours
    try:
        body = with_direction(ours, ANSWER_DIRECTION[parse_sdp(offer).first("audio").direction])
    except (SipError, AttributeError):
        pass
    body = refuse_added_media(body, offer)
    return as_dtls_answer(body, offer) if webrtc else body


def holds(offer: bytes) -> bool | None:
    """Whether a re-INVITE's offer puts the call on hold (audio sendonly or inactive, RFC 3264 s. 8.4); None
    when it has no readable audio."""
    try:
        audio = parse_sdp(offer).first("audio") if offer else None
    except SipError:
        return None
    return None if audio is None else audio.direction in ("sendonly", "inactive")


def _media_sections(sdp: bytes) -> list[list[bytes]]:
    """The session part, then each m= section, as lines (CRLF or LF)."""
    out: list[list[bytes]] = [[]]
    for line in sdp.replace(b"\r\n", b"\n").split(b"\n"):
        if line.startswith(b"m="):
            out.append([])
        if line:
            out[-1].append(line)
    return out


def refuse_added_media(answer: bytes, offer: bytes) -> bytes:
    """RFC 3264 s. 6: an answer has as many m= lines as the offer, in the same order. An m= section the offer
    has beyond ours is answered with port 0 (refused), keeping its media, transport and mid, so the call goes
    on with the streams it has instead of the offerer failing on a malformed answer."""
    theirs, ours = _media_sections(offer), _media_sections(answer)
    extra = theirs[len(ours):]
    if not extra:
        return answer
    lines = [ln for section in ours for ln in section]
    for section in extra:
        kind, _, rest = section[0][2:].partition(b" ")
        parts = rest.split(b" ")
        proto, fmt = (parts[1], parts[2]) if len(parts) >= 3 else (b"RTP/AVP", b"0")
        lines.append(b"m=" + kind + b" 0 " + proto + b" " + fmt)
        lines += [ln for ln in section[1:] if ln.startswith(b"a=mid:")][:1]
    return b"\r\n".join(lines) + b"\r\n"


def relays_reinvite(has_body: bool, other, anchored: bool) -> bool:
    """Media straight between the phones: a re-INVITE with a session is passed to the other side, whose
    answer becomes ours. Anchored media: answered here (hold_answer)."""
    return has_body and other is not None and other.state == "confirmed" and not anchored


DTMF_DIGITS = frozenset("0123456789*#ABCD")
# RFC 4733 event codes some gateways put in Signal= for the keys that are not digits
_EVENT_KEYS = {"10": "*", "11": "#", "12": "A", "13": "B", "14": "C", "15": "D"}


def dtmf_relay_digit(content_type: str, body: bytes) -> str | None:
    """The key of an INFO (application/dtmf-relay `Signal=5`, or application/dtmf `5`): one of 0-9 * # A-D,
    or None for anything else (a peer's `Signal=<` must not reach the IVR or the other leg as a key)."""
    ctype = content_type.lower()
    text = body[:1024].decode("latin-1", "replace")
    value = None
    if "dtmf-relay" in ctype:
        for line in text.splitlines():
            k, _, v = line.partition("=")
            if k.strip().lower() == "signal":
                value = v.strip()
                break
    elif ctype.startswith("application/dtmf"):
        value = text.strip()
    if not value:
        return None
    value = _EVENT_KEYS.get(value, value).upper()
    return value if value in DTMF_DIGITS else None
