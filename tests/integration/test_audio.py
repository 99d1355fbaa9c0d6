"""Audio end to end: a queued caller hears music on hold; once connected, customer and agent hear each other
through the switch's media engine (tones checked by frequency), and the call is recorded in stereo."""

from __future__ import annotations

import time
import wave

import numpy as np
import pjsua2
import pytest

from tests.support.cc import Api, cc_node, wait_for
from tests.integration.test_calls import agent_phone, connected, customer, ended


@pytest.fixture(scope="module")
def phones():
    from tools.softphone import Softphones
    return Softphones.get()


def segment(path: str, start: float, stop: float | None = None, channel: int | None = None):
    with wave.open(path, "rb") as w:
        rate, ch = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    if ch > 1:
        data = data.reshape(-1, ch)[:, channel or 0]
    total = data.size / rate
    a = int((start if start >= 0 else total + start) * rate)
    b = int((stop if stop is not None and stop >= 0 else total + (stop or 0)) * rate)
    seg = data[a:b]
    rms = float(np.sqrt(np.mean(seg ** 2))) if seg.size else 0.0
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size))) if seg.size else np.zeros(2)
    freq = float(np.fft.rfftfreq(seg.size, 1 / rate)[int(np.argmax(spec[1:])) + 1]) if seg.size > 2 else 0.0
    return rms, freq


def test_music_on_hold_then_two_way_audio_and_recording(phones, tmp_path):
    with cc_node(tmp_path, record=True) as (nt, port, http):
        agent = agent_phone(phones, "70001", port, tone_hz=1000)
        cust = phones.account("5552000", "unused", f"127.0.0.1:{port}", domain="cc.test", register=False,
                              auto_answer=False, tone_hz=440)
        try:
            api = Api(http)
            api.login("acme_alice")
            api.call("POST", "/api/agents/me/sign-in", expect=200)
            api.call("POST", "/api/agents/me/state", {"state": "busy", "reason": "finishing notes"}, expect=200)
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: connected(rec), 5)
            phones.pump(2.0)                                   # waiting in the queue
            api.call("POST", "/api/agents/me/state", {"state": "idle"}, expect=200)
            assert phones.wait(lambda: agent.calls and connected(agent.calls[-1]), 8)
            phones.pump(2.5)                                   # talking
            rec.call.hangup(pjsua2.CallOpParam(True))
            assert phones.wait(lambda: ended(rec) and ended(agent.calls[-1]), 5)
            phones.pump(0.3)
            moh_rms, moh_freq = segment(rec.recording, 0.3, 1.8)
            assert moh_rms > 200 and 200 < moh_freq < 600, (moh_rms, moh_freq)
            rms, freq = segment(rec.recording, -1.5, -0.2)
            assert rms > 300 and abs(freq - 1000) < 30, (rms, freq)      # the customer hears the agent
            rms, freq = segment(agent.calls[-1].recording, -1.5, -0.2)
            assert rms > 300 and abs(freq - 440) < 30, (rms, freq)       # the agent hears the customer
            stats = nt.call(lambda: dict(nt.node.media_engine.stats))
            assert stats["ticks"] > 100
            files = list((tmp_path / "recordings").glob("*.wav"))
            assert len(files) == 1
            with wave.open(str(files[0]), "rb") as w:
                assert (w.getnchannels(), w.getframerate()) == (2, 8000)
            assert abs(segment(str(files[0]), 0.3, -0.3, channel=0)[1] - 440) < 30     # left: customer
            assert abs(segment(str(files[0]), 0.3, -0.3, channel=1)[1] - 1000) < 30    # right: agent
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(agent)


