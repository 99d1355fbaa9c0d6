"""Dialog state (RFC 3261 s. 12): route sets, targets, CSeq rules, in-dialog requests, CANCEL."""

from __future__ import annotations

import pytest

from softswitch.sip.dialog import Dialog, cancel_for
from softswitch.sip.errors import SipError
from softswitch.sip.message import make_response
from softswitch.sip.parser import parse_message

INVITE = (b"INVITE sip:4001@cc.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-a1\r\n"
          b"Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
          b"From: \"C\" <sip:c@carrier.example.net>;tag=ct\r\nTo: <sip:4001@cc.example.com>\r\n"
          b"Call-ID: d1\r\nCSeq: 10 INVITE\r\nContact: <sip:c@10.0.0.9:5060>\r\nMax-Forwards: 70\r\n"
          b"Content-Length: 0\r\n\r\n")


def test_uas_dialog_routes_in_order_and_requests_go_to_the_contact():
    req = parse_message(INVITE)
    d = Dialog.as_uas(req, "lt")
    assert d.remote_tag == "ct" and d.remote_seq == 10 and str(d.remote_target) == "sip:c@10.0.0.9:5060"
    bye = d.request("BYE", via="SIP/2.0/UDP 127.0.0.1:5060", branch="z9hG4bK-b", contact=None)
    wire = parse_message(bye.serialize())
    assert str(wire.uri) == "sip:c@10.0.0.9:5060"
    assert wire.values("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert wire.from_.tag == "lt" and wire.to.tag == "ct" and wire.cseq == (1, "BYE")
    assert d.request("INFO", via="SIP/2.0/UDP h", branch="z9hG4bK-c", contact="<sip:x@h>").cseq == (2, "INFO")


def test_uac_dialog_reverses_record_route_and_handles_strict_routers():
    req = parse_message(INVITE)
    resp = make_response(req, 200, to_tag="rt", headers=[("Contact", "<sip:agent@10.1.1.1:5070>")])
    resp = parse_message(resp.serialize().replace(b"<sip:p2.example.com;lr>", b"<sip:p2.example.com>"))
    d = Dialog.as_uac(req, resp)
    assert d.state == "confirmed" and d.remote_tag == "rt"
    assert d.route_set == ["<sip:p2.example.com>", "<sip:p1.example.com;lr>"]
    ack = d.request("ACK", via="SIP/2.0/UDP h", branch="z9hG4bK-ack", contact=None, cseq=10)
    # the first route is a strict router: it becomes the R-URI, the remote target goes last
    assert str(ack.uri) == "sip:p2.example.com"
    assert ack.values("Route")[-1] == "<sip:agent@10.1.1.1:5070>" and ack.cseq == (10, "ACK")


def test_remote_cseq_must_grow_and_refreshes_target():
    d = Dialog.as_uas(parse_message(INVITE), "lt")
    reinvite = parse_message(INVITE.replace(b"CSeq: 10 INVITE", b"CSeq: 11 INVITE")
                             .replace(b"<sip:c@10.0.0.9:5060>", b"<sip:c@10.0.0.10:5062>"))
    d.check_remote_cseq(reinvite)
    assert str(d.remote_target) == "sip:c@10.0.0.10:5062"
    with pytest.raises(SipError) as e:
        d.check_remote_cseq(parse_message(INVITE))
    assert e.value.status == 500


def test_cancel_matches_the_invite():
    inv = parse_message(INVITE)
    c = parse_message(cancel_for(inv).serialize())
    assert c.method == "CANCEL" and c.top_via.branch == "z9hG4bK-a1" and c.cseq == (10, "CANCEL")
    assert c.get("To") == inv.get("To") and c.call_id == inv.call_id and c.values("Route") == []
