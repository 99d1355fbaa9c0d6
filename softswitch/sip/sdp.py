"""SDP (RFC 4566) for offer/answer (RFC 3264): what the B2BUA needs to anchor audio and relay video."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .errors import SipError

AUDIO_CODECS = {0: "PCMU/8000", 8: "PCMA/8000"}
# Far above what any offer carries (a browser's with many candidates has a few hundred lines; RTP has 128
# payload types): past them a body is refused before the per-line and per-format work starts.
MAX_LINES = 4096
MAX_FORMATS = 256
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


@dataclass(slots=True)        # a call keeps the customer's offer (Call.offer) while it lasts
class Media:
    kind: str                       # audio, video, ...
    port: int
    proto: str
    formats: list[str]
    address: str | None = None      # media-level c=
    rtpmap: dict[str, str] = field(default_factory=dict)
    fmtp: dict[str, str] = field(default_factory=dict)
    direction: str = "sendrecv"
    other: list[str] = field(default_factory=list)   # other a= lines, kept for relays

    def codec(self, fmt: str) -> str:
        return self.rtpmap.get(fmt) or AUDIO_CODECS.get(int(fmt), "") if fmt.isdigit() else ""


@dataclass(slots=True)
class Session:
    origin: str
    address: str | None
    media: list[Media]
    name: str = "-"

    def first(self, kind: str) -> Media | None:
        return next((m for m in self.media if m.kind == kind and m.port), None)

    @property
    def has_video(self) -> bool:
        return self.first("video") is not None

    def endpoint(self, kind: str = "audio") -> tuple[str, int] | None:
        m = self.first(kind)
        if m is None:
            return None
        addr = m.address or self.address
        return (addr, m.port) if addr else None


def parse_sdp(body: bytes) -> Session:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SipError(400, "SDP is not UTF-8") from None
    origin, address, name = "", None, "-"
    media: list[Media] = []
    lines = text.replace("\r\n", "\n").split("\n")
    if len(lines) > MAX_LINES:
        raise SipError(400, f"SDP of more than {MAX_LINES} lines")
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SipError(400, f"bad SDP line {line[:40]!r}")
        kind, value = line[0], line[2:]
        cur = media[-1] if media else None
        if kind == "o":
            origin = value
        elif kind == "s":
            name = value
        elif kind == "c":
            parts = value.split()
            if len(parts) != 3:
                raise SipError(400, f"bad SDP connection {value[:40]!r}")
            addr = parts[2].split("/")[0]
            # connection-field = "c=" nettype SP addrtype SP connection-address. The media engine sends to an
            # IP address (it never resolves names per packet): anything else is refused before a stream opens.
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise SipError(488, f"SDP connection address is not an IP address: {addr[:40]!r}") from None
            if cur is None:
                address = addr
            else:
                cur.address = addr
        elif kind == "m":
            # media-field = %x6d "=" media SP port ["/" integer] SP proto 1*(SP fmt); port = 1*DIGIT (RFC 4566
            # s. 9). ASCII digits only: str.isdigit also takes '²', which int() refuses. A numeric fmt (an RTP
            # payload type, or an SCTP port) has at most 5 digits, so every later int(fmt) is safe and cheap.
            parts = value.split()
            port = parts[1].split("/")[0] if 4 <= len(parts) <= MAX_FORMATS + 3 else ""
            if (not port.isascii() or not port.isdigit() or len(port) > 5 or int(port) > 65535
                    or any(f.isdigit() and (not f.isascii() or len(f) > 5) for f in parts[3:])):
                raise SipError(400, f"bad SDP media line {value[:40]!r}")
            media.append(Media(parts[0], int(port), parts[2], parts[3:]))
        elif kind == "a" and cur is not None:
            name_, _, rest = value.partition(":")
            if name_ in DIRECTIONS:
                cur.direction = name_
            elif name_ == "rtpmap":
                fmt, _, enc = rest.partition(" ")
                cur.rtpmap[fmt] = enc
            elif name_ == "fmtp":
                fmt, _, params = rest.partition(" ")
                cur.fmtp[fmt] = params
            else:
                cur.other.append(value)
    if not media:
        raise SipError(488, "SDP without media")
    # "A session description MUST contain either at least one c= field in each media description or a
    # single c= field at the session level" (RFC 4566 s. 5.7): a stream in use needs somewhere to go.
    if address is None and any(m.port and m.address is None for m in media):
        raise SipError(400, "SDP media without a connection address")
    return Session(origin, address, media, name)


def negotiate_audio(offer: Media, preferred: tuple[str, ...] = ("PCMU", "PCMA")) -> tuple[int, int | None] | None:
    """(G.711 payload type, telephone-event payload type or None) from an audio offer; None if nothing fits."""
    by_name = {}
    event = None
    for fmt in offer.formats:
        name = (offer.rtpmap.get(fmt) or (AUDIO_CODECS.get(int(fmt), "") if fmt.isdigit() else "")).upper()
        if name.startswith("TELEPHONE-EVENT/8000") and fmt.isdigit():
            event = int(fmt)
        for p in preferred:
            if name.startswith(p + "/8000") and fmt.isdigit():
                by_name.setdefault(p, int(fmt))
    for p in preferred:
        if p in by_name:
            return by_name[p], event
    return None


ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


EVENTS = range(0, 17)          # RFC 4733 events we send and receive: DTMF 0-9, *, #, A-D (0-15) and flash (16)


def answer_events(offered: str | None) -> str | None:
    """The telephone-event fmtp of our answer: the events the offer lists that we support (RFC 4733 s. 2.4.1;
    an offer without fmtp means 0-15), as ranges; None when none is left (then no telephone-event)."""
    wanted: set[int] = set()
    for item in (offered if offered is not None else "0-15").split(",", 64)[:64]:
        lo, _, hi = item.strip().partition("-")
        if lo.isdigit() and len(lo) <= 3 and (not hi or (hi.isdigit() and len(hi) <= 3)):
            wanted.update(range(int(lo), min(int(hi or lo), EVENTS[-1]) + 1))
    runs: list[list[int]] = []
    for e in sorted(wanted):
        if runs and runs[-1][1] == e - 1:
            runs[-1][1] = e
        else:
            runs.append([e, e])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in runs) or None


def build_sdp(address: str, session_id: int, version: int, audio: list[tuple[int, int | None, str, int]],
              video: list[Media] | None = None, video_ports: list[int] | None = None,
              events: str = "0-16") -> bytes:
    """audio: [(port, event_pt, direction, pt)]; a port 0 rejects the stream. Video m-lines are echoed with
    our port (relayed, never mixed). `events`: the telephone-event fmtp (an answer: `answer_events`)."""
    ip = "IP6" if ":" in address else "IP4"
    lines = ["v=0", f"o=softswitch {session_id} {version} IN {ip} {address}", "s=softswitch",
             f"c=IN {ip} {address}", "t=0 0"]
    for port, event, direction, pt in audio:
        fmts = [str(pt)] + ([str(event)] if event is not None else [])
        lines.append(f"m=audio {port} RTP/AVP {' '.join(fmts)}")
        lines.append(f"a=rtpmap:{pt} {AUDIO_CODECS.get(pt, 'PCMU/8000')}")
        if event is not None:
            lines += [f"a=rtpmap:{event} telephone-event/8000", f"a=fmtp:{event} {events}"]
        lines += ["a=ptime:20", f"a={direction}"]
    for m, port in zip(video or [], video_ports or []):
        lines.append(f"m=video {port} {m.proto} {' '.join(m.formats)}")
        lines += [f"a=rtpmap:{f} {e}" for f, e in m.rtpmap.items()]
        lines += [f"a=fmtp:{f} {p}" for f, p in m.fmtp.items()]
        lines.append(f"a={m.direction if port else 'inactive'}")
    return ("\r\n".join(lines) + "\r\n").encode()


def offer_sdp(address: str, port: int, session_id: int, version: int = 1, direction: str = "sendrecv",
              video: list[Media] | None = None, video_ports: list[int] | None = None) -> bytes:
    """Our own offer: PCMU and PCMA with telephone-event (to agent phones)."""
    ip = "IP6" if ":" in address else "IP4"
    lines = ["v=0", f"o=softswitch {session_id} {version} IN {ip} {address}", "s=softswitch",
             f"c=IN {ip} {address}", "t=0 0", f"m=audio {port} RTP/AVP 0 8 101",
             "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000",
             "a=fmtp:101 0-16", "a=ptime:20", f"a={direction}"]
    for m, vport in zip(video or [], video_ports or []):
        lines.append(f"m=video {vport} {m.proto} {' '.join(m.formats)}")
        lines += [f"a=rtpmap:{f} {e}" for f, e in m.rtpmap.items()]
        lines += [f"a=fmtp:{f} {p}" for f, p in m.fmtp.items()]
        lines.append("a=sendrecv")
    return ("\r\n".join(lines) + "\r\n").encode()
