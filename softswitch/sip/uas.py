"""Pure rules a UAS applies before any transaction user sees a request (RFC 3261 s. 8.2, 18.2; RFC 3581).

No sockets here: addresses are plain (host, port) tuples handed in by the transport shell.
"""

from __future__ import annotations

import ipaddress

from .errors import SipError
from .headers import parse_tokens
from .message import Request, Response, make_response
from .uri import SipURI


def _same_host(via_host: str, ip: str) -> bool:
    h = via_host[1:-1] if via_host.startswith("[") else via_host
    try:
        return ipaddress.ip_address(h) == ipaddress.ip_address(ip)
    except ValueError:
        return False


def stamp_via(req: Request, src_host: str, src_port: int, force_rport: bool) -> None:
    """RFC 3261 s. 18.2.1: add `received` when sent-by differs from the source; RFC 3581: fill `rport`
    when the client asked for it (or always with force_rport, which NAT'd softphones need)."""
    via = req.top_via
    changed = False
    if force_rport or via.param("rport") is not None:
        via.set_param("rport", str(src_port))
        via.set_param("received", src_host)
        changed = True
    elif not _same_host(via.host, src_host):
        via.set_param("received", src_host)
        changed = True
    if changed:
        req.replace_top_via()


def response_address(req: Request, default_port: int = 5060) -> tuple[str, int]:
    """Where a response to an unreliable request goes (RFC 3261 s. 18.2.2, RFC 3581 s. 4)."""
    via = req.top_via
    maddr = via.param("maddr")
    host = via.param("received") or via.host
    if maddr:
        host = maddr
    rport = via.param("rport")
    if rport and rport.isascii() and rport.isdigit() and len(rport) <= 5 and 0 < int(rport) <= 65535:
        return _bare(host), int(rport)
    return _bare(host), via.port or default_port


def _bare(host: str) -> str:
    return host[1:-1] if host.startswith("[") else host


def check_request(req: Request, *, supported: frozenset[str], allowed: frozenset[str]) -> Response | None:
    """The generic UAS checks of RFC 3261 s. 8.2.1-8.2.2 that need no dialog or user: scheme (416), method
    (405/501), Max-Forwards (483), Require (420). Returns the response to send, or None to go on."""
    if req.method == "ACK":
        return None
    if not isinstance(req.uri, SipURI):
        return make_response(req, 416)
    if req.method not in allowed:
        status = 405 if req.method in KNOWN_METHODS else 501
        return make_response(req, status, headers=[("Allow", ", ".join(sorted(allowed)))])
    mf = req.get("Max-Forwards")
    if mf is not None and int(mf.strip(" \t")) == 0 and req.method != "OPTIONS":
        return make_response(req, 483)
    if req.method in SDP_METHODS and req.body:
        ctype = (req.get("Content-Type") or "").split(";")[0].strip(" \t").lower()
        if ctype not in ACCEPTED_BODIES:
            return make_response(req, 415, headers=[("Accept", ", ".join(sorted(ACCEPTED_BODIES)))])
    if req.method != "CANCEL":
        required = []
        for line in req.get_all("Require"):
            required.extend(parse_tokens(line))
        unknown = [t for t in required if t.lower() not in supported]
        if unknown:
            return make_response(req, 420, headers=[("Unsupported", ", ".join(unknown))])
    return None


# RFC 3261 s. 8.2.3: a body of a type the UAS does not understand gets 415 with Accept.
SDP_METHODS = frozenset({"INVITE", "UPDATE", "PRACK"})
ACCEPTED_BODIES = frozenset({"application/sdp"})

KNOWN_METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
                           "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"})


def error_answer(req: Request, err: SipError) -> Response:
    """The answer to a parsed request that a transaction user refused with a SipError; the Warning says why."""
    resp = make_response(req, err.status, err.reason, to_tag=None, headers=list(err.headers))
    resp.add("Warning", f'399 softswitch "{_warn_text(err.detail)}"')
    return resp


def error_response(err: SipError) -> Response | None:
    """A stateless answer to a request that failed to parse, if enough of it survived to address one
    (RFC 3261 s. 8.2.6.2 needs Via, From, To, Call-ID and CSeq copied; without a Via nobody can be answered)."""
    req: Request | None = getattr(err, "partial", None)
    if req is None or req.method == "ACK":
        return None
    if not req.get("Via"):
        return None
    headers: list[list[str]] = []
    for n, v in req.headers:
        if n in ("Via", "From", "To", "Call-ID", "CSeq"):
            headers.append([n, v])
    resp = Response(err.status, err.reason, headers)
    for n, v in err.headers:
        resp.add(n, v)
    resp.add("Warning", f'399 softswitch "{_warn_text(err.detail)}"')
    return resp


def _warn_text(detail: str) -> str:
    return "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "?" for c in detail[:120])
