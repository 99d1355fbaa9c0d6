"""bytes -> Request | Response (RFC 3261 s. 7, 18.3, 25).

`parse_message` either returns a message whose mandatory headers are present and well formed, or raises
SipError with the status to answer. When the start line and header block could be split, the error carries
`partial` (a Request with the raw headers) so the caller can answer statelessly with Via/From/To/Call-ID/CSeq
copied, as RFC 3261 s. 8.2.6.2 asks.
"""

from __future__ import annotations

import re

from .errors import SipError
from .headers import TOKEN, canonical_name, parse_cseq, parse_name_addr, parse_via_list
from .message import ENCODING, ERRORS, Message, Request, Response
from .uri import AbsoluteURI, parse_uri

MAX_HEADERS = 256
_METHOD_RE = re.compile(TOKEN + r"\Z")
# SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT  (case-insensitive)
_VERSION_RE = re.compile(r"[Ss][Ii][Pp]/([0-9]+)\.([0-9]+)\Z")
_NAME_RE = re.compile(TOKEN + r"\Z")
_FOLD_RE = re.compile(r"\r?\n[ \t]+")
_LINE_RE = re.compile(r"\r?\n")
# Call-ID = word [ "@" word ]; word chars (RFC 3261 s. 25.1)
_CALLID_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+)?\Z")
_KNOWN_NAMES: dict[str, str] = {}
_METHODS_SEEN: set[str] = set()     # method tokens already matched against the grammar
_SINGLE = ("Call-ID", "From", "To", "CSeq", "Max-Forwards", "Content-Length", "Content-Type", "Expires")
_MANDATORY = ("Call-ID", "From", "To", "CSeq", "Via")


def split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """Split at the empty line ending the header block. None if there is none yet."""
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], data[end + 4:]
    end = data.find(b"\n\n")
    if end >= 0:
        return data[:end], data[end + 2:]
    return None


def parse_content_length(value: str) -> int:
    v = value.strip(" \t")
    if not v.isdigit() or not v.isascii() or len(v) > 9:
        raise SipError(400, f"bad Content-Length {value[:40]!r}", fatal_stream=True)
    return int(v)


def parse_message(data: bytes, *, datagram: bool = True, max_headers: int = MAX_HEADERS) -> Request | Response:
    """Parse one message. For datagrams the body is framed by Content-Length within the datagram (octets past
    it are ignored, fewer is a 400); stream framers pass exactly one message."""
    data = data.lstrip(b"\r\n")  # empty lines before the start line are ignored (s. 7.5)
    parts = split_head(data)
    if parts is None:
        raise SipError(400, "no empty line after headers")
    head_b, body = parts
    head = head_b.decode(ENCODING, ERRORS)
    if "\n " in head or "\n\t" in head:
        head = _FOLD_RE.sub(" ", head)
    lines = head.split("\r\n")
    if head.count("\n") != len(lines) - 1:    # some line ends in a bare LF
        lines = _LINE_RE.split(head)
    start_error: SipError | None = None
    try:
        msg = _start_line(lines[0])
    except SipError as err:
        # Keep reading the headers: the answer (505, 400 ...) copies Via, From, To, Call-ID and CSeq.
        msg = getattr(err, "partial", None)
        if msg is None:
            raise
        start_error = err
    if len(lines) - 1 > max_headers:
        raise SipError(400, "too many header fields")
    headers = msg.headers
    # The name -> lines index is built in the same pass, so no lookup ever scans the header list.
    index: dict[str, list[list[str]]] = {}
    known = _KNOWN_NAMES
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        canon = known.get(name) if colon else None
        if canon is None:
            name = name.rstrip(" \t")
            if not colon or not _NAME_RE.match(name):
                err = SipError(400, f"bad header line {line[:60]!r}", fatal_stream=not datagram)
                if isinstance(msg, Request):
                    err.partial = msg  # type: ignore[attr-defined]  # answerable if a Via came before
                raise err
            canon = canonical_name(name)
            if len(known) < 4096:  # names seen on the wire, already validated; bounded
                known[name] = canon
        h = [canon, value.strip(" \t")]
        headers.append(h)
        same = index.get(canon)
        if same is None:
            index[canon] = [h]
        else:
            same.append(h)
    msg._index = index
    if start_error is not None:
        raise start_error
    try:
        _validate(msg, index)
        cl_text = msg.get("Content-Length")
        if cl_text is None:
            if not datagram:
                body = b""
        else:
            cl = parse_content_length(cl_text)
            if cl > len(body):
                raise SipError(400, "body shorter than Content-Length")
            body = body[:cl]
    except SipError as err:
        if isinstance(msg, Request):
            err.partial = msg  # type: ignore[attr-defined]
        raise
    msg.body = body
    return msg