def test_queued_caller_hears_entry_announcement_then_position_and_wait(phones, tmp_path):
    from pathlib import Path
    welcome = Path(__file__).resolve().parents[2] / "config" / "prompts" / "welcome.wav"
    with cc_node(tmp_path, support_extra=f", announce: {{entry: {welcome}, every: 5s}}") as (nt, port, http):
        agent = agent_phone(phones, "70001", port, tone_hz=1000)
        cust = phones.account("5552001", "unused", f"127.0.0.1:{port}", domain="cc.test", register=False,
                              auto_answer=False)
        try:
            api = Api(http)
            api.login("acme_alice")
            api.call("POST", "/api/agents/me/sign-in", expect=200)
            api.call("POST", "/api/agents/me/state", {"state": "busy", "reason": "notes"}, expect=200)
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: connected(rec), 5)
            assert wait_for(lambda: api.call("GET", "/api/queues/support")[1]["waiting"] == 1, 30, phones)
            # the offer waits for the entry announcement (2.74 s): nothing is queued while it plays (read on the
            # node's own clock: a busy host can only make the wait longer)
            (started,) = nt.call(lambda: [c.started for c in nt.node.calls.calls.values()])
            (enqueued,) = nt.call(lambda: [e.at for e in nt.node.center.events if e.kind == "enqueue"])
            assert enqueued - started >= 2.7, enqueued - started
            assert wait_for(lambda: nt.call(lambda: nt.node.calls.stats["announcements"]) == 1, 30, phones)
            phones.pump(1.0)
            rec.call.hangup(pjsua2.CallOpParam(True))
            assert phones.wait(lambda: ended(rec), 5)
            phones.pump(0.3)
            speech_rms, _ = segment(rec.recording, 0.2, 1.0)
            assert speech_rms > 300                      # the welcome prompt
            assert agent.calls == []
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(agent)


def tone_levels(path: str, start: float, stop: float, freqs=(440, 1000, 2000)) -> dict[int, float]:
    """Amplitude of each test tone in a stretch of a phone's recording."""
    with wave.open(path, "rb") as w:
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    seg = data[int(start * rate):int(stop * rate)]
    n = max(1, seg.size)
    return {f: 2 * np.sqrt(abs(np.dot(seg, np.exp(-2j * np.pi * f / rate * np.arange(seg.size))) ** 2)) / n
            for f in freqs}


def test_supervisor_listen_whisper_barge_and_intercept(phones, tmp_path):
    with cc_node(tmp_path, wrap_up="0s") as (nt, port, http):
        agent = agent_phone(phones, "70001", port, tone_hz=1000)
        sup_phone = agent_phone(phones, "70004", port, tone_hz=2000)
        cust = phones.account("5552002", "unused", f"127.0.0.1:{port}", domain="cc.test", register=False,
                              auto_answer=False, tone_hz=440)
        try:
            alice = Api(http)
            alice.login("acme_alice")
            alice.call("POST", "/api/agents/me/sign-in", expect=200)
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: agent.calls and connected(agent.calls[-1]), 8)
            sam = Api(http)
            sam.login("acme_sam")
            assert alice.call("GET", "/api/calls")[0] == 403
            (call,) = sam.call("GET", "/api/calls", expect=200)[1]
            assert call["agent_id"] == "1001"
            marks = {}
            path = f"/api/calls/{call['id']}/supervise"
            assert sam.call("POST", path, {"mode": "listen"}, expect=200)[1]["mode"] == "calling"
            assert phones.wait(lambda: sup_phone.calls and connected(sup_phone.calls[-1]), 5)
            marks["listen"] = time.monotonic()
            phones.pump(1.5)
            sam.call("POST", path, {"mode": "whisper"}, expect=200)
            marks["whisper"] = time.monotonic()
            phones.pump(1.5)
            sam.call("POST", path, {"mode": "barge"}, expect=200)
            marks["barge"] = time.monotonic()
            phones.pump(1.5)
            sam.call("POST", path, {"mode": "intercept"}, expect=200)
            marks["intercept"] = time.monotonic()
            assert phones.wait(lambda: ended(agent.calls[-1]), 3)            # the agent is released
            assert wait_for(lambda: alice.state()["state"] == "idle", 3, phones)
            phones.pump(1.5)
            assert connected(rec)                                              # the customer stays
            rec.call.hangup(pjsua2.CallOpParam(True))
            assert phones.wait(lambda: ended(rec) and ended(sup_phone.calls[-1]), 5)
            phones.pump(0.3)
            c0, a0, s0 = rec.answered_at, agent.calls[-1].answered_at, sup_phone.calls[-1].answered_at

            def levels(record, t0, mode):
                start = marks[mode] - t0 + 0.4
                return tone_levels(record.recording, start, start + 0.9)
            listen_s = levels(sup_phone.calls[-1], s0, "listen")
            assert listen_s[440] > 1000 and listen_s[1000] > 1000                 # supervisor hears both
            assert levels(rec, c0, "listen")[2000] < 300                          # nobody hears the supervisor
            assert levels(agent.calls[-1], a0, "listen")[2000] < 300
            assert levels(agent.calls[-1], a0, "whisper")[2000] > 1000            # whisper: agent only
            assert levels(rec, c0, "whisper")[2000] < 300
            assert levels(rec, c0, "barge")[2000] > 1000                          # barge: everyone
            assert levels(agent.calls[-1], a0, "barge")[2000] > 1000
            after = levels(rec, c0, "intercept")
            assert after[2000] > 1000 and after[1000] < 300                       # customer now with supervisor
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(sup_phone)
            phones.remove(agent)


