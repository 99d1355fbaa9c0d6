"""Audio end to end: a queued caller hears music on hold; once connected, customer and agent hear each other
through the switch's media engine (tones checked by frequency), and the call is recorded in stereo."""

from __future__ import annotations

import time
import wave

import numpy as np
import pjsua2
import pytest

from tests.cc import Api, cc_node, wait_for
from tests.test_calls import agent_phone, connected, customer, ended


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
    welcome = Path(__file__).resolve().parent.parent / "config" / "prompts" / "welcome.wav"
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
            # the offer waits for the entry announcement: nothing is queued while it plays
            phones.pump(0.8)
            assert api.call("GET", "/api/queues/support")[1]["entered"] == 0
            assert wait_for(lambda: api.call("GET", "/api/queues/support")[1]["waiting"] == 1, 4, phones)
            assert wait_for(lambda: nt.call(lambda: nt.node.calls.stats["announcements"]) == 1, 7, phones)
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