def _start_line(line: str) -> Message:
    if line[:4].upper() == "SIP/" and (line[:4] in ("SIP/", "sip/") or _VERSION_RE.match(line.split(" ", 1)[0])):
        parts = line.split(" ", 2)
        if len(parts) < 3 or not _VERSION_RE.match(parts[0]):
            raise SipError(400, f"bad status line {line[:60]!r}")
        _check_version(parts[0])
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or not code.isascii() or not 100 <= int(code) <= 699:
            raise SipError(400, f"bad status code {code[:10]!r}")
        return Response(int(code), parts[2])
    # Request-Line = Method SP Request-URI SP SIP-Version CRLF: exactly two single spaces. Whitespace inside
    # the URI, doubled or trailing spaces (RFC 4475 s. 3.1.2.8-10) are a 400, answered like any other bad
    # request once its headers are read.
    parts = line.split(" ")
    if len(parts) != 3:
        err = SipError(400, f"bad request line {line[:60]!r}")
        if _METHOD_RE.match(parts[0]) and "SIP/" in line:
            err.partial = Request(parts[0], AbsoluteURI("invalid", ""), [], b"", "")  # type: ignore[attr-defined]
        raise err
    method, uri_text, version = parts
    if method not in _METHODS_SEEN:
        if not _METHOD_RE.match(method):
            raise SipError(400, f"bad method {method[:40]!r}")
        if len(_METHODS_SEEN) < 256:    # bounded: methods come from the wire
            _METHODS_SEEN.add(method)
    if version != "SIP/2.0" and not _VERSION_RE.match(version):
        raise SipError(400, f"bad SIP version {version[:20]!r}")
    try:
        if version != "SIP/2.0":
            _check_version(version)
        uri = parse_uri(uri_text)
    except SipError as err:
        err.partial = Request(method, AbsoluteURI("invalid", ""), [], b"", uri_text)  # type: ignore[attr-defined]
        raise
    return Request(method, uri, [], b"", uri_text)


def _check_version(version: str) -> None:
    m = _VERSION_RE.match(version)
    if not m or (_number(m.group(1)), _number(m.group(2))) != (2, 0):
        raise SipError(505, f"version {version[:20]!r} not supported")


def _number(digits: str) -> int:
    """A version number, -1 when it has more than nine significant digits: int() refuses a string of over
    4,300 digits (a ValueError out of the parser), and no such version is 2.0 anyway."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= 9 else -1


def _validate(msg: Message, index: dict[str, list[list[str]]]) -> None:
    """Mandatory headers (s. 8.1.1): To, From, CSeq, Call-ID, Max-Forwards (requests), Via; each once."""
    for n in _MANDATORY:
        if n not in index:
            raise SipError(400, f"missing {n}")
    if len(index) < len(msg._headers):  # some name repeats: is it one that must not?
        for n in _SINGLE:
            if len(index.get(n, ())) > 1:
                raise SipError(400, f"more than one {n}")
    call_id = index["Call-ID"][0][1]
    if not _CALLID_RE.match(call_id):
        raise SipError(400, "bad Call-ID")
    cache = msg._cache
    cseq = parse_cseq(index["CSeq"][0][1])
    cache["CSeq"] = cseq
    cache["From"] = parse_name_addr(index["From"][0][1])
    cache["To"] = parse_name_addr(index["To"][0][1])
    vias = []
    for h in index["Via"]:
        vias.extend(parse_via_list(h[1]))
    cache["Via"] = vias
    if isinstance(msg, Request):
        if cseq[1] != msg.method:
            raise SipError(400, "CSeq method does not match the request method")
        mf = msg.get("Max-Forwards")
        if mf is not None:
            v = mf.strip(" \t")
            if not v.isdigit() or not v.isascii() or len(v) > 5 or int(v) > 255:
                raise SipError(400, f"bad Max-Forwards {mf[:20]!r}")
