"""The SIP side of click-to-dial: one call from CallControl.on_invite lets a widget's INVITE in or refuses it."""

from __future__ import annotations

from ..b2bua.legs import new_tag
from ..log import get as get_logger
from ..sip.message import make_response
from .gate import Refusal

_log = get_logger("widget")


def admit_widget_call(calls, tx, req, number: str | None) -> bool:
    """False after answering 403 (a bad token, or none on the widget's WebSocket); True: go on (a checked
    click-to-dial token, or no token and the usual rules)."""
    verdict = calls.widgets.check_invite(req, tx.context, number)
    if not isinstance(verdict, Refusal):
        if verdict is not None:
            _log.info("click_to_dial_call", call_id=req.call_id, widget=verdict.widget, origin=verdict.origin,
                      number=number)
            conn = getattr(tx.context, "conn", None)
            if conn is not None:
                ids = calls.widgets.flows.setdefault(conn, set())
                ids.intersection_update(calls.calls)    # the calls that are over: forgotten, so a long-lived
                ids.add(req.call_id)                    # page's WebSocket holds only its live calls' ids
        return True
    _log.warning("click_to_dial_refused", call_id=req.call_id, number=number, reason=verdict.reason,
                 source=f"{tx.context.host}:{tx.context.port}")
    calls.stats["rejected"] += 1
    calls.endpoint.respond(tx, make_response(req, 403, "Forbidden", to_tag=new_tag()))
    return False


def end_calls_of_flow(calls, conn) -> None:
    """A visitor's WebSocket went away (the tab was closed, the network dropped): the calls it started end now,
    queued or with an agent, and leave their CDR, instead of waiting for the session timer."""
    for call_id in calls.widgets.flows.pop(conn, ()):
        call = calls.calls.get(call_id)
        if call is not None and not call.ended:
            calls.end_call(call, "customer connection closed")
