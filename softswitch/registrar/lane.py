"""The REGISTER lane: a plain REGISTER datagram handled without the general parser and dispatch.

A registration storm is the heaviest traffic a contact-center registrar sees (every phone registers again
after a restart), and most of its cost was per-message machinery: the general parser and its header objects,
the dispatch checks, the generic answer builder. The lane reads a REGISTER of the shape phones and SIPp send
with one split and a few anchored matches:

  - printable ASCII, CRLF line ends, no folding, no body, at most `MAX_SIZE` octets;
  - only header names it knows (`NAMES`), each single-valued one once;
  - one UDP Via with an RFC 3261 branch (no maddr, no received), a `sip:host[:port]` Request-URI;
  - From and To as `[display] <sip:user@host[:port]>` or a bare `sip:user@host[:port]`, To without parameters;
  - no Record-Route, Path, Require, Proxy-Require, no `Contact: *`, Max-Forwards above 0.

A request without credentials gets its 401 assembled from the raw header lines (as the general path's
stateless challenge: nothing kept). One with credentials becomes a Request built from the same lines and goes
through the endpoint's `answered` handling, i.e. the same filters, retransmission keeping and registrar code as
any REGISTER. Anything else declines before any side effect and the general path answers it: the lane is
faster, never different (tests/unit/registrar/test_register_lane.py compares both paths' answers).
"""

from __future__ import annotations

import re
import time

from ..sip.errors import SipError, reason_phrase
from ..sip.headers import canonical_name
from ..sip.message import Request
from ..sip.transaction import MAGIC
from ..sip.uri import SipURI, parse_uri
from .registrar import to_tag
from ..transport.base import Target

MAX_SIZE = 4096
_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t"
# names (lower case and canonical spelling, compact forms too) -> canonical name; a header outside this list
# sends the request to the general path. Besides what the registrar reads, the ones a REGISTER carries that no
# UAS check looks at (Route: a phone's outbound proxy set to the registrar itself, as baresip sends it).
_LOWER = (
    "via", "v", "from", "f", "to", "t", "call-id", "i", "cseq", "contact", "m", "expires", "max-forwards",
    "authorization", "content-length", "l", "user-agent", "allow", "supported", "k", "accept",
    "accept-encoding", "accept-language", "allow-events", "u", "date", "organization", "content-type", "c",
    "route")
NAMES = {n: canonical_name(n) for n in _LOWER} | {canonical_name(n): canonical_name(n) for n in _LOWER}
_ONCE = frozenset({"Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type",
                   "Expires", "Authorization", "User-Agent"})
_REQUEST_LINE = re.compile(r"REGISTER (sip:[A-Za-z0-9.\-]+(?::[0-9]{1,5})?"
                           r"(?:;[A-Za-z0-9\-_.!~*']+(?:=[A-Za-z0-9\-_.!~*']+)?)*) SIP/2\.0", re.A)
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_VIA = re.compile(r"SIP/2\.0/UDP ([A-Za-z0-9.\-]+)(?::([0-9]{1,5}))?((?:;" + _TOKEN + r"(?:=" + _TOKEN + r")?)*)",
                  re.A)
# [display-name] <sip:user@host[:port]> or a bare sip:user@host[:port] (Linphone's To), then *(;param): a quoted
# display name without escapes, or one character class of token characters and spaces (no nested quantifiers:
# linear on any input). Groups: the user (bracketed, or bare), the header parameters.
_USER_HOST = r"([A-Za-z0-9\-_.!~*'()&=+$,]+)@[A-Za-z0-9.\-]+(?::[0-9]{1,5})?"
_ADDR = re.compile(r'(?:(?:"[\x20\x21\x23-\x5b\x5d-\x7e]*" *|[A-Za-z0-9\-.!%*_+`\'~ ]*)<sip:' + _USER_HOST + ">|sip:"
                   + _USER_HOST + r")((?:;" + _TOKEN + r"(?:=" + _TOKEN + r")?)*)", re.A)
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"         # Call-ID = word [ "@" word ] (RFC 3261 s. 25.1)
_CALL_ID = re.compile(_WORD + "(?:@" + _WORD + ")?", re.A)
_CSEQ = re.compile(r"[0-9]{1,10} REGISTER", re.A)
_DIGITS = re.compile(r"[0-9]{1,10}", re.A)


