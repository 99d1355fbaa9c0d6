"""Hostile SIP messages: long runs of one character class ended by a byte that breaks it, in every header
value, URI part and SDP line the node parses. Used by the adversarial-input tests and the probe benchmarks.

A shape is (slot, run, breaker, length): `slot` names where the text goes (a template whose `{}` is replaced),
and the text is `run` repeated to `length` characters, then `breaker`.
"""

from __future__ import annotations

import random
from typing import Iterator

# Runs of one character class (or of a short unit that a grammar loops over).
RUNS = {
    "token": "a", "token-mix": "aZ9-.!%*_+`'~", "lws": " ", "htab": "\t", "token-lws": "a ", "quote": '"',
    "backslash": "\\", "quoted-pair": '\\"', "semi": ";", "comma": ",", "equal": "=", "escaped": "%41",
    "percent": "%", "lbracket": "[", "colon": ":", "digit": "7", "alpha": "x", "param": ";a", "param-value": ";a=b",
    "auth-param": "a=b,", "at": "@", "lt": "<", "slash": "/", "line": "\r\na=x",
}
# Bytes that end each of those classes.
BREAKERS = ["\x00", "\x7f", "\udcff", '"', "<", ">", "\\", "@", ",", ";", "?"]     # \udcff encodes to byte 0xFF

REALM = "cc.example.com"
_AUTH = ('Digest username="70001", realm="cc.example.com", nonce="{n}", uri="sip:4001@cc.example.com", '
         'response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", qop=auth, nc=00000001')
NAME_ADDR_FORMS = ["{} <sip:a@b>", '"{}" <sip:a@b>', "<sip:{}@b>", "<sip:a:{}@b>", "<sip:a@{}>", "<sip:a@b;{}>",
                   "<sip:a@b?{}>", "<sip:a@b>;{}", "sip:{}", "<{}>", "{}"]
NAME_ADDR_HEADERS = ["From", "To", "Contact", "Route", "Record-Route", "Refer-To", "P-Asserted-Identity"]
# From and Contact get every form; the others share parse_name_addr, so the forms that reach a different part
# of it (display names, URI and header parameters, the bare value) are enough there.
FULL_FORMS = ("From", "Contact")
SOME_FORMS = (0, 1, 5, 7, 10)

# slot -> (where, template). where: a header name, "request-line", "header-name" or "sdp".
SLOTS: dict[str, tuple[str, str]] = {}
for _h in NAME_ADDR_HEADERS:
    for _i, _form in enumerate(NAME_ADDR_FORMS):
        if _h in FULL_FORMS or _i in SOME_FORMS:
            SLOTS[f"{_h}:{_i}"] = (_h, _form)
SLOTS.update({
    "Via:host": ("Via", "SIP/2.0/UDP {}"), "Via:transport": ("Via", "SIP/2.0/{} h"),
    "Via:port": ("Via", "SIP/2.0/UDP h:{}"), "Via:params": ("Via", "SIP/2.0/UDP h;{}"),
    "Via:branch": ("Via", "SIP/2.0/UDP h;branch={}"), "Via:second": ("Via", "SIP/2.0/UDP h;branch=z9hG4bK1, {}"),
    "Via:ipv6": ("Via", "SIP/2.0/UDP [{}]"), "Via:whole": ("Via", "{}"),
    "CSeq:number": ("CSeq", "{} INVITE"), "CSeq:method": ("CSeq", "1 {}"), "CSeq:whole": ("CSeq", "{}"),
    "Call-ID:word": ("Call-ID", "{}"), "Call-ID:host": ("Call-ID", "a@{}"),
    "Authorization:whole": ("Authorization", "{}"), "Authorization:params": ("Authorization", "Digest {}"),
    "Authorization:username": ("Authorization", 'Digest username="{}", realm="cc.example.com", nonce="n", '
                               'uri="sip:a@b", response="0"'),
    "Authorization:nonce": ("Authorization", _AUTH.replace("{n}", "{}")),
    "Authorization:after": ("Authorization", _AUTH.replace("{n}", "n") + ", {}"),
    "Proxy-Authorization:params": ("Proxy-Authorization", "Digest {}"),
    "Proxy-Authorization:nonce": ("Proxy-Authorization", _AUTH.replace("{n}", "{}")),
    "Call-Info:uri": ("Call-Info", "<{}>;answer-after=2"), "Call-Info:param": ("Call-Info", "<sip:a>;answer-after={}"),
    "Call-Info:whole": ("Call-Info", "{}"),
    "Session-Expires:whole": ("Session-Expires", "{}"), "Session-Expires:params": ("Session-Expires", "1800;{}"),
    "Session-Expires:refresher": ("Session-Expires", "1800;refresher={}"), "Min-SE:whole": ("Min-SE", "{}"),
    "Min-SE:params": ("Min-SE", "90;{}"),
    "Content-Type:whole": ("Content-Type", "{}"), "Content-Type:subtype": ("Content-Type", "application/{}"),
    "Content-Type:params": ("Content-Type", "application/sdp;{}"), "Content-Length:whole": ("Content-Length", "{}"),
    "Expires:whole": ("Expires", "{}"), "Max-Forwards:whole": ("Max-Forwards", "{}"),
    "Require:list": ("Require", "{}"), "Require:second": ("Require", "timer, {}"),
    "Supported:list": ("Supported", "{}"), "Supported:second": ("Supported", "timer, {}"),
    "Priority:whole": ("Priority", "{}"), "Event:whole": ("Event", "{}"),
    "request-line:user": ("request-line", "INVITE sip:{}@cc.example.com SIP/2.0"),
    "request-line:params": ("request-line", "INVITE sip:4001@cc.example.com;{} SIP/2.0"),
    "request-line:headers": ("request-line", "INVITE sip:4001@cc.example.com?{} SIP/2.0"),
    "request-line:uri": ("request-line", "INVITE {} SIP/2.0"), "request-line:method": ("request-line", "{} sip:a@b SIP/2.0"),
    "request-line:version": ("request-line", "INVITE sip:a@b {}"),
    "header-name": ("header-name", "{}: x"),
    "sdp:origin": ("sdp", "o={}"), "sdp:connection": ("sdp", "c=IN IP4 {}"), "sdp:port": ("sdp", "m=audio {} RTP/AVP 0"),
    "sdp:formats": ("sdp", "m=audio 4000 RTP/AVP {}"), "sdp:rtpmap": ("sdp", "a=rtpmap:{}"),
    "sdp:fmtp": ("sdp", "a=fmtp:101 {}"), "sdp:attribute": ("sdp", "a={}"), "sdp:line": ("sdp", "{}"),
})

