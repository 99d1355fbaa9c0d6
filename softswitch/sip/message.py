"""SIP messages (RFC 3261 s. 7): requests, responses, an ordered header list, bodies as bytes.

Header values are text decoded as UTF-8 with surrogateescape, so any octets survive a parse/serialise round trip.
Names are stored in their full canonical spelling (compact forms are expanded on parse).
"""

from __future__ import annotations

from .errors import SipError, reason_phrase
from .headers import (_NAME_CACHE, NameAddr, Via, canonical_name, parse_cseq, parse_contacts, parse_name_addr, parse_via_list,
                      split_commas)
from .uri import URI

ENCODING = "utf-8"
ERRORS = "surrogateescape"

# Headers that may be combined into one comma list (RFC 3261 s. 7.3.1); others are single-valued.
MULTI = frozenset({
    "Via", "Contact", "Route", "Record-Route", "Allow", "Supported", "Require", "Proxy-Require", "Unsupported",
    "Accept", "Accept-Encoding", "Accept-Language", "Allow-Events", "Path", "Service-Route", "Content-Encoding",
    "Content-Language", "In-Reply-To", "Warning", "Call-Info", "Alert-Info", "Error-Info", "Reason",
})


_EMPTY: list = []      # shared "no such header" answer; never mutated


class Message:
    __slots__ = ("_headers", "body", "_cache", "_index")

    def __init__(self, headers: list[list[str]] | None = None, body: bytes = b"") -> None:
        self._headers: list[list[str]] = headers if headers is not None else []
        self.body = body
        self._cache: dict[str, object] = {}
        self._index: dict[str, list[list[str]]] | None = None

    # The header list is the message; `_index` (name -> its lines, in order) is built on the first lookup and
    # dropped on every change made through this class, so lookups cost a dict access, not a scan.
    @property
    def headers(self) -> list[list[str]]:
        self._index = None            # the caller may change the list in place
        return self._headers

    @headers.setter
    def headers(self, value: list[list[str]]) -> None:
        self._headers = value
        self._index = None

    def _lines(self, name: str) -> list[list[str]]:
        index = self._index
        if index is None:
            index = {}
            for h in self._headers:
                lines = index.get(h[0])
                if lines is None:
                    index[h[0]] = [h]
                else:
                    lines.append(h)
            self._index = index
        lines = index.get(name)          # callers nearly always pass the canonical name
        if lines is None:
            lines = index.get(_NAME_CACHE.get(name) or canonical_name(name), _EMPTY)
        return lines

    # --- raw header access -------------------------------------------------------------------------------
    def get(self, name: str) -> str | None:
        lines = self._lines(name)
        return lines[0][1] if lines else None

    def get_all(self, name: str) -> list[str]:
        return [h[1] for h in self._lines(name)]

    def values(self, name: str) -> list[str]:
        """All values of a header, comma lists split, over every line it appears on."""
        out: list[str] = []
        for v in self.get_all(name):
            out.extend(x for x in split_commas(v) if x)
        return out

    def has(self, name: str) -> bool:
        if self._index is None:
            # A message being built (a response before `Server` is added): one scan costs less than an index
            # that the next change drops.
            name = _NAME_CACHE.get(name) or canonical_name(name)
            for h in self._headers:
                if h[0] == name:
                    return True
            return False
        return bool(self._lines(name))

    def set(self, name: str, value: str) -> None:
        """Replace every line of `name` by one line, in the place of the first."""
        name = canonical_name(name)
        self._cache.pop(name, None)
        for idx, (n, _) in enumerate(self.headers):
            if n == name:
                self.headers[idx] = [name, value]
                self.headers[idx + 1:] = [h for h in self.headers[idx + 1:] if h[0] != name]
                return
        self.headers.append([name, value])

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        name = canonical_name(name)
        self._cache.pop(name, None)
        headers = self.headers
        if first:
            for idx, (n, _) in enumerate(headers):
                if n == name:
                    headers.insert(idx, [name, value])
                    return
            headers.insert(0, [name, value])
        else:
            headers.append([name, value])

    def remove(self, name: str) -> None:
        name = canonical_name(name)
        self._cache.pop(name, None)
        self.headers = [h for h in self.headers if h[0] != name]

    # --- parsed views (validated by the parser, cached) ----------------------------------------------------
    @property
    def vias(self) -> list[Via]:
        v = self._cache.get("Via")
        if v is None:
            v = []
            for line in self.get_all("Via"):
                v.extend(parse_via_list(line))
            self._cache["Via"] = v
        return v  # type: ignore[return-value]

    def set_vias(self, vias: list[Via]) -> None:
        self.set("Via", ", ".join(map(str, vias))) if vias else self.remove("Via")
        self._cache["Via"] = vias

    def replace_top_via(self) -> None:
        """Re-serialise only the first Via after its parameters changed (received/rport): the other lines
        stay as they came, and a proxy-style request with many Vias costs no more than one with one."""
        vias = self.vias
        lines = self._lines("Via")
        if lines and not ("," in lines[0][1] and len(vias) > 1):
            lines[0][1] = str(vias[0])        # in place: the index holds this same line
            return
        self.set_vias(vias)                   # several vias on the first line: rebuild them all

    @property
    def top_via(self) -> Via:
        return self.vias[0]

    def _addr(self, name: str) -> NameAddr:
        v = self._cache.get(name)
        if v is None:
            v = parse_name_addr(self.get(name) or "")
            self._cache[name] = v
        return v  # type: ignore[return-value]

    @property
    def from_(self) -> NameAddr:
        return self._addr("From")

    @property
    def to(self) -> NameAddr:
        return self._addr("To")

    def set_addr(self, name: str, addr: NameAddr) -> None:
        self.set(name, str(addr))
        self._cache[canonical_name(name)] = addr

    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        v = self._cache.get("CSeq")
        if v is None:
            v = parse_cseq(self.get("CSeq") or "")
            self._cache["CSeq"] = v
        return v  # type: ignore[return-value]

    @property
    def contacts(self) -> list[NameAddr] | str:
        v = self._cache.get("Contact")
        if isinstance(v, SipError):
            raise v                       # refused once: every later reader gets the same answer at no cost
        if v is None:
            try:
                v = self._contacts()
            except SipError as err:
                self._cache["Contact"] = err
                raise
            self._cache["Contact"] = v
        return v  # type: ignore[return-value]

    def _contacts(self) -> list[NameAddr] | str:
        lines = self.get_all("Contact")
        if len(lines) == 1:
            return parse_contacts(lines[0])
        out: list[NameAddr] = []
        for line in lines:
            c = parse_contacts(line)
            if c == "*":
                raise SipError(400, "Contact: * combined with other contacts")
            out.extend(c)
        return out

    def start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        lines = [self.start_line()]
        lines += [f"{n}: {v}" for n, v in self._headers if n != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        return "\r\n".join(lines).encode(ENCODING, ERRORS) + self.body

    __bytes__ = serialize


class Request(Message):
    __slots__ = ("method", "uri", "uri_text")

    def __init__(self, method: str, uri: URI, headers: list[list[str]] | None = None, body: bytes = b"",
                 uri_text: str | None = None) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri
        self.uri_text = uri_text

    def start_line(self) -> str:
        return f"{self.method} {self.uri_text if self.uri_text is not None else self.uri} SIP/2.0"

    def set_uri(self, uri: URI) -> None:
        self.uri = uri
        self.uri_text = None

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri_text or self.uri} call-id={self.call_id!r}>"


class Response(Message):
    __slots__ = ("status", "reason")

    def __init__(self, status: int, reason: str | None = None, headers: list[list[str]] | None = None,
                 body: bytes = b"") -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason if reason is not None else reason_phrase(status)

    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id!r}>"


def make_response(req: Request, status: int, reason: str | None = None, *, to_tag: str | None = None,
                  headers: list[tuple[str, str]] | tuple = (), body: bytes = b"") -> Response:
    """A response to `req` per RFC 3261 s. 8.2.6.2: Via, From, Call-ID, CSeq copied; To copied with our tag."""
    copied: list[list[str]] = []
    to_done = False
    for n, v in req._headers:
        if n in ("Via", "From", "Call-ID", "CSeq"):
            copied.append([n, v])
        elif n == "To" and not to_done:
            to_done = True
            if to_tag is not None and status != 100 and req.to.tag is None:
                v = f"{v};tag={to_tag}"
            copied.append([n, v])
        elif n == "Record-Route" and 100 < status < 300:
            copied.append([n, v])
    for n, v in headers:
        copied.append([canonical_name(n), v])     # as Message.add would, on a message not built yet
    return Response(status, reason, copied, body)
