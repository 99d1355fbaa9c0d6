"""SIP, SIPS and other URIs (RFC 3261 section 19.1, 25.1; IPv6 references per RFC 5118).

Values keep their escaped form so a URI serialises exactly as it arrived; `unescape` gives the comparison form.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from .errors import SipError


def _escaped_run(chars: str, *, empty: bool) -> re.Pattern:
    """`*( [chars] / escaped )` (or `1*` when not `empty`) as an unrolled loop: re scans runs of plain
    characters instead of trying an alternation at every one (same language, half the time)."""
    plain = f"[{chars}]*"
    return re.compile(("" if empty else r"(?=[\s\S])") + plain + r"(?:%[0-9A-Fa-f]{2}" + plain + r")*\Z")


# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
# user = 1*( unreserved / escaped / user-unreserved ); user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
_USER = _escaped_run(r"A-Za-z0-9\-_.!~*'()&=+$,;?/", empty=False)
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD = _escaped_run(r"A-Za-z0-9\-_.!~*'()&=+$,", empty=True)
# hostname = *( domainlabel "." ) toplabel [ "." ]; IPv4 is a special case of it; "_" accepted as liberal.
_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_\-.]*[A-Za-z0-9_.])?\Z")
_IPV6REF = re.compile(r"\[[0-9A-Fa-f:.]+\]\Z")
# paramchar = param-unreserved / unreserved / escaped; param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"
_PARAMCHARS = _escaped_run(r"A-Za-z0-9\-_.!~*'()\[\]/:&+$", empty=False)
# headers = header *( "&" header ); header = hname "=" hvalue; hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
_HEADERS = _escaped_run(r"A-Za-z0-9\-_.!~*'()\[\]/?:+$=&", empty=True)
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def unescape(text: str) -> str:
    """%HH -> the octet, once (no recursive unescaping: `%2541` is `%41`, not `A`). Never truncates at %00."""
    if "%" not in text:
        return text
    raw = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    # Escapes name octets; rebuild UTF-8 sequences that were escaped byte by byte.
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


_USER_UNRESERVED = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]")


def escape_user(text: str) -> str:
    out = []
    for ch in text:
        if _USER_UNRESERVED.match(ch):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


class URI:
    scheme: str

    def is_sip(self) -> bool:
        return False


@dataclass(eq=False)
class AbsoluteURI(URI):
    """A URI of a scheme we do not route on (kept opaque; the UAS answers 416 where it matters)."""
    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"


@dataclass(eq=False)
class SipURI(URI):
    scheme: str = "sip"
    user: str | None = None          # escaped form
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: list[tuple[str, str | None]] = field(default_factory=list)
    headers: str | None = None       # raw text after "?"

    def is_sip(self) -> bool:
        return True

    def param(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.params:
            if k.lower() == name:
                return "" if v is None else v
        return None

    def has_param(self, name: str) -> bool:
        name = name.lower()
        return any(k.lower() == name for k, _ in self.params)

    def set_param(self, name: str, value: str | None) -> None:
        lname = name.lower()
        self.params = [(k, v) for k, v in self.params if k.lower() != lname]
        self.params.append((name, value))

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else unescape(self.user)

    @property
    def host_key(self) -> str:
        """Host in comparison form: case-folded, IPv6 normalised (RFC 5118 section 4.2)."""
        return normalise_host(self.host)

    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def aor(self) -> str:
        """Address-of-record key (RFC 3261 section 10.3 step 5): scheme, user and host, no parameters."""
        user = self.user_unescaped
        scheme = self.scheme.lower()
        hp = self.host_key if self.port is None else f"{self.host_key}:{self.port}"
        return f"{scheme}:{user}@{hp}" if user is not None else f"{scheme}:{hp}"

    def copy(self) -> "SipURI":
        return SipURI(self.scheme, self.user, self.password, self.host, self.port, list(self.params), self.headers)

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":" + self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        for k, v in self.params:
            parts.append(f";{k}" if v is None else f";{k}={v}")
        if self.headers is not None:
            parts.append("?" + self.headers)
        return "".join(parts)


def normalise_host(host: str) -> str:
    if host.startswith("["):
        try:
            return "[" + ipaddress.IPv6Address(host[1:-1]).compressed + "]"
        except ValueError:
            return host.lower()
    return host.lower()


_CACHE: dict[str, tuple] = {}
_CACHE_MAX = 16384         # at least; a node sizes it for its tenant (size_cache)
_CACHE_TEXT_MAX = 256      # longer URIs are rare; caching them would let a peer fill memory


def size_cache(entries: int) -> None:
    """Room for `entries` URIs (at least the default). Each softphone brings two (its address of record,
    its contact) and phones cycle over the tenant: a cache smaller than that is emptied again and again by
    one round of registrations and hardly ever hits, so a big tenant paid the full parse for most URIs."""
    global _CACHE_MAX
    _CACHE_MAX = max(16384, entries)


def parse_uri(text: str) -> URI:
    """Parse any URI; SIP/SIPS strictly, other schemes kept opaque. Raises SipError(400) on bad syntax.

    A phone's URIs repeat (R-URI, To, Contact of a challenge and its answer, every re-registration), so good
    SIP URIs are remembered (as field tuples) and handed out as new objects (URIs are mutable)."""
    hit = _CACHE.get(text)
    if hit is not None:
        scheme, user, password, host, port, params, headers = hit
        return SipURI(scheme, user, password, host, port, list(params), headers)
    uri = _parse_uri(text)
    if isinstance(uri, SipURI) and len(text) <= _CACHE_TEXT_MAX:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[text] = (uri.scheme, uri.user, uri.password, uri.host, uri.port, tuple(uri.params), uri.headers)
    return uri


def _parse_uri(text: str) -> URI:
    scheme, sep, rest = text.partition(":")
    if not sep or (scheme != "sip" and not _SCHEME.match(scheme)):
        raise SipError(400, f"bad URI {text[:80]!r}")
    lscheme = scheme.lower()
    if lscheme not in ("sip", "sips"):
        if not rest or any(c in rest for c in " \t\r\n<>\""):
            raise SipError(400, f"bad URI {text[:80]!r}")
        return AbsoluteURI(scheme, rest)
    return _parse_sip(lscheme, rest, text)


def parse_sip_uri(text: str) -> SipURI:
    uri = parse_uri(text)
    if not isinstance(uri, SipURI):
        raise SipError(416, f"unsupported URI scheme {uri.scheme!r}")
    return uri


def _parse_sip(scheme: str, rest: str, text: str) -> SipURI:
    user = password = None
    at = rest.rfind("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1:]
        user, colon, pw = userinfo.partition(":")
        if not _USER.match(user):
            raise SipError(400, f"bad user part in {text[:80]!r}")
        if colon:
            if not _PASSWORD.match(pw):
                raise SipError(400, f"bad password in {text[:80]!r}")
            password = pw
    headers = None
    q = rest.find("?")
    if q >= 0:
        rest, headers = rest[:q], rest[q + 1:]
        if not _HEADERS.match(headers):
            raise SipError(400, f"bad URI headers in {text[:80]!r}")
    hostport, *rawparams = rest.split(";")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SipError(400, f"bad IPv6 reference in {text[:80]!r}")
        host, portpart = hostport[:end + 1], hostport[end + 1:]
        if not _IPV6REF.match(host):
            raise SipError(400, f"bad IPv6 reference in {text[:80]!r}")
        if portpart and not portpart.startswith(":"):
            raise SipError(400, f"bad host in {text[:80]!r}")
        portpart = portpart[1:] if portpart else None
    else:
        host, colon, portpart = hostport.partition(":")
        if not colon:
            portpart = None
        if not _HOSTNAME.match(host):
            raise SipError(400, f"bad host in {text[:80]!r}")
    port = None
    if portpart is not None:
        # port = 1*DIGIT: ASCII only (str.isdigit also takes '²', which int() refuses)
        if not portpart.isascii() or not portpart.isdigit() or len(portpart) > 5 or int(portpart) > 65535:
            raise SipError(400, f"bad port in {text[:80]!r}")
        port = int(portpart)
    params: list[tuple[str, str | None]] = []
    for raw in rawparams:
        name, eq, value = raw.partition("=")
        if not name or not _PARAMCHARS.match(name) or (eq and not _PARAMCHARS.match(value)):
            raise SipError(400, f"bad URI parameter {raw[:40]!r} in {text[:80]!r}")
        params.append((name, value if eq else None))
    return SipURI(scheme, user, password, host, port, params, headers)
