"""Hostile input is answered quickly: every header value, URI part and SDP line the node parses, filled with a long
run of one character class and ended by a byte that breaks it, is handled (parsed, or refused with the peer's-fault
SipError) in well under 50 ms of CPU, through the parser and every accessor the node then applies.

A linear parser takes microseconds on these; a backtracking one takes seconds, so the bound is not a timing test.
CPU time (time.thread_time) is measured, never the wall clock.
"""

from __future__ import annotations

import re
import time
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softswitch.b2bua.control import CallControl, _se_interval
from softswitch.registrar.credentials import ha1_pair
from softswitch.registrar.registrar import _binding_key, _int_or_none
from softswitch.sip.sdp import build_sdp, negotiate_audio, parse_sdp
from softswitch.sip.dialog import Dialog
from softswitch.sip.digest import DigestAuth, parse_authorization, AuthParseError
from softswitch.sip.errors import SipError
from softswitch.sip.framing import Keepalive, StreamFramer
from softswitch.sip.headers import (TOKEN, parse_delta_params, parse_name_addr, parse_params)
from softswitch.sip.message import make_response
from softswitch.sip.parser import parse_message
from softswitch.sip.uas import check_request, error_response, response_address, stamp_via
from softswitch.sip.uri import SipURI
from tests.support.hostile import BREAKERS, REALM, RUNS, SLOTS, message, run_text

LIMIT = 0.050          # CPU seconds per message
MAX = 60000            # characters of run: with the rest of the INVITE, close to the 65535-octet datagram limit
SUPPORTED = frozenset({"timer", "replaces", "outbound", "path"})
ALLOWED = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE", "REFER"})
AUTH = DigestAuth(REALM, b"adversarial-secret")
HA1 = ha1_pair("70001", REALM, "Phone-70001!")
TIMERS = types.SimpleNamespace(session_expires=1800)


def _lookup(user: str, algorithm: str) -> str | None:
    return HA1[algorithm] if user == "70001" else None


# --- what the node applies to a parsed request, step by step -------------------------------------------------
def _uas(msg):
    stamp_via(msg, "192.0.2.7", 5070, True)
    response_address(msg)
    check_request(msg, supported=SUPPORTED, allowed=ALLOWED)
    make_response(msg, 200, to_tag="t1").serialize()
    msg.serialize()


def _addresses(msg):
    for a in (msg.from_, msg.to):
        a.tag
        str(a)
        if isinstance(a.uri, SipURI):
            a.uri.aor()
    uri = msg.uri
    if isinstance(uri, SipURI):
        uri.user_unescaped
        uri.param("ext")
        uri.aor()


def _contacts(msg):
    if msg.has("Contact"):
        contacts = msg.contacts
        if contacts != "*":
            for c in contacts:
                _int_or_none(c.param("expires"))
                _binding_key(c)
                if isinstance(c.uri, SipURI):
                    c.uri.aor()
                str(c)


def _routes(msg):
    for name in ("Route", "Record-Route", "Refer-To", "P-Asserted-Identity", "Call-Info"):
        for v in msg.values(name):
            parse_name_addr(v)
    if msg.method == "INVITE" and msg.has("Contact"):
        d = Dialog.as_uas(msg, "t1")
        d.request("BYE", via="SIP/2.0/UDP 127.0.0.1:5060", branch="z9hG4bK-bye", contact="<sip:cc@127.0.0.1>")


def _auth(msg):
    for name in ("Authorization", "Proxy-Authorization"):
        for v in msg.get_all(name):
            AUTH.verify(msg.method, v, _lookup, 0.0)


def _timers(msg):
    CallControl._session_timer_headers(TIMERS, msg)
    _se_interval(msg, 1800)
    v = msg.get("Min-SE")
    if v is not None:
        parse_delta_params(v, "Min-SE")


def _numbers(msg):
    _int_or_none(msg.get("Expires"))
    (msg.get("Priority") or "").strip().lower()


def _sdp(msg):
    if msg.body:
        offer = parse_sdp(msg.body)
        audio = offer.first("audio")
        picked = negotiate_audio(audio) if audio else None
        if picked is not None:
            host, port = offer.endpoint("audio")
            build_sdp("127.0.0.1", 1, 1, [(30000, picked[1], "sendrecv", picked[0])],
                      [m for m in offer.media if m.kind == "video" and m.port][:1], [30002])


STEPS = (_uas, _addresses, _contacts, _routes, _auth, _timers, _numbers, _sdp)


def handle(raw: bytes) -> int:
    """The status a peer gets for `raw` (0: accepted). Anything but SipError escapes: that is our bug."""
    try:
        msg = parse_message(raw)
    except SipError as err:
        resp = error_response(err)          # the stateless answer, from what could be read
        if resp is not None:
            resp.serialize()
        return err.status
    status = 0
    for step in STEPS:
        try:
            step(msg)
        except SipError as err:
            status = status or err.status
    return status


def timed(raw: bytes) -> tuple[float, int]:
    t0 = time.thread_time()
    status = handle(raw)
    return time.thread_time() - t0, status