def contains_prompt(recording: str, prompt: str, start: float, stop: float) -> float:
    """Peak normalised cross-correlation of a shipped prompt inside a stretch of a phone's recording."""
    from pathlib import Path
    from media.wav import read_wav, resample
    with wave.open(recording, "rb") as w:
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    seg = resample(data[int(start * rate):int(stop * rate)], rate, 8000)
    ref = read_wav(str(Path(__file__).resolve().parents[2] / "config" / "prompts" / f"{prompt}.wav"))
    ref = ref.astype(np.float64)[:4000]
    if seg.size < ref.size:
        return 0.0
    corr = np.correlate(seg, ref, mode="valid")
    energy = np.sqrt(np.convolve(seg ** 2, np.ones(ref.size), mode="valid")) * np.linalg.norm(ref)
    return float(np.max(corr / np.maximum(energy, 1e-9)))


def test_position_announcement_is_heard_in_the_received_audio(phones, tmp_path):
    with cc_node(tmp_path, support_extra=", announce: {every: 5s}") as (nt, port, http):
        agent = agent_phone(phones, "70001", port)
        cust = phones.account("5552003", "unused", f"127.0.0.1:{port}", domain="cc.test", register=False,
                              auto_answer=False)
        try:
            api = Api(http)
            api.login("acme_alice")
            api.call("POST", "/api/agents/me/sign-in", expect=200)
            api.call("POST", "/api/agents/me/state", {"state": "busy", "reason": "notes"}, expect=200)
            rec = cust.call(f"sip:4001@127.0.0.1:{port}")
            assert phones.wait(lambda: connected(rec), 5)
            assert wait_for(lambda: nt.call(lambda: nt.node.calls.stats["announcements"]) == 1, 8, phones)
            phones.pump(3.0)
            rec.call.hangup(pjsua2.CallOpParam(True))
            assert phones.wait(lambda: ended(rec), 5)
            phones.pump(0.3)
            heard = contains_prompt(rec.recording, "caller_number", 4.0, 9.0)
            before = contains_prompt(rec.recording, "caller_number", 0.2, 4.5)   # hold music only
            assert heard > 0.6 and before < 0.4, (heard, before)
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(agent)


def test_ivr_menu_by_rfc4733_digits_reaches_either_queue(phones, tmp_path):
    with cc_node(tmp_path) as (nt, port, http):
        alice = agent_phone(phones, "70001", port)        # support
        carol = agent_phone(phones, "70003", port)        # sales
        cust = phones.account("5552004", "unused", f"127.0.0.1:{port}", domain="cc.test", register=False,
                              auto_answer=False)
        try:
            for account in ("acme_alice", "acme_carol"):
                api = Api(http)
                api.login(account)
                api.call("POST", "/api/agents/me/sign-in", expect=200)
            for digit, phone, queue in (("1", alice, "support"), ("2", carol, "sales")):
                rec = cust.call(f"sip:4009@127.0.0.1:{port}")
                assert phones.wait(lambda: connected(rec), 5)
                phones.pump(0.5)
                rec.call.dialDtmf(digit)                   # RFC 4733 events in the RTP stream
                assert phones.wait(lambda: phone.calls and connected(phone.calls[-1]), 8), digit
                assert phone.calls[-1].invite_headers.get("x-cc-queue") == queue
                rec.call.hangup(pjsua2.CallOpParam(True))
                assert phones.wait(lambda: ended(phone.calls[-1]), 5)
        finally:
            phones.remove(cust, unregister=False)
            phones.remove(alice)
            phones.remove(carol)