SDP_LINES = ["v=0", "o=- 1 1 IN IP4 10.0.0.9", "s=-", "c=IN IP4 10.0.0.9", "t=0 0", "m=audio 40000 RTP/AVP 0 8 101",
             "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16",
             "a=sendrecv"]
SDP_REPLACES = {"o": 1, "c": 3, "m": 5, "a=rtpmap": 6, "a=fmtp": 9}

HEADERS = [
    ["Via", "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-adv1;rport"], ["Max-Forwards", "70"],
    ["From", '"Customer" <sip:customer@carrier.example.net>;tag=c4f2'], ["To", "<sip:4001@cc.example.com>"],
    ["Call-ID", "adv-1@10.0.0.9"], ["CSeq", "1 INVITE"], ["Contact", "<sip:customer@10.0.0.9:5060>"],
    ["Supported", "timer"], ["Content-Type", "application/sdp"],
]


def run_text(run: str, breaker: str, length: int) -> str:
    unit = RUNS[run]
    return (unit * (length // len(unit) + 1))[:length] + breaker


def message(slot: str, text: str, *, call_id: str = "adv-1@10.0.0.9", branch: str = "z9hG4bK-adv1",
            number: str = "4001") -> bytes:
    """An INVITE with SDP to `number` whose `slot` holds `text` (put into the slot's template)."""
    where, template = SLOTS[slot]
    value = template.replace("{}", text).replace("sip:4001@", f"sip:{number}@")
    start = f"INVITE sip:{number}@cc.example.com SIP/2.0"
    headers = [[n, v.replace("adv-1@10.0.0.9", call_id).replace("z9hG4bK-adv1", branch)] for n, v in HEADERS]
    sdp = list(SDP_LINES)
    extra = []
    if where == "request-line":
        start = value
    elif where == "header-name":
        extra.append(value)
    elif where == "Content-Length":
        pass                                 # replaces the computed one below
    elif where == "sdp":
        key = value.split(":", 1)[0] if value.startswith(("a=rtpmap", "a=fmtp")) else value[:1]
        idx = SDP_REPLACES.get(key)
        if idx is None:
            sdp.insert(len(sdp) - 1, value)
        else:
            sdp[idx] = value
    else:
        for h in headers:
            if h[0] == where:
                h[1] = value
                break
        else:
            headers.append([where, value])
    body = ("\r\n".join(sdp) + "\r\n").encode("utf-8", "surrogateescape")
    lines = [start] + [f"{n}: {v}" for n, v in headers] + extra + [f"Content-Length: {len(body)}", "", ""]
    if where == "Content-Length":
        lines[-3] = f"Content-Length: {value}"
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body


def random_probes(n: int, seed: int, max_length: int = 60000, number: str = "4001") -> Iterator[tuple[str, bytes]]:
    """n distinct-ish probes: random slot, run and breaker at a length drawn from 30 ... max_length (log-scale)."""
    rng = random.Random(seed)
    slots, runs = list(SLOTS), list(RUNS)
    for i in range(n):
        slot, run, breaker = rng.choice(slots), rng.choice(runs), rng.choice(BREAKERS)
        length = int(30 * (max_length / 30) ** rng.random())
        label = f"{slot}/{run}/{breaker!r}/{length}"
        yield label, message(slot, run_text(run, breaker, length), call_id=f"probe-{seed}-{i}",
                             branch=f"z9hG4bK-p{seed}x{i}", number=number)
