"""A trunk's INVITE at call control's door (the one hook call control calls): identified by source address,
challenged with the trunk's own credentials when it has inbound_auth, routed by the trunk's rules (called
number source, number plan, reach), and handed on with the Request-URI set to the number routed and the From
showing the caller's number (P-Asserted-Identity's from a trunk trusted by address), so agents, CDRs and the
wallboard show it. Requests from any other address are left as they are. Pure apart from the shell's `svc` (index, settings,
endpoint to answer on): `now` and the tag maker come in."""

from __future__ import annotations

import hashlib
from typing import Callable

from ..sip.errors import SipError
from ..sip.headers import parse_name_addr
from ..sip.message import make_response
from ..sip.uri import SipURI
from .inbound import called_source, caller_number, route


def _ha1(secret, realm: str, alg: str) -> str | None:
    if secret.password is None:
        return secret.ha1.get(alg) if secret.realm == realm else None
    h = hashlib.md5 if alg == "MD5" else hashlib.sha256
    return h(f"{secret.username}:{realm}:{secret.password}".encode()).hexdigest()


def on_trunk_invite(svc, tx, req, now: float, new_tag: Callable[[], str]) -> bool:
    """True when the INVITE was answered here (refused or challenged); False to let call control go on."""
    if not svc.index.exact and not svc.index.networks:
        return False
    name = svc.index.by_source(tx.context.host)
    trunk = svc.settings.trunk(name) if name is not None else None
    if trunk is None or not isinstance(req.uri, SipURI):
        return False
    ep = svc.endpoint
    if trunk.inbound_auth is not None and not _authenticated(svc, trunk, tx, req, now, new_tag):
        return True
    called = called_source(trunk, req.uri.user_unescaped, req)
    decision, number = route(trunk, svc.node.router, called, req.uri.param("ext"))
    if decision.kind not in ("queue", "ivr"):
        # an agent's number: call control reaches agents only for their own authenticated calls so far
        status, reason = (decision.status, decision.reason) if decision.kind == "reject" else (404, "No route")
        svc.stats[name]["refused"] += 1
        ep.respond(tx, make_response(req, status, reason, to_tag=new_tag()))
        return True
    uri = req.uri.copy()
    uri.user = number
    req.set_uri(uri)
    caller = caller_number(trunk, req.get("From"), req.get("P-Asserted-Identity"), trunk.inbound_auth is None)
    frm = req.from_
    if caller and isinstance(frm.uri, SipURI):
        source, display = frm.uri, frm.display
        pai = req.get("P-Asserted-Identity") if trunk.inbound_auth is None else None
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
    svc.stats[name]["calls"] += 1
    return False


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
            svc.endpoint.respond(tx, make_response(req, 403, to_tag=new_tag()))
            return False
    challenge = make_response(req, 407, to_tag=new_tag(), headers=[
        ("Proxy-Authenticate", v) for v in auth.challenge(now, stale=bool(values))])
    svc.endpoint.respond_stateless(tx, challenge)
    return False
