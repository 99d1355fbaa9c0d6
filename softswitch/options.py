"""OPTIONS answered by the node itself: capabilities, and the keepalive softphones and load tools use."""

from __future__ import annotations

from .sip.message import Request, make_response
from .sip.uas import ACCEPTED_BODIES


def make_options_handler(endpoint):
    def on_options(tx, req: Request) -> None:
        resp = make_response(req, 200, to_tag=_tag(req), headers=[
            ("Allow", ", ".join(sorted(endpoint.allowed))),
            ("Accept", ", ".join(sorted(ACCEPTED_BODIES))),
            ("Supported", ", ".join(sorted(endpoint.supported))),
            ("Accept-Language", "en"),
        ])
        endpoint.respond(tx, resp)
    return on_options


def _tag(req: Request) -> str:
    # A stable tag per request lets retransmissions and the original get the same answer.
    return format(abs(hash((req.call_id, req.cseq[0]))) & 0xFFFFFFFF, "x")
