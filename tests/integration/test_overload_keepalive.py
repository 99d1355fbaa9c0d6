"""Phones that went away are probed with OPTIONS that nobody answers. Those probes are the node's own traffic to
peers that do not answer: they say nothing of the node's load and must not make call admission refuse customers
with 503 (when probes were client transactions, their re-sends counted in the re-send ratio admission watches;
they are sent once now, and this still holds)."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from pathlib import Path

from benchmarks.tenant import write_tenant
from tests.support.serve import Served
from tests.support.sipclient import UdpClient
from tools.agents_load import register_agents

SDP = ("v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n")


def health(http_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=10) as r:
        return json.loads(r.read())


def invite(port: int, client: UdpClient, n: int) -> bytes:
    host, cport = client.addr
    body = SDP.format(port=40000 + 2 * n)
    return (f"INVITE sip:4001@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{cport};branch=z9hG4bK-ka{n};rport\r\n"
            f"From: <sip:555{n:04d}@127.0.0.1>;tag=ka{n}\r\nTo: <sip:4001@127.0.0.1>\r\n"
            f"Call-ID: keepalive-admission-{n}\r\nCSeq: 1 INVITE\r\nContact: <sip:555{n:04d}@{host}:{cport}>\r\n"
            f"Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()


def test_keepalives_to_silent_phones_do_not_shed_customer_calls(tmp_path):
    t = write_tenant(str(tmp_path / "t.yaml"), agents=40, queues=1, rtp_ports="37000-37399",
                     keepalive="{interval: 1s, timeout: 0.9s, failures: 2}")
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)      # the phones' address: nobody answers there
    silent.bind(("127.0.0.1", 0))
    node = Served(Path(t.path))
    client = UdpClient(("127.0.0.1", t.sip_port))
    try:
        assert register_agents(t.sip_port, t.phones, t.realm, silent.getsockname()[1]) == 40
        deadline = time.monotonic() + 30                              # bounds a hang
        while health(t.http_port)["keepalive"]["unreachable"] < 40:  # every probe unanswered, given up
            assert time.monotonic() < deadline, health(t.http_port)
            time.sleep(0.2)
        h = health(t.http_port)
        assert h["keepalive"]["probes"] >= 80 and h["resend_ratio"] < 0.05, h
        for n in range(3):                    # customers still get in (answered and queued), none refused 503
            client.send(invite(t.sip_port, client, n))
            final = client.recv_until(lambda ms: any(getattr(m, "status", 0) >= 200 for m in ms), 20)
            statuses = [m.status for m in final if hasattr(m, "status")]
            assert statuses and statuses[-1] == 200, statuses
        assert health(t.http_port)["call_stats"]["overloaded"] == 0
    finally:
        client.close()
        silent.close()
        node.stop()
