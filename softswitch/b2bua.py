"""Call control: the back-to-back user agent between customers and agents.

A customer's INVITE is routed (routing.Router); refused calls get their final answer here. Calls that reach
a queue or an IVR are handed to the call driver (the ACD and media side), which answers the customer leg and
places agent legs.
"""

from __future__ import annotations

from .log import get as get_logger
from .routing import Router
from .sip.message import Request, make_response
from .sip.transaction import Transaction
from .sip.uri import SipURI


class CallControl:
    def __init__(self, endpoint, router: Router) -> None:
        self.endpoint = endpoint
        self.router = router
        self.log = get_logger("calls")
        self.driver = None     # the ACD/media side; set by the node when queues are configured

    def on_invite(self, tx: Transaction, req: Request) -> None:
        self.endpoint.respond(tx, make_response(req, 100))
        uri = req.uri
        number = uri.user_unescaped if isinstance(uri, SipURI) else None
        decision = self.router.decide(number, uri.param("ext") if isinstance(uri, SipURI) else None)
        if decision.kind == "reject" or self.driver is None:
            status = decision.status or 480
            reason = decision.reason or "No agents"
            self.log.info("call_rejected", call_id=req.call_id, status=status, reason=reason)
            self.endpoint.respond(tx, make_response(req, status, reason, to_tag=_tag(req)))
            return
        self.driver.incoming(tx, req, decision)


def _tag(req: Request) -> str:
    return format(abs(hash((req.call_id, "b2bua"))) & 0xFFFFFFFF, "x")