def check_all(cases) -> None:
    slow = []
    for slot, run, breaker, length in cases:
        raw = message(slot, run_text(run, breaker, length))
        cpu, _ = timed(raw)
        if cpu > LIMIT:
            cpu = min(cpu, timed(raw)[0], timed(raw)[0])    # a collector pass or a busy core, or really slow?
        if cpu > LIMIT:
            slow.append((round(cpu * 1000, 1), slot, run, breaker, length))
    assert not slow, f"{len(slow)} slow cases (ms, slot, run, breaker, length): {sorted(slow, reverse=True)[:10]}"


def test_the_plain_message_is_accepted():
    """The messages are a valid INVITE with SDP before a slot is filled, so a refusal is the filled slot's."""
    assert handle(message("Priority:whole", "normal")) == 0
    assert handle(message("Contact:2", "customer")) == 0
    assert handle(message("Authorization:nonce", "bm9uY2U")) == 0


@pytest.mark.parametrize("slot", sorted(SLOTS))
def test_long_runs_in_every_slot(slot):
    """Every character class at 30 characters ended by each breaking byte (a backtracking blow-up shows at that
    length already), and at 300 by the bytes that end the most classes."""
    check_all([(slot, run, breaker, 30) for run in RUNS for breaker in BREAKERS]
              + [(slot, run, breaker, 300) for run in RUNS for breaker in ("\x00", "\udcff", '"', "<", "\\", ",")])


@pytest.mark.parametrize("slot", sorted(SLOTS))
def test_runs_up_to_the_message_limit(slot):
    """At the size limit a super-linear path shows at once: every class, ended by NUL and by a quote."""
    check_all((slot, run, breaker, MAX) for run in RUNS for breaker in ("\x00", '"'))


def test_display_name_of_token_runs_and_a_nul():
    """The shape that once took seconds: token characters, a NUL, more token characters, then <URI>."""
    for n in (26, 300, MAX // 2):
        text = "a" * n + "\x00" + "a" * n
        cpu, status = timed(message("From:0", text))
        assert status == 400 and cpu < LIMIT, (n, cpu)


def test_results_are_answers_or_peer_errors():
    """Refusals carry a status a peer can be answered with; nothing is silently accepted that cannot parse."""
    assert handle(message("From:0", "a\x00")) == 400
    assert handle(message("CSeq:number", "7" * 300)) == 400
    assert handle(message("Via:port", "99999")) == 400
    assert handle(message("sdp:port", "²")) == 400
    assert handle(message("sdp:connection", "x").replace(b"c=IN IP4 x\r\n", b"")) == 400
    assert handle(message("Session-Expires:whole", "²")) == 0           # no number: as if absent
    assert handle(message("Session-Expires:params", "\x00")) == 400
    assert handle(message("Expires:whole", "²")) == 0                   # malformed Expires: the default applies


# --- stream framing -------------------------------------------------------------------------------------------
def _big_invite(size: int) -> bytes:
    return message("Priority:whole", "n" * size)


def _feed(chunks) -> tuple[list, StreamFramer, float]:
    f = StreamFramer()
    out, worst = [], 0.0
    for c in chunks:
        t0 = time.thread_time()
        out.extend(f.feed(c))
        worst = max(worst, time.thread_time() - t0)
    return out, f, worst


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_framing_large_message_in_small_chunks(size):
    """A message near the stream limit, split into 1, 7 and 1000-byte writes: each write costs about its own
    length, and the message comes out once, whole."""
    raw = _big_invite(60000)
    if size == 1:
        raw = raw[:-200] + raw[-200:]       # whole message byte by byte is 65 k feeds: still linear, still fast
    t0 = time.thread_time()
    out, f, worst = _feed([raw[i:i + size] for i in range(0, len(raw), size)])
    total = time.thread_time() - t0
    assert [m.call_id for m in out] == ["adv-1@10.0.0.9"] and f.pending == 0
    assert worst < LIMIT
    assert total < 20 * LIMIT, total   # a rescan per write would be ~len**2 / 2 = 2e9 byte visits


def test_framing_body_trickles_byte_by_byte():
    head = _big_invite(30000)
    cut = head.index(b"\r\n\r\n") + 4
    out, f, worst = _feed([head[:cut]] + [head[i:i + 1] for i in range(cut, len(head))] + [head])
    assert [m.call_id for m in out] == ["adv-1@10.0.0.9", "adv-1@10.0.0.9"] and f.pending == 0
    assert worst < LIMIT


@pytest.mark.parametrize("unit", [b"\n", b"\r", b"\r\n", b"\n\r", b"\r\r\n"])
def test_framing_line_end_flood_is_bounded(unit):
    """A peer that sends only line ends holds a few bytes, not all it sent, and a real ping is still answered."""
    out, f, worst = _feed([unit] * 20000 + [unit * 5000])
    assert f.pending <= 3 and worst < LIMIT
    out, f, _ = _feed([unit] * 100 + [b"\r\n\r\n"])
    assert any(isinstance(i, Keepalive) for i in out)
    out, f, _ = _feed([b"\r\n\r\n", b"\r\n", b"\r\n"])
    assert [type(i) for i in out] == [Keepalive, Keepalive] and f.pending == 0


@pytest.mark.parametrize("breaker", [b"\x00", b"\xff", b":", b"\r\n"])
def test_framing_header_runs(breaker):
    """Long header-block runs without an end, fed in odd chunks: refused at the limit, quickly."""
    raw = b"INVITE sip:a@b SIP/2.0\r\nX: " + b"a" * 70000 + breaker
    out, f, worst = _feed([raw[i:i + 997] for i in range(0, len(raw), 997)])
    assert worst < LIMIT
    assert f.closed and isinstance(out[-1], SipError) and out[-1].status == 513


# --- the rewritten grammar is the old grammar ------------------------------------------------------------------
_OLD_DISPLAY = re.compile(r"[ \t]*(?:" + TOKEN + r"[ \t]*)*\Z")
_OLD_ITEM = re.compile(r'[ \t]*;[ \t]*(' + TOKEN + r')(?:[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[A-Za-z0-9\-.!%*_+`\'~:\[\]]+))?')
_OLD_AUTH = re.compile(r'(\s*([A-Za-z0-9_\-]+)\s*=\s*("[^"\\]*(?:\\.[^"\\]*)*"|[^\s,"]*)\s*(?:,|\Z))', re.S)
_ALPHABET = st.sampled_from(list("aZ9-.!%*_+`'~ \t\"\\;,=:[]<>@?x\x00\x7f\u00e9"))


def _old_params(text: str):
    params, i = [], 0
    while i < len(text):
        m = _OLD_ITEM.match(text, i)
        if m is None:
            if text[i:].strip(" \t"):
                raise SipError(400, "bad")
            break
        params.append((m.group(1), m.group(2)))
        i = m.end()
    return params


def _old_auth(rest: str):
    items = _OLD_AUTH.findall(rest)
    if sum(len(i) for i, _, _ in items) != len(rest):
        return None
    return [(n.lower(), v) for _, n, v in items]


@settings(max_examples=400, deadline=None)
@given(st.text(_ALPHABET, max_size=14))
def test_display_name_class_is_the_token_lws_language(text):
    from softswitch.sip.headers import _DISPLAY_TOKENS
    assert bool(_DISPLAY_TOKENS.match(text)) == bool(_OLD_DISPLAY.match(text))


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from([";a", ";b=c", ' ; q = "x\\"y"', ';t="', "=", " ", "\\", ";[::1]", '"', ";a=b;c"]),
                max_size=8).map("".join) | st.text(_ALPHABET, max_size=20))
