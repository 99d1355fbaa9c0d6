"""A re-INVITE that adds a stream to an anchored call (a browser turning a voice call into video) gets an answer
with as many m= lines as its offer (RFC 3264 s. 6), the added one refused with port 0, so the call goes on."""

from __future__ import annotations

from hypothesis import given, strategies as st

from softswitch.calls import sessions

OURS = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 20000 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:0\r\na=sendrecv\r\na=setup:actpass\r\n")
AUDIO = b"m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:0\r\na=sendrecv\r\na=setup:active\r\n"
VIDEO = b"m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\na=rtpmap:96 VP8/90000\r\n"
HEAD = b"v=0\r\no=- 2 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"


def m_lines(sdp: bytes) -> list[bytes]:
    return [ln for ln in sdp.split(b"\r\n") if ln.startswith(b"m=")]


def test_video_added_to_a_voice_call_is_refused_and_the_audio_answered_as_before():
    answer = sessions.hold_answer(OURS, HEAD + AUDIO + VIDEO, webrtc=True)
    assert m_lines(answer) == [b"m=audio 20000 UDP/TLS/RTP/SAVPF 111 0", b"m=video 0 UDP/TLS/RTP/SAVPF 96"]
    video = answer.split(b"m=video", 1)[1]
    assert b"a=mid:1" in video and b"a=rtpmap" not in video        # refused: nothing negotiated for it
    assert b"a=setup:passive" in answer and answer.endswith(b"\r\n")


def test_an_offer_with_the_streams_we_have_is_answered_unchanged():
    assert sessions.refuse_added_media(OURS, HEAD + AUDIO) == OURS
    assert sessions.refuse_added_media(OURS, b"") == OURS


@given(st.lists(st.sampled_from([b"video", b"application", b"audio", b"text"]), max_size=5),
       st.sampled_from([b"\r\n", b"\n"]))
def test_the_answer_has_one_m_line_per_offered_stream_in_order(kinds, eol):
    extra = b"".join(b"m=" + k + b" 9 RTP/AVP 96\r\na=mid:x" + k + b"\r\n" for k in kinds)
    offer = (HEAD + AUDIO + extra).replace(b"\r\n", eol)
    answer = sessions.refuse_added_media(OURS, offer)
    assert [m.split(b" ")[0] for m in m_lines(answer)] == [b"m=audio", *(b"m=" + k for k in kinds)]
    assert all(m.split(b" ")[1] == b"0" for m in m_lines(answer)[1:])
    assert answer.startswith(OURS.rstrip(b"\r\n"))
