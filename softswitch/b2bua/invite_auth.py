"""Agents calling out: the INVITE of a number outside the called routes must come from an agent's softphone,
proven by digest (a 407 challenge first, stateless so a flood costs no transactions)."""

from __future__ import annotations

import time

from .legs import new_tag
from ..sip.message import Request, Response, make_response
from ..sip.uri import SipURI

__all__ = ["authenticate_agent"]


def authenticate_agent(cc, tx, req: Request) -> str | None:
    """The agent whose softphone sent this INVITE, proven by digest (407 challenge); None once answered.
    A failure of any kind (unknown user, wrong password, locked account, credentials of another number
    than the From's) gets the same 403."""
    from_user = req.from_.uri.user_unescaped if isinstance(req.from_.uri, SipURI) else None
    values = req.get_all("Proxy-Authorization")
    now = time.time()

    def challenge(stale: bool = False) -> Response:
        return make_response(req, 407, to_tag=new_tag(), headers=[
            ("Proxy-Authenticate", v) for v in cc.authn.challenge(from_user, now, stale=stale)])
    if not values:
        # stateless: an INVITE flood gets challenges, not transactions
        cc.endpoint.respond_stateless(tx, challenge())
        return None
    verdict = cc.authn.check(req.method, values[0], now, tx.context.host)
    if verdict.kind in ("stale", "replay", "challenge"):
        cc.endpoint.respond(tx, challenge(stale=verdict.kind == "stale"))
        return None
    agent = cc.router.softphones.get(verdict.username or "") if verdict.kind == "ok" else None
    if agent is None or verdict.username != from_user:
        cc.endpoint.respond(tx, make_response(req, 403, to_tag=new_tag()))
        return None
    return agent
