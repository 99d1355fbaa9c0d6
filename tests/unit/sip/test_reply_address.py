"""With force_rport, a datagram's answer goes back to its source: the endpoint takes that without reading
the stamped Via again, and it must be what response_address reads from it (maddr aside)."""

from __future__ import annotations

import pytest

from softswitch.sip.parser import parse_message
from softswitch.sip.uas import response_address, stamp_via

VIAS = ["SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-1;rport",
        "SIP/2.0/UDP 192.0.2.9:5070;branch=z9hG4bK-2",
        "SIP/2.0/UDP phone.example.com;branch=z9hG4bK-3;rport=1234;received=198.51.100.1",
        "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK-4;RPORT",
        "SIP/2.0/UDP 10.0.0.1;received=10.9.9.9;branch=z9hG4bK-5"]
SOURCES = [("127.0.0.1", 40000), ("203.0.113.7", 5060), ("2001:db8::9", 1)]


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("host,port", SOURCES)
def test_stamped_via_sends_the_answer_to_the_source(via, host, port):
    req = parse_message((f"OPTIONS sip:x@cc.test SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@cc.test>;tag=1\r\n"
                         "To: <sip:x@cc.test>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n").encode())
    stamp_via(req, host, port, force_rport=True)
    assert req.top_via.param("maddr") is None
    assert response_address(req) == (host, port)
