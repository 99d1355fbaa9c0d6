"""A trunk's INVITE at call control's door (the one hook call control calls): identified by source address, or
(a trunk with no addresses) by the username of its digest credentials; challenged with the trunk's own
credentials when it has inbound_auth; its SDP offer cut to the trunk's codecs (488 when none is left); routed by
the trunk's rules (called number source, number plan, reach), and handed on with the Request-URI set to the
number routed and the From showing the caller's number (P-Asserted-Identity's from a trunk trusted by address or
proven by digest), so agents, CDRs and the wallboard show it. A call to an agent's own number rings that agent
(`svc.ring_agent`). Requests from any other address are left as they are. Pure apart from the shell's `svc`
(index, settings, endpoint to answer on): `now` and the tag maker come in."""

from __future__ import annotations

import hashlib
from typing import Callable

from ..sip.digest import AuthParseError, parse_authorization
from ..sip.errors import SipError
from ..sip.headers import parse_name_addr
from ..sip.message import make_response
from ..sip.uri import SipURI
from .codecs import restrict
from .inbound import called_source, caller_number, route


def _ha1(secret, realm: str, alg: str) -> str | None:
    if secret.password is None:
        return secret.ha1.get(alg) if secret.realm == realm else None
    h = hashlib.md5 if alg == "MD5" else hashlib.sha256
    return h(f"{secret.username}:{realm}:{secret.password}".encode()).hexdigest()


def by_credentials(svc, req) -> str | None:
    """The trunk known only by its credentials (no addresses) whose username the INVITE's Proxy-Authorization
    names, if any; the credentials themselves are checked next, like any trunk's."""
    if not svc.by_username:
        return None
    values = req.get_all("Proxy-Authorization")
    if not values:
        return None
    try:
        scheme, params = parse_authorization(values[0])
    except AuthParseError:
        return None
    return svc.by_username.get(params.get("username") or "") if scheme == "digest" else None


def on_trunk_invite(svc, tx, req, now: float, new_tag: Callable[[], str]) -> bool:
    """True when the INVITE was answered here (refused, challenged, or rung through to an agent); False to let
    call control go on."""
    name = svc.index.by_source(tx.context.host) if svc.index.exact or svc.index.networks else None
    proven = name is None
    if proven:
        name = by_credentials(svc, req)
        if name is None:
            return False
    trunk = svc.settings.trunk(name)
    if trunk is None or not isinstance(req.uri, SipURI):
        return False
    ep = svc.endpoint
    if trunk.inbound_auth is not None and not _authenticated(svc, trunk, tx, req, now, new_tag):
        return True
    if proven and not svc.admit_proven(name, tx, req):
        return True                    # over the trunk's own caps (answered 503 there)
    if req.body and not _codecs(svc, trunk, tx, req, new_tag):
        return True
    called = called_source(trunk, req.uri.user_unescaped, req)
    decision, number = route(trunk, svc.node.router, called, req.uri.param("ext"))
    if decision.kind == "reject":
        svc.stats[name]["refused"] += 1
        ep.respond(tx, make_response(req, decision.status, decision.reason, to_tag=new_tag()))
        return True
    uri = req.uri.copy()
    uri.user = number
    req.set_uri(uri)
    _show_caller(trunk, req)
    svc.stats[name]["calls"] += 1
    if decision.kind == "agent":
        svc.ring_agent(tx, req, decision.target, number)
        return True
    return False


def _codecs(svc, trunk, tx, req, new_tag) -> bool:
    """The offer cut to the trunk's codecs, its preferred one first (the answer takes that); else 488."""
    ctype = (req.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype != "application/sdp":
        return True                    # call control answers 415
    body = restrict(req.body, trunk.codecs, answer=True)
    if body is None:
        svc.stats[trunk.name]["refused"] += 1
        svc.endpoint.respond(tx, make_response(req, 488, "No codec of the trunk offered", to_tag=new_tag(), headers=[
            ("Warning", f'304 - "the trunk allows {", ".join(trunk.codecs)}"')]))
        return False
    req.body = body
    return True


def _show_caller(trunk, req) -> None:
    """The From shows the caller's number: P-Asserted-Identity's (RFC 3325) from a trunk identified by address
    or digest, else From's own, through the trunk's number plan."""
    caller = caller_number(trunk, req.get("From"), req.get("P-Asserted-Identity"), True)
    frm = req.from_
    if not caller or not isinstance(frm.uri, SipURI):
        return
    source, display = frm.uri, frm.display
    pai = req.get("P-Asserted-Identity")
    if pai:
        try:
            asserted = parse_name_addr(pai.split(",")[0])
        except SipError:
            asserted = None
        if asserted is not None and isinstance(asserted.uri, SipURI):
            source, display = asserted.uri, asserted.display   # the identity the carrier vouches for
    new = source.copy()
    new.user = caller
    frm.uri, frm.display = new, display
    req.set("From", str(frm))       # the tag stays: the dialog with the carrier is unchanged


def _authenticated(svc, trunk, tx, req, now, new_tag) -> bool:
    """The trunk's digest credentials on its INVITE; else a 407 (stateless, as for agents) or a 403."""
    auth = svc.node.auth
    values = req.get_all("Proxy-Authorization")
    if values:
        secret = trunk.inbound_auth
        result = auth.verify("INVITE", values[0],
                             lambda user, alg: _ha1(secret, auth.realm, alg) if user == secret.username else None, now)
        if result.kind == "ok":
            return True
        if result.kind not in ("stale", "replay"):
            svc.auth_failed(tx.context.host)     # counted against the source, as an agent's wrong password is
            svc.endpoint.respond(tx, make_response(req, 403, to_tag=new_tag()))
            return False
    challenge = make_response(req, 407, to_tag=new_tag(), headers=[
        ("Proxy-Authenticate", v) for v in auth.challenge(now, stale=bool(values))])
    svc.endpoint.respond_stateless(tx, challenge)
    return False
