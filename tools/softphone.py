"""A scriptable softphone on PJSIP's Python binding (pjsua2), for tests and for trying a node by hand.

One pjsua2 library per process: `Softphones.get()` creates it with a null audio device and no worker
threads, so events are handled only inside `pump()` / `wait()` on the caller's thread. Phones send a tone
and record what they hear, so tests can check audio by energy and frequency.

    phones = Softphones.get()
    alice = phones.account("70001", "secret", "127.0.0.1:5060", transport="udp", auto_answer=True)
    phones.wait(lambda: alice.registered, 5)
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import wave
from dataclasses import dataclass, field

import pjsua2 as pj


@dataclass
class CallRecord:
    """What a phone saw of one call."""
    call: "PhoneCall"
    incoming: bool
    invite_headers: dict = field(default_factory=dict)
    states: list = field(default_factory=list)      # (monotonic time, state name, last status code)
    answered_at: float | None = None
    offered_at: float | None = None
    ended_at: float | None = None
    recording: str | None = None
    dtmf: list = field(default_factory=list)

    @property
    def state(self) -> str:
        return self.states[-1][1] if self.states else "NULL"

    @property
    def last_code(self) -> int:
        return self.states[-1][2] if self.states else 0


class PhoneCall(pj.Call):
    def __init__(self, account: "PhoneAccount", call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        self.account = account
        self.record = CallRecord(self, incoming=call_id != pj.PJSUA_INVALID_ID)
        self._recorder: pj.AudioMediaRecorder | None = None
        self._tone: pj.ToneGenerator | None = None

    def onCallState(self, prm) -> None:
        info = self.getInfo()
        name = info.stateText
        self.record.states.append((time.monotonic(), name, info.lastStatusCode))
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.record.answered_at is None:
            self.record.answered_at = time.monotonic()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.record.ended_at = time.monotonic()
            self._stop_media()

    def onCallMediaState(self, prm) -> None:
        info = self.getInfo()
        for i, m in enumerate(info.media):
            if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                aud = self.getAudioMedia(i)
                if self._recorder is None:
                    path = os.path.join(self.account.phones.workdir,
                                        f"{self.account.user}-{len(self.account.calls)}-{self.getId()}.wav")
                    self._recorder = pj.AudioMediaRecorder()
                    self._recorder.createRecorder(path)
                    self.record.recording = path
                    aud.startTransmit(self._recorder)
                if self._tone is None and self.account.tone_hz:
                    self._tone = pj.ToneGenerator()
                    self._tone.createToneGenerator()
                    desc = pj.ToneDesc()
                    desc.freq1 = self.account.tone_hz
                    desc.freq2 = 0
                    desc.on_msec = 1000
                    desc.off_msec = 0
                    descs = pj.ToneDescVector()
                    descs.append(desc)
                    self._tone.play(descs, True)
                    self._tone.startTransmit(aud)

    def onDtmfDigit(self, prm) -> None:
        self.record.dtmf.append(prm.digit)

    def _stop_media(self) -> None:
        self._recorder = None
        if self._tone is not None:
            try:
                self._tone.stop()
            except pj.Error:
                pass
            self._tone = None


class PhoneAccount(pj.Account):
    def __init__(self, phones: "Softphones", user: str, auto_answer: bool, tone_hz: int) -> None:
        super().__init__()
        self.phones = phones
        self.user = user
        self.auto_answer = auto_answer
        self.tone_hz = tone_hz
        self.reg_codes: list[int] = []
        self.registered = False
        self.calls: list[CallRecord] = []
        self._pending_answers: list[tuple[float, PhoneCall]] = []
        self.answer_code = 200
        self.ignore_calls = False

    def onRegState(self, prm) -> None:
        self.reg_codes.append(prm.code)
        info = self.getInfo()
        self.registered = bool(info.regIsActive) and prm.code // 100 == 2

    def onIncomingCall(self, prm) -> None:
        call = PhoneCall(self, prm.callId)
        call.record.invite_headers = _headers(prm.rdata.wholeMsg)
        call.record.offered_at = time.monotonic()
        self.calls.append(call.record)
        self.phones.keep.append(call)
        if self.ignore_calls:
            op = pj.CallOpParam()
            op.statusCode = 180
            call.answer(op)
            return
        op = pj.CallOpParam()
        op.statusCode = 180
        call.answer(op)
        if self.auto_answer:
            delay = answer_after(call.record.invite_headers)
            self._pending_answers.append((time.monotonic() + (delay if delay is not None else 0.0), call))

    def poll(self) -> None:
        now = time.monotonic()
        due = [c for t, c in self._pending_answers if t <= now]
        self._pending_answers = [(t, c) for t, c in self._pending_answers if t > now]
        for call in due:
            if call.record.ended_at is None:
                op = pj.CallOpParam()
                op.statusCode = self.answer_code
                try:
                    call.answer(op)
                except pj.Error:
                    pass

    def call(self, uri: str) -> CallRecord:
        c = PhoneCall(self)
        op = pj.CallOpParam(True)
        self.calls.append(c.record)
        self.phones.keep.append(c)
        c.makeCall(uri, op)
        return c.record


def _headers(whole: str) -> dict:
    out: dict[str, str] = {}
    for line in whole.split("\r\n")[1:]:
        if not line:
            break
        name, _, value = line.partition(":")
        out[name.strip().lower()] = value.strip()
    return out


def answer_after(headers: dict) -> float | None:
    """The auto-answer delay an INVITE asks for: Call-Info ...;answer-after=N (0 if only Alert-Info asks)."""
    m = re.search(r"answer-after=(\d+(?:\.\d+)?)", headers.get("call-info", ""))
    if m:
        return float(m.group(1))
    if "alert-autoanswer" in headers.get("alert-info", "") or "auto answer" in headers.get("alert-info", ""):
        return 0.0
    return None


class Softphones:
    _instance: "Softphones | None" = None

    @classmethod
    def get(cls) -> "Softphones":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def __init__(self) -> None:
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.maxCalls = 64
        level = int(os.environ.get("SOFTPHONE_LOG", "1"))     # 5 shows every SIP message
        cfg.logConfig.level = level
        cfg.logConfig.consoleLevel = level
        cfg.medConfig.noVad = True
        self.ep.libInit(cfg)
        self.transports: dict[str, int] = {}
        for name, kind in (("udp", pj.PJSIP_TRANSPORT_UDP), ("tcp", pj.PJSIP_TRANSPORT_TCP)):
            tcfg = pj.TransportConfig()
            tcfg.port = 0
            tcfg.boundAddress = "127.0.0.1"
            self.transports[name] = self.ep.transportCreate(kind, tcfg)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        # G.711 only: what the switch speaks; keeps codec negotiation deterministic.
        for c in self.ep.codecEnum2():
            prio = 255 if c.codecId.startswith(("PCMU", "PCMA")) else 0
            self.ep.codecSetPriority(c.codecId, prio)
        self.accounts: list[PhoneAccount] = []
        self.keep: list = []
        self.workdir = tempfile.mkdtemp(prefix="softphones-")

    def account(self, user: str, password: str, server: str, *, transport: str = "udp", auto_answer: bool = True,
                tone_hz: int = 0, expires: int = 300, domain: str | None = None, register: bool = True,
                instance: str | None = None) -> PhoneAccount:
        cfg = pj.AccountConfig()
        dom = domain or server
        cfg.idUri = f"sip:{user}@{dom}"
        cfg.regConfig.registrarUri = f"sip:{server};transport={transport}"
        cfg.regConfig.timeoutSec = expires
        cfg.regConfig.registerOnAdd = register
        cfg.regConfig.retryIntervalSec = 0
        cfg.sipConfig.transportId = self.transports[transport]
        cfg.sipConfig.proxies.append(f"sip:{server};transport={transport};lr")
        cred = pj.AuthCredInfo("digest", "*", user, 0, password)
        cfg.sipConfig.authCreds.append(cred)
        cfg.natConfig.contactRewriteUse = 0
        cfg.natConfig.viaRewriteUse = 0
        cfg.natConfig.sdpNatRewriteUse = 0
        cfg.natConfig.sipOutboundUse = 0
        cfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        cfg.mediaConfig.transportConfig.port = 0      # any free port: parallel phones and nodes never collide
        acc = PhoneAccount(self, user, auto_answer, tone_hz)
        acc.create(cfg, True)
        self.accounts.append(acc)
        return acc

    def pump(self, seconds: float = 0.05) -> None:
        end = time.monotonic() + seconds
        while True:
            self.ep.libHandleEvents(10)
            for a in self.accounts:
                a.poll()
            if time.monotonic() >= end:
                return

    def wait(self, predicate, timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.pump(0.02)
        return bool(predicate())

    def remove(self, acc: PhoneAccount, unregister: bool = True) -> None:
        if unregister and acc.registered:
            try:
                acc.setRegistration(False)
            except pj.Error:
                pass
            self.wait(lambda: not acc.registered, 3)
        self.ep.hangupAllCalls()
        self.pump(0.1)
        acc.shutdown()
        self.accounts.remove(acc)


def wav_energy(path: str, skip: float = 0.2) -> tuple[float, float]:
    """(RMS level, dominant frequency in Hz) of a mono 16-bit WAV recorded by a phone."""
    import numpy as np
    with wave.open(path, "rb") as w:
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    data = data[int(skip * rate):]
    if data.size < 160:
        return 0.0, 0.0
    rms = float(np.sqrt(np.mean(data ** 2)))
    spectrum = np.abs(np.fft.rfft(data * np.hanning(data.size)))
    freq = float(np.fft.rfftfreq(data.size, 1 / rate)[int(np.argmax(spectrum[1:])) + 1])
    return rms, freq


def shutdown() -> None:
    """Tear the library down while the Python call objects still exist (else pjsua asserts at exit)."""
    phones = Softphones._instance
    if phones is None:
        return
    try:
        phones.ep.hangupAllCalls()
        phones.pump(0.2)
    except pj.Error:
        pass
    import gc
    for acc in list(phones.accounts):
        for rec in acc.calls:
            rec.call = None
        try:
            acc.shutdown()
        except pj.Error:
            pass
    phones.accounts.clear()
    phones.keep.clear()
    gc.collect()       # call objects go while the library can still forget them
    phones.ep.libDestroy()
    Softphones._instance = None
