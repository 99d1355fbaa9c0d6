"""Each core package has one error root, split like h11's: the peer's fault (RemoteProtocolError, with the
status to answer) and our bug (LocalProtocolError). The fuzz invariant: reading any bytes a peer can send
either succeeds or raises the package's remote error, never anything else."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import acd.errors
import media.errors
import softswitch.sip.errors as sip_errors
from acd import Acd, AcdError, Agent, AgentStateError, QueueSpec
from media.dtmf import DtmfError, DtmfReceiver, parse_event, tone_packets
from media.rtp import RtpError, build_rtp, parse_rtcp, parse_rtp
from media.wav import WavError, read_wav_raw, wav_bytes
from softswitch.sip.digest import AuthParseError, make_authorization, parse_authorization
from softswitch.sip.errors import SipError
from softswitch.sip.framing import Keepalive, StreamFramer
from softswitch.sip.parser import parse_message
from softswitch.sip.transaction import TransactionStateError

# --- the hierarchy --------------------------------------------------------------------------------------------

# (class, its side, the base it always had: callers that catch that base still catch it)
KINDS = [
    (SipError, sip_errors.RemoteProtocolError, ValueError),
    (AuthParseError, sip_errors.RemoteProtocolError, ValueError),
    (TransactionStateError, sip_errors.LocalProtocolError, RuntimeError),
    (RtpError, media.errors.RemoteProtocolError, ValueError),
    (DtmfError, media.errors.RemoteProtocolError, ValueError),
    (WavError, media.errors.RemoteProtocolError, ValueError),
    (AcdError, acd.errors.LocalProtocolError, Exception),
    (AgentStateError, acd.errors.LocalProtocolError, Exception),
]
ROOTS = {sip_errors: sip_errors.ProtocolError, media.errors: media.errors.ProtocolError,
         acd.errors: acd.errors.ProtocolError}


@pytest.mark.parametrize("cls, side, base", KINDS, ids=[k[0].__name__ for k in KINDS])
def test_every_error_has_one_side_under_its_package_root(cls, side, base):
    module = __import__(side.__module__, fromlist=["_"])
    assert issubclass(cls, side) and issubclass(cls, ROOTS[module]) and issubclass(cls, base)
    other = "LocalProtocolError" if side.__name__ == "RemoteProtocolError" else "RemoteProtocolError"
    assert not issubclass(cls, getattr(module, other, ()))


def test_the_remote_side_carries_the_status_to_answer():
    assert SipError(420, "bad extension").status == 420
    assert AuthParseError("no auth scheme").status == 400
    assert RtpError("short").status == 400
    assert str(AuthParseError("no auth scheme")) == "no auth scheme"      # messages unchanged


def test_misuse_of_the_cores_is_the_local_side():
    with pytest.raises(media.errors.LocalProtocolError):
        build_rtp(200, 0, 0, 0)
    with pytest.raises(media.errors.LocalProtocolError):
        list(tone_packets("x", 0))
    agent = Agent("a1", "1001", {"sales": 0})
    engine = Acd([QueueSpec("sales")], [agent], lambda: 0.0)
    with pytest.raises(acd.errors.LocalProtocolError):
        engine.agent("nobody")
    with pytest.raises(acd.errors.LocalProtocolError):
        agent.apply("answered", 0.0)


# --- SIP: any bytes parse or are the peer's fault ---------------------------------------------------------------

INVITE = (b"INVITE sip:2001@example.com SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
          b"Max-Forwards: 70\r\nTo: <sip:2001@example.com>\r\n"
          b"From: \"Alice\" <sip:1001@example.com>;tag=1928301774\r\n"
          b"Call-ID: a84b4c76e66710@10.0.0.1\r\nCSeq: 314159 INVITE\r\n"
          b"Contact: <sip:1001@10.0.0.1:5060>;expires=60, \"B\" <sip:b@h>;q=0.5\r\n"
          b"Authorization: Digest username=\"1001\", realm=\"example.com\", nonce=\"abc\", uri=\"sip:x\"\r\n"
          b"Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n")


def _read_sip(data: bytes) -> None:
    """Parse as a datagram and as a stream, and read every header accessor of what parses."""
    for datagram in (True, False):
        try:
            m = parse_message(data, datagram=datagram)
        except sip_errors.RemoteProtocolError as err:
            assert 400 <= err.status < 600
            continue
        m.serialize()
        for name in ("vias", "top_via", "from_", "to", "call_id", "cseq", "contacts"):
            try:
                getattr(m, name)
            except sip_errors.RemoteProtocolError as err:
                assert 400 <= err.status < 600
        for value in m.get_all("Authorization"):
            try:
                parse_authorization(value)
            except sip_errors.RemoteProtocolError:
                pass
    for piece in StreamFramer(max_message=2000).feed(data):
        assert isinstance(piece, (sip_errors.RemoteProtocolError, Keepalive)) or hasattr(piece, "serialize")


@given(st.binary(max_size=300))
def test_any_bytes_are_a_sip_message_or_the_peers_fault(data):
    _read_sip(data)


@settings(max_examples=300)
@given(st.data())
def test_a_mutated_invite_is_a_sip_message_or_the_peers_fault(data):
    raw = bytearray(INVITE)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.integers(0, 2))
        if op == 0:
            raw[i] = data.draw(st.sampled_from(b"\x00\r\n ;,:<>\"=@\\%\x80\xff0aZ"))
        elif op == 1:
            del raw[i]
        else:
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=4))
    _read_sip(bytes(raw))


@given(st.text(max_size=120))
def test_any_credentials_or_challenge_parse_or_are_the_peers_fault(text):
    for call in (lambda: parse_authorization(text),
                 lambda: make_authorization(text, "REGISTER", "sip:example.com", "1001", "secret")):
        try:
            call()
        except sip_errors.RemoteProtocolError as err:
            assert err.status == 400


# --- media: RTP, RTCP, RFC 4733 events and WAV files ---------------------------------------------------------

@given(st.binary(max_size=120))
def test_any_bytes_are_rtp_and_rtcp_or_the_peers_fault(data):
    for parse in (parse_rtp, parse_rtcp):
        try:
            parse(data)
        except media.errors.RemoteProtocolError:
            pass


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=8), st.booleans()), max_size=12))
def test_any_event_payloads_are_digits_or_the_peers_fault(packets):
    rx = DtmfReceiver()
    for ts, payload, marker in packets:
        try:
            parse_event(payload)
        except media.errors.RemoteProtocolError:
            pass
        try:
            digit = rx.feed(ts, payload, marker)
        except media.errors.RemoteProtocolError:
            continue
        assert digit is None or isinstance(digit, str)


def _wav(tag: int, channels: int, rate: int, align: int, bits: int, body: bytes) -> bytes:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


@given(st.binary(max_size=200))
def test_any_bytes_are_a_wav_file_or_the_peers_fault(data):
    for blob in (data, wav_bytes(np.zeros(8, np.int16))[:44] + data):
        try:
            read_wav_raw(blob)
        except media.errors.RemoteProtocolError:
            pass


@given(st.sampled_from([1, 3, 6, 7, 0xFFFE, 2]), st.integers(0, 9), st.integers(0, 96000),
       st.integers(0, 9), st.sampled_from([0, 8, 16, 24, 32, 64, 12]), st.binary(max_size=64))
def test_any_wav_header_is_read_or_the_peers_fault(tag, channels, rate, align, bits, body):
    try:
        samples, got_rate = read_wav_raw(_wav(tag, channels, rate, align, bits, body))
    except media.errors.RemoteProtocolError:
        return
    assert samples.shape[1] == channels and got_rate == rate