class RegisterLane:
    def __init__(self, endpoint, registrar) -> None:
        self.endpoint = endpoint
        self.registrar = registrar
        self.clock = time.time                 # the challenge's nonce clock, as the general path's
        self.stats = {"challenged": 0, "passed": 0, "declined": 0}

    def __call__(self, data: bytes, src: Target) -> bool:
        """Handle a datagram that starts with "REGISTER ": True when it is handled, False when the general
        path is to take it (nothing has been done then)."""
        ep = self.endpoint
        if not ep.force_rport or len(data) > MAX_SIZE or (ep.limits and (len(data) > ep.max_message_size
                                                                          or ep.max_vias < 1)):
            return self._decline()
        parsed = read(data)
        if parsed is None:
            return self._decline()
        uri_text, headers, via_at, via_key, user = parsed
        uri = self._uri(uri_text)
        if uri is None:
            return self._decline()
        port = src.port
        stamped = [via_key[5]]
        for name, value in via_key[6]:
            stamped.append(f";rport={port}" if name == "rport" else
                           f";{name}" if value is None else f";{name}={value}")
        if not via_key[4]:
            stamped.append(f";rport={port}")
        stamped.append(f";received={src.host}")
        headers[via_at][1] = "".join(stamped)      # what stamp_via makes of it (RFC 3261 s. 18.2.1, RFC 3581)
        req = Request("REGISTER", uri, headers, b"", uri_text)
        # from here on the request is taken, as by the general dispatch before its handlers
        if not ep.take(req, src):
            return True
        if req.get("Authorization") is None:
            self.stats["challenged"] += 1
            self._challenge(req, headers, user, src)
            return True
        self.stats["passed"] += 1
        ep._answer(self.registrar.serve, req, src, src, ep.loop.time(), key=via_key[:4])
        ep.flush()
        return True

    def _decline(self) -> bool:
        self.stats["declined"] += 1
        return False

    @staticmethod
    def _uri(text: str) -> SipURI | None:
        try:
            uri = parse_uri(text)             # remembered by parse_uri (a tenant has a handful)
        except SipError:
            return None
        return uri if isinstance(uri, SipURI) else None

    def _challenge(self, req: Request, headers: list[list[str]], user: str, src: Target) -> None:
        """The stateless 401 of Registrar.challenge_if_needed, written out from the request's lines."""
        ep, registrar = self.endpoint, self.registrar
        registrar.stats["challenged"] += 1
        now = self.clock()
        out = ["SIP/2.0 401 " + reason_phrase(401)]
        tag = to_tag(req)
        for name, value in headers:
            if name in _COPIED:
                out.append(f"{name}: {value};tag={tag}" if name == "To" else f"{name}: {value}")
        for value in registrar.authn.challenge(user, now):
            out.append("WWW-Authenticate: " + value)
        if ep.user_agent:
            out.append("Server: " + ep.user_agent)
        out.append("Content-Length: 0\r\n\r\n")
        ep._count_status(401)
        ep.counters["tx_stateless"] += 1
        ep._send("\r\n".join(out).encode(), src)


_COPIED = frozenset({"Via", "From", "To", "Call-ID", "CSeq"})


