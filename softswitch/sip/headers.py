"""Header value grammar: name-addr / addr-spec, Via, CSeq, generic parameters, comma lists (RFC 3261 s. 20, 25).

Values arrive unfolded (the parser replaces folding with a single space), so LWS here is just [ \\t]*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import SipError
from .uri import SipURI, URI, parse_uri

# Header names: full canonical spelling by lower-case name, and the compact forms (RFC 3261 s. 7.3.3, 20).
_CANONICAL = {
    n.lower(): n for n in (
        "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
        "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition",
        "Content-Encoding", "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info",
        "Event", "Expires", "From", "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version",
        "Organization", "P-Asserted-Identity", "Path", "Priority", "Proxy-Authenticate", "Proxy-Authorization",
        "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To", "Referred-By", "Reject-Contact",
        "Reply-To", "Request-Disposition", "Require", "Retry-After", "Route", "RSeq", "Server",
        "Session-Expires", "Subject", "Subscription-State", "Supported", "Timestamp", "To", "Unsupported",
        "User-Agent", "Via", "Warning", "WWW-Authenticate", "Identity", "Identity-Info", "Path", "Service-Route",
    )
}
COMPACT = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact", "k": "Supported",
    "l": "Content-Length", "m": "Contact", "n": "Identity-Info", "o": "Event", "r": "Refer-To", "s": "Subject",
    "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires", "y": "Identity",
}


_NAME_CACHE: dict[str, str] = {}


def canonical_name(name: str) -> str:
    full = _NAME_CACHE.get(name)
    if full is not None:
        return full
    low = name.lower()
    full = COMPACT.get(low) if len(low) == 1 else None
    if full is None:
        full = _CANONICAL.get(low, name)
    if len(_NAME_CACHE) < 4096:  # bounded: header names come from the wire
        _NAME_CACHE[name] = full
    return full


TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(TOKEN + r"\Z")
_LWS = " \t"


def is_token(text: str) -> bool:
    return bool(_TOKEN_RE.match(text))


# What a comma inside does not split: a quoted string (qdtext runs and quoted-pairs, then the closing quote; an
# unterminated one, or one ending in a lone backslash, runs to the end) and <...> (quotes inside count too; an
# unclosed one runs to the end). An element is any run of those and of plain text without a comma; possessive,
# so it stops only at a comma or the end and every match starts where the last one ended: findall never
# searches, and the whole split is one pass in re.
_QUOTED = r'"[^"\\]*+(?:\\[\s\S][^"\\]*+)*+(?:\\\Z)?"?'
_ELEMENT = re.compile(r'((?:[^,"<]++|' + _QUOTED + r'|<(?:[^">]++|' + _QUOTED + r')*+>?)*+)(?:,|\Z)')


# No header the node reads has anywhere near this many list elements (Via is refused past server.sip.security
# max_vias, 100 at most); past it the value is refused before a list is built, so every caller's loop is short.
MAX_ELEMENTS = 1000


def split_commas(value: str) -> list[str]:
    """Split a comma list, ignoring commas inside quoted strings and <...>. Elements are stripped."""
    if "," not in value:
        return [value.strip()]
    plain = '"' not in value and "<" not in value
    if value.count(",") >= MAX_ELEMENTS:
        # Maybe too many: count the real ones (commas may be quoted) without building them.
        if plain or sum(1 for _ in zip(range(MAX_ELEMENTS + 2), _ELEMENT.finditer(value))) > MAX_ELEMENTS + 1:
            raise SipError(400, f"more than {MAX_ELEMENTS} list elements in {value[:40]!r}")
    if plain:
        return list(map(str.strip, value.split(",")))
    items = _ELEMENT.findall(value)
    # findall also makes an empty match at the end after an element that the end (not a comma) closed; then
    # the elements and their commas add up to one more than the text.
    if sum(map(len, items)) + len(items) - 2 == len(value):
        items.pop()
    return list(map(str.strip, items))


# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE; quoted-pair = "\\" (%x00-09 / %x0B-0C / %x0E-7F)
# (any character is taken after the backslash, as before). The content: plain runs and pairs, possessive.
_QDTEXT = re.compile(r'[^"\\]*+(?:\\[\s\S][^"\\]*+)*+')
_PAIR = re.compile(r"\\([\s\S])")       # split() keeps the escaped character: "".join unescapes in C


def read_quoted(text: str, i: int) -> tuple[str, int]:
    """text[i] is '"'; returns (unescaped content, index after the closing quote)."""
    end = _QDTEXT.match(text, i + 1).end()
    if end >= len(text) or text[end] != '"':
        raise SipError(400, "unbalanced quotes")       # unterminated, or a lone backslash at the end
    body = text[i + 1:end]
    return ("".join(_PAIR.split(body)) if "\\" in body else body), end + 1


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_PARAM_VALUE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+")


# One generic-param with its leading SEMI: token [ EQUAL ( token / host / quoted-string ) ]
# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE, as an unrolled loop (plain runs, then one
# quoted-pair and a plain run again): the same language as (?:[^"\\]|\\.)*, with no alternation per character.
_PARAM_ITEM = re.compile(r'[ \t]*;[ \t]*(' + TOKEN + r')(?:[ \t]*=[ \t]*("[^"\\]*(?:\\.[^"\\]*)*"|[A-Za-z0-9\-.!%*_+`\'~:\[\]]+))?')
# The longest run of whole items from a position. Atomic, so each item is the match re gives at its start
# (what a loop of `match` calls would take) and a failure never backtracks into the items before it.
_PARAM_RUN = re.compile(r"(?>" + _PARAM_ITEM.pattern + r")*")


# The usual parameters (;tag=..., ;branch=...;rport): no whitespace, no quoted values. Such text is one run of
# items as _PARAM_RUN reads it, and splitting it at ';' and '=' (neither occurs in a token or a value) gives
# the same items, without the two passes of the general case.
_PLAIN_PARAMS = re.compile(r"(?:;" + TOKEN + r"(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]+)?)+")


def parse_params(text: str, i: int = 0) -> list[tuple[str, str | None]]:
    """*( SEMI generic-param ): generic-param = token [ EQUAL gen-value ]; gen-value = token / host / quoted."""
    if i >= len(text):
        return []
    if _PLAIN_PARAMS.fullmatch(text, i):
        out: list[tuple[str, str | None]] = []
        for item in text[i + 1:].split(";"):
            name, eq, value = item.partition("=")
            out.append((name, value if eq else None))
        return out
    end = _PARAM_RUN.match(text, i).end()
    if end < len(text) and text[end:].strip(_LWS):
        rest = text[end:]
        if '"' in rest and rest.count('"') % 2:
            raise SipError(400, "unbalanced quotes")
        raise SipError(400, f"bad parameters {text[:80]!r}")
    if end == i:
        return []
    # findall over exactly that run finds the same items (each starts where the previous ended); a value is
    # never empty when present, so "" means absent.
    return [(k, v or None) for k, v in _PARAM_ITEM.findall(text, i, end)]


def params_str(params: list[tuple[str, str | None]]) -> str:
    return "".join([f";{k}" if v is None else f";{k}={v}" for k, v in params])


def get_param(params: list[tuple[str, str | None]], name: str) -> str | None:
    name = name.lower()
    for k, v in params:
        if k == name or k.lower() == name:      # parameters are nearly always lower case already
            return "" if v is None else v
    return None


def set_param(params: list[tuple[str, str | None]], name: str, value: str | None) -> None:
    lname = name.lower()
    for idx, (k, _) in enumerate(params):
        if k.lower() == lname:
            params[idx] = (k, value)
            return
    params.append((name, value))


@dataclass(eq=False)
class NameAddr:
    """From, To, Contact, Route, Record-Route values: [display-name] <URI> *(;param)."""
    uri: URI
    display: str | None = None
    params: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def tag(self) -> str | None:
        return get_param(self.params, "tag")

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def set_param(self, name: str, value: str | None) -> None:
        set_param(self.params, name, value)

    def __str__(self) -> str:
        disp = (quote(self.display) + " ") if self.display else ""
        return f"{disp}<{self.uri}>{params_str(self.params)}"


# display-name = *(token LWS) / quoted-string. Unquoted, that is any run of token characters and LWS: one
# character class says so, where the literal `(?:token LWS)*` nests two quantifiers over the same characters and
# backtracks exponentially on a run that ends in a bad byte.
_DISPLAY_TOKENS = re.compile(r"[A-Za-z0-9\-.!%*_+`'~ \t]*\Z")


def parse_name_addr(value: str) -> NameAddr:
    text = value.strip(_LWS)
    if not text:
        raise SipError(400, "empty address")
    display = None
    if text[0] == "<":
        lt = 0                        # the usual <URI>;params: no display name to read
    elif text[0] == '"':
        display, i = read_quoted(text, 0)
        lt = text.find("<", i)
        if lt < 0 or text[i:lt].strip(_LWS):
            raise SipError(400, f"expected <URI> after display name in {value[:80]!r}")
    else:
        lt = text.find("<")
        if lt >= 0:
            before = text[:lt]
            if not _DISPLAY_TOKENS.match(before):
                raise SipError(400, f"bad display name in {value[:80]!r}")
            display = " ".join(before.split()) or None
    if lt >= 0:
        gt = text.find(">", lt)
        if gt < 0:
            raise SipError(400, f"unterminated <URI> in {value[:80]!r}")
        # name-addr = [ display-name ] LAQUOT addr-spec RAQUOT; LAQUOT = SWS "<", RAQUOT = ">" SWS: no
        # whitespace inside the brackets (RFC 4475 s. 3.1.2.14 wants a 400 for it).
        uri = parse_uri(text[lt + 1:gt])
        params = parse_params(text, gt + 1)
    else:
        # addr-spec form: the URI ends at the first ';' (a URI with ';' must be in <> by RFC 3261 s. 20).
        semi = text.find(";")
        raw = text if semi < 0 else text[:semi]
        raw = raw.strip(_LWS)
        if any(c in raw for c in " \t,?\"<>"):
            raise SipError(400, f"bad address {value[:80]!r}")
        uri = parse_uri(raw)
        params = parse_params(text, semi) if semi >= 0 else []
    return NameAddr(uri, display, params)


@dataclass(eq=False)
class Via:
    transport: str
    host: str
    port: int | None = None
    params: list[tuple[str, str | None]] = field(default_factory=list)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return get_param(self.params, "branch")

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def set_param(self, name: str, value: str | None) -> None:
        set_param(self.params, name, value)

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{params_str(self.params)}"


_VIA_RE = re.compile(
    r"[ \t]*(" + TOKEN + r")[ \t]*/[ \t]*(" + TOKEN + r")[ \t]*/[ \t]*(" + TOKEN + r")[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_\-.]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?"
)


def parse_via(value: str) -> Via:
    m = _VIA_RE.match(value)
    if not m:
        raise SipError(400, f"bad Via {value[:80]!r}")
    name, version, transport, host, port = m.groups()
    if port is not None and int(port) > 65535:
        raise SipError(400, f"bad Via port {value[:80]!r}")
    params = parse_params(value, m.end())
    return Via(transport.upper(), host, int(port) if port else None, params, f"{name.upper()}/{version}")


def parse_via_list(value: str) -> list[Via]:
    parts = split_commas(value)
    if "" in parts:
        raise SipError(400, f"empty Via element in {value[:80]!r}")
    return [parse_via(p) for p in parts]


_CSEQ_RE = re.compile(r"[ \t]*([0-9]{1,10})[ \t]+(" + TOKEN + r")[ \t]*\Z")


def parse_cseq(value: str) -> tuple[int, str]:
    m = _CSEQ_RE.match(value)
    if not m:
        raise SipError(400, f"bad CSeq {value[:80]!r}")
    num = int(m.group(1))
    if num > 0xFFFFFFFF:
        raise SipError(400, "CSeq number larger than 2**32-1")
    return num, m.group(2)


def parse_contacts(value: str) -> list[NameAddr] | str:
    """Contact values; returns "*" for the wildcard (RFC 3261 s. 10.2.2)."""
    if value.strip(_LWS) == "*":
        return "*"
    parts = split_commas(value)
    if "" in parts:
        raise SipError(400, f"empty Contact element in {value[:80]!r}")
    return [parse_name_addr(p) for p in parts]


def parse_tokens(value: str) -> list[str]:
    """Comma list of tokens (Require, Supported, Allow ...)."""
    out = []
    for part in split_commas(value):
        if not part:
            continue
        if not is_token(part):
            raise SipError(400, f"bad token {part[:40]!r}")
        out.append(part)
    return out


def parse_uint(value: str, what: str, limit: int = 0xFFFFFFFF) -> int:
    v = value.strip(_LWS)
    if not v.isdigit() or not v.isascii() or len(v) > 10 or int(v) > limit:
        raise SipError(400, f"bad {what} {value[:40]!r}")
    return int(v)


def parse_delta_params(value: str, what: str) -> tuple[int, list[tuple[str, str | None]]]:
    """delta-seconds *( SEMI generic-param ), as in Session-Expires and Min-SE (RFC 4028 s. 4):
    Session-Expires = ( "Session-Expires" / "x" ) HCOLON delta-seconds *( SEMI se-params )
    Min-SE = "Min-SE" HCOLON delta-seconds *( SEMI generic-param ); delta-seconds = 1*DIGIT"""
    semi = value.find(";")
    head = value if semi < 0 else value[:semi]
    return parse_uint(head, what), (parse_params(value, semi) if semi >= 0 else [])


def sip_uri_of(addr: NameAddr) -> SipURI:
    if not isinstance(addr.uri, SipURI):
        raise SipError(416, f"unsupported URI scheme {addr.uri.scheme!r}")
    return addr.uri