def test_params_run_matches_the_item_loop(text):
    try:
        old = _old_params(text)
    except SipError:
        old = None
    try:
        new = parse_params(text)
    except SipError:
        new = None
    assert new == old


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(['a=b', ', ', 'c="d,e"', ' x = "\\"" ', 'q=', ',', '"', 'k', '=', ' ']),
                max_size=8).map("".join) | st.text(_ALPHABET, max_size=20))
def test_auth_params_match_the_tiling_findall(text):
    old = _old_auth(text.strip())
    if old is not None and len({n for n, _ in old}) != len(old):
        old = None                          # a repeated name is refused either way
    try:
        new = parse_authorization("Digest " + text)[1]
    except AuthParseError:
        new = None
    assert (new is None) == (old is None), (text, old, new)
    if new is not None:
        assert list(new) == [n for n, _ in old]


def _old_split_commas(value: str) -> list[str]:
    if "," not in value:
        return [value.strip()]
    out, start, i, n = [], 0, 0, len(value)
    quoted = angle = False
    while i < n:
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif c == "," and not angle:
            out.append(value[start:i].strip())
            start = i + 1
        i += 1
    out.append(value[start:].strip())
    return out


def _old_read_quoted(text: str) -> str | None:
    out, i, n = [], 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out) + f"|{i + 1}"
        out.append(c)
        i += 1
    return None


@settings(max_examples=1500, deadline=None)
@given(st.text(st.sampled_from(list('a ,"\\<>;\t\u00a0\n')), max_size=30))
def test_comma_split_and_quoted_strings_are_the_old_per_character_loops(text):
    from softswitch.sip.headers import read_quoted, split_commas
    assert split_commas(text) == _old_split_commas(text)
    try:
        content, end = read_quoted('"' + text, 0)
        new = f"{content}|{end}"
    except SipError:
        new = None
    assert new == _old_read_quoted('"' + text)


def test_long_lists_are_refused_not_built():
    from softswitch.sip.headers import MAX_ELEMENTS, split_commas
    assert len(split_commas("a," * (MAX_ELEMENTS - 1) + "a")) == MAX_ELEMENTS
    assert len(split_commas('"' + "," * 5000 + '"')) == 1                   # quoted commas do not count
    for value in ("a," * MAX_ELEMENTS + "a", "<sip:a@b>;" + "," * 5000):
        with pytest.raises(SipError) as err:
            split_commas(value)
        assert err.value.status == 400