def read(data: bytes):
    """(Request-URI, header lines [[canonical name, value]], index of the Via line, what `_via_key` says of the
    Via, the To user) for a REGISTER of the lane's shape, else None."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or end + 4 != len(data):
        return None                       # no end of headers, or a body
    head = data[:end]
    if head.translate(None, _PRINTABLE) != b"\r\n" * head.count(b"\r\n"):
        return None                       # a control octet, a bare CR or LF, or a non-ASCII octet
    lines = head.decode("ascii").split("\r\n")
    m = _REQUEST_LINE.fullmatch(lines[0])
    if m is None:
        return None
    headers: list[list[str]] = []
    seen: dict[str, str] = {}
    via_at = -1
    contact = False
    names = NAMES
    for line in lines[1:]:
        name, _, value = line.partition(":")
        canon = names.get(name) or names.get(name.lower())
        if canon is None:
            return None                   # unknown or folded header, a space before the colon, no colon
        if canon in seen and canon in _ONCE:
            return None
        value = value.strip(" \t")
        if canon == "Contact":
            if contact or value == "*":
                return None
            contact = True
        elif canon == "Via":
            via_at = len(headers)
        seen[canon] = value
        headers.append([canon, value])
    if via_at < 0 or "From" not in seen or "To" not in seen or "Call-ID" not in seen or "CSeq" not in seen:
        return None
    cseq = seen["CSeq"]
    if _CALL_ID.fullmatch(seen["Call-ID"]) is None or _CSEQ.fullmatch(cseq) is None \
            or int(cseq[:-9]) > 0xFFFFFFFF or _ADDR.fullmatch(seen["From"]) is None:
        return None
    to = _ADDR.fullmatch(seen["To"])
    if to is None or to.group(3):
        return None                       # To parameters (a tag above all) take the general path
    mf = seen.get("Max-Forwards")
    if mf is not None and (_DIGITS.fullmatch(mf) is None or not 0 < int(mf) <= 255):
        return None
    v = seen.get("Expires")
    if v is not None and _DIGITS.fullmatch(v) is None:
        return None
    v = seen.get("Content-Length")
    if v is not None and (_DIGITS.fullmatch(v) is None or int(v) != 0):
        return None
    auth = seen.get("Authorization")
    if auth is not None and auth[:7].lower() != "digest ":
        return None
    key = _via_key(seen["Via"])
    if key is None:
        return None
    return m.group(1), headers, via_at, key, to.group(1) or to.group(2)


_VIA_COMMON = re.compile(r"SIP/2\.0/UDP ([A-Za-z0-9.\-]+)(?::([0-9]{1,5}))?(;rport)?;branch=(z9hG4bK" + _TOKEN[:-1]
                         + r"*)(;rport)?", re.A)


def _via_key(value: str):
    """(branch, host, port, "REGISTER", asked for rport, "SIP/2.0/UDP sent-by", [(param, value or None)])
    of a lane-shaped Via, else None; the first four are its server key (softswitch/sip/transaction.py)."""
    m = _VIA_COMMON.fullmatch(value)
    if m is not None and not (m.group(3) and m.group(5)):
        # what phones and SIPp send: a branch and rport, in either order
        host, port, before, branch, after = m.groups()
        if port is not None and not 0 < int(port) <= 65535:
            return None
        kept = [("branch", branch)]
        if before:
            kept.insert(0, ("rport", None))
        elif after:
            kept.append(("rport", None))
        return branch, host.lower(), int(port) if port else None, "REGISTER", bool(before or after), \
            value[:m.start(3) if before else m.start(4) - 8], kept
    m = _VIA.fullmatch(value)
    if m is None:
        return None
    host, port, params = m.groups()
    if port is not None and not 0 < int(port) <= 65535:
        return None
    branch = None
    rport = False
    names = set()
    kept = []
    for p in params.split(";")[1:]:
        name, eq, v = p.partition("=")
        if name in names or name != name.lower():
            return None                   # a repeated or upper-case parameter: the general path
        names.add(name)
        kept.append((name, v if eq else None))
        if name == "branch":
            branch = v
        elif name == "rport":
            if eq:
                return None
            rport = True
        elif name in ("maddr", "received"):
            return None
    if not branch or not branch.startswith(MAGIC):
        return None
    return branch, host.lower(), int(port) if port else None, "REGISTER", rport, value[:m.start(3)], kept
