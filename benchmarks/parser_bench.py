"""Parser throughput: messages/s for a typical REGISTER and INVITE, parse only and parse + serialize.

    .venv/bin/python benchmarks/parser_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

from softswitch.sip.parser import parse_message

# the line the smoke run (tests/integration/test_benchmarks_smoke.py) looks for
FIGURE_LINE = r"^REGISTER +[\d,]+ +[\d,]+$"

REGISTER = (b"REGISTER sip:cc.example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK776asdhds;rport\r\n"
            b"Max-Forwards: 70\r\nTo: \"Alice\" <sip:70001@cc.example.com>\r\n"
            b"From: \"Alice\" <sip:70001@cc.example.com>;tag=1928301774\r\n"
            b"Call-ID: a84b4c76e66710@pc33.example.com\r\nCSeq: 314160 REGISTER\r\n"
            b"Contact: <sip:70001@10.0.0.5:5062;transport=udp>;expires=3600\r\n"
            b'Authorization: Digest username="70001", realm="cc.example.com", nonce="MTcwMDAwMDAwMC4wOmFiY2RlZg", '
            b'uri="sip:cc.example.com", response="6629fae49393a05397450978507c4ef1", algorithm=MD5, '
            b'cnonce="0a4f113b", qop=auth, nc=00000001, opaque="5ccc069c403ebaf9f0171e9517f40e41"\r\n'
            b"User-Agent: PJSUA v2.15\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\nContent-Length: 0\r\n\r\n")
SDP = (b"v=0\r\no=- 3906321 3906321 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
       b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n")
INVITE = (b"INVITE sip:4001@cc.example.com SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-524287-1---3b7e0b4e1bb06a5f;rport\r\n"
          b"Max-Forwards: 70\r\nContact: <sip:customer@10.0.0.9:5060>\r\nTo: <sip:4001@cc.example.com>\r\n"
          b"From: \"Customer\" <sip:customer@carrier.example.net>;tag=c4f2a1e0\r\n"
          b"Call-ID: ZjM0NzU2OWRlYzM1NjE3Mzg0ZWI0ZjY2NDcxMWY5ZGE\r\nCSeq: 1 INVITE\r\n"
          b"Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n"
          b"Content-Type: application/sdp\r\nSupported: replaces, timer\r\nUser-Agent: Zoiper\r\n"
          b"Session-Expires: 1800\r\nContent-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP)


def rate(fn, seconds: float = 1.0) -> float:
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(500):
            fn()
        n += 500
        el = time.perf_counter() - start
        if el >= seconds:
            return n / el


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one 0.1 s run per figure (a smoke run)")
    a = ap.parse_args()
    runs, seconds = (1, 0.1) if a.quick else (5, 0.5)
    print(f"{'message':10} {'parse msg/s':>12} {'parse+serialize msg/s':>22}   (median of {runs} runs)")
    for name, raw in (("REGISTER", REGISTER), ("INVITE", INVITE)):
        parse_rates = [rate(lambda: parse_message(raw), seconds) for _ in range(runs)]
        both_rates = [rate(lambda: parse_message(raw).serialize(), seconds) for _ in range(runs)]
        print(f"{name:10} {statistics.median(parse_rates):12,.0f} {statistics.median(both_rates):22,.0f}")


if __name__ == "__main__":
    main()
