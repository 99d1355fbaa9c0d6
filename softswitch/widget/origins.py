"""Web origins (RFC 6454) as browsers send them in the Origin header: `scheme://host[:port]`, compared exactly
after normalising (lower case, the scheme's default port left out). Used for every allow-list of pages that may
embed a widget of this node (click-to-dial, chat)."""

from __future__ import annotations

import ipaddress
import re

DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_ORIGIN = 300            # longer than any real origin; longer values are refused unread
_ORIGIN = re.compile(r"([Hh][Tt][Tt][Pp][Ss]?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class OriginError(ValueError):
    pass


def normalize_origin(value: str) -> str:
    """The canonical form of an origin, or OriginError saying what is wrong with it. `null` (sandboxed frames,
    file: pages), paths, user info, queries and wildcards are refused: a widget is embedded by named sites."""
    if not isinstance(value, str) or not value or len(value) > MAX_ORIGIN:
        raise OriginError("expected an origin like https://www.example.com")
    m = _ORIGIN.fullmatch(value.strip())
    if not m:
        raise OriginError(f"expected SCHEME://HOST[:PORT] with SCHEME http or https and nothing after it, "
                          f"got {value[:80]!r}")
    scheme, host, port_text = m.group(1).lower(), m.group(2).lower(), m.group(3)
    if host.startswith("["):
        try:
            host = f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            raise OriginError(f"bad IPv6 address in {value[:80]!r}") from None
    elif not all(_LABEL.fullmatch(label) for label in host.rstrip(".").split(".")):
        raise OriginError(f"bad host name in {value[:80]!r}")
    port = int(port_text) if port_text else DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise OriginError(f"port out of range in {value[:80]!r}")
    return f"{scheme}://{host}" + ("" if port == DEFAULT_PORTS[scheme] else f":{port}")


def origin_or_none(value: str | None) -> str | None:
    """A request's Origin header, normalised; None when absent or malformed (which matches no allow-list)."""
    if value is None:
        return None
    try:
        return normalize_origin(value)
    except OriginError:
        return None


def origin_of_url(url: str) -> str | None:
    """The origin of a page URL (`https://shop.example/contact?x=1` -> `https://shop.example`), or None."""
    if not isinstance(url, str) or len(url) > 4096:
        return None
    m = re.match(r"(https?://[^/?#]*)", url)
    return origin_or_none(m.group(1)) if m else None


class OriginList:
    """An allow-list of origins (normalised once). `allows(header)` takes the raw Origin header."""

    def __init__(self, origins) -> None:
        self.origins = frozenset(normalize_origin(o) for o in origins)

    def allows(self, header: str | None) -> bool:
        o = origin_or_none(header)
        return o is not None and o in self.origins

    def __contains__(self, origin: str) -> bool:
        return origin in self.origins

    def __iter__(self):
        return iter(sorted(self.origins))
