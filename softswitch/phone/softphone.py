"""A scriptable softphone on PJSIP's Python binding (pjsua2): `softswitch phone` and the tests use it.

One pjsua2 library per process: `Softphones.get()` creates it with a null audio device and no worker
threads, so events are handled only inside `pump()` / `wait()` on the caller's thread. Phones send a tone or
a WAV file and record what they hear, so tests can check audio by energy and frequency.

    phones = Softphones.get()
    alice = phones.account("70001", "secret", "127.0.0.1:5060", transport="udp", auto_answer=True)
    phones.wait(lambda: alice.registered, 5)

`on_event(kind, fields)` on an account is told of registrations, calls and digits as they happen (the command
line prints them); nothing else in here writes anywhere but the recordings.
"""

from __future__ import annotations

import gc
import os
import re
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field

import numpy as np
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
    reason: str = ""
    hung_up_here: bool = False
    transfer_status: list = field(default_factory=list)   # (code, final) of each NOTIFY to our REFER

    @property
    def state(self) -> str:
        return self.states[-1][1] if self.states else "NULL"

    @property
    def last_code(self) -> int:
        return self.states[-1][2] if self.states else 0

    def hangup(self) -> None:
        """Hang up from this side (CANCEL while ringing out, 603 to an unanswered offer, BYE when connected)."""
        if self.ended_at is not None or self.call is None:
            return
        self.hung_up_here = True
        try:
            self.call.hangup(pj.CallOpParam(True))
        except pj.Error:
            pass

    def send_dtmf(self, digits: str) -> bool:
        """RFC 4733 telephone-events on the call's audio stream."""
        try:
            self.call.dialDtmf(digits)
            return True
        except pj.Error:
            return False


class PhoneCall(pj.Call):
    def __init__(self, account: "PhoneAccount", call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        # The collector must never run pjsua's Call destructor: it may do so in any thread, or after the library
        # is gone, and pjsua then asserts and aborts the whole process. The library hangs calls up itself.
        self.thisown = False
        self.account = account
        self.record = CallRecord(self, incoming=call_id != pj.PJSUA_INVALID_ID)
        self._recorder: pj.AudioMediaRecorder | None = None
        self._tone: pj.ToneGenerator | None = None
        self._player: pj.AudioMediaPlayer | None = None

    def onCallState(self, prm) -> None:
        info = self.getInfo()
        name = info.stateText
        self.record.states.append((time.monotonic(), name, info.lastStatusCode))
        self.record.reason = info.lastReason
        if info.state == pj.PJSIP_INV_STATE_EARLY and not self.record.incoming:
            self.account.event("ringing", call=self.getId(), code=info.lastStatusCode)
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.record.answered_at is None:
            self.record.answered_at = time.monotonic()
            self.account.event("connected", call=self.getId(), remote=info.remoteUri)
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.record.ended_at = time.monotonic()
            self._stop_media()
            talk = self.record.ended_at - self.record.answered_at if self.record.answered_at else 0.0
            self.account.event("ended", call=self.getId(), code=info.lastStatusCode, reason=info.lastReason,
                               by="here" if self.record.hung_up_here else "remote", talked=f"{talk:.1f}s")

    def onCallMediaState(self, prm) -> None:
        info = self.getInfo()
        for i, m in enumerate(info.media):
            if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                aud = self.getAudioMedia(i)
                acc = self.account
                if self._recorder is None:
                    path = acc.recording_path(self)
                    self._recorder = pj.AudioMediaRecorder()
                    self._recorder.createRecorder(path)
                    self.record.recording = path
                    aud.startTransmit(self._recorder)
                    if acc.record_to:
                        acc.event("recording", call=self.getId(), file=path)
                if acc.play_wav and self._player is None:
                    self._player = pj.AudioMediaPlayer()
                    self._player.createPlayer(acc.play_wav, 0)          # 0: loop for as long as the call lasts
                    self._player.startTransmit(aud)
                    acc.event("playing", call=self.getId(), file=acc.play_wav)
                elif self._tone is None and acc.tone_hz:
                    self._tone = pj.ToneGenerator()
                    self._tone.createToneGenerator()
                    desc = pj.ToneDesc()
                    desc.freq1 = acc.tone_hz
                    desc.freq2 = 0
                    desc.on_msec = 1000
                    desc.off_msec = 0
                    descs = pj.ToneDescVector()
                    descs.append(desc)
                    self._tone.play(descs, True)
                    self._tone.startTransmit(aud)
                    acc.event("playing", call=self.getId(), tone=f"{acc.tone_hz}Hz")

    def onCallTransferStatus(self, prm) -> None:
        self.record.transfer_status.append((prm.statusCode, prm.finalNotify))
        self.account.event("transfer_status", call=self.getId(), code=prm.statusCode, final=prm.finalNotify)

    def onDtmfDigit(self, prm) -> None:
        self.record.dtmf.append(prm.digit)
        self.account.event("dtmf", call=self.getId(), digit=prm.digit)

    def _stop_media(self) -> None:
        self._recorder = None          # dropping the recorder closes its file with a complete WAV header
        self._player = None
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
        self.play_wav: str | None = None
        self.record_to: str | None = None       # first call's recording; later calls get -2, -3 ... before .wav
        self.answer_delay: float | None = None  # None: as the INVITE's answer-after hint says (at once without)
        self.on_event = None
        self.reg_codes: list[int] = []
        self.reg_reason = ""
        self.registered = False
        self.calls: list[CallRecord] = []
        self._pending_answers: list[tuple[float, PhoneCall]] = []
        self.answer_code = 200
        self.ignore_calls = False

    def event(self, kind: str, **fields) -> None:
        if self.on_event is not None:
            self.on_event(kind, fields)

    def recording_path(self, call: PhoneCall) -> str:
        n = len(self.calls)
        if self.record_to:
            root, ext = os.path.splitext(self.record_to)
            return self.record_to if n <= 1 else f"{root}-{n}{ext or '.wav'}"
        return os.path.join(self.phones.workdir, f"{self.user}-{n}-{call.getId()}.wav")

    def onRegState(self, prm) -> None:
        self.reg_codes.append(prm.code)
        self.reg_reason = prm.reason
        info = self.getInfo()
        was = self.registered
        self.registered = bool(info.regIsActive) and prm.code // 100 == 2
        if self.registered:
            self.event("registered", user=self.user, code=prm.code, expires=f"{prm.expiration}s")
        elif was and prm.code // 100 == 2:
            self.event("unregistered", user=self.user, code=prm.code)
        elif prm.code // 100 != 2:
            self.event("registration_failed", user=self.user, code=prm.code, reason=prm.reason)

    def onIncomingCall(self, prm) -> None:
        call = PhoneCall(self, prm.callId)
        call.record.invite_headers = _headers(prm.rdata.wholeMsg)
        call.record.offered_at = time.monotonic()
        self.calls.append(call.record)
        self.phones.keep.append(call)
        op = pj.CallOpParam()
        op.statusCode = 180
        call.answer(op)
        hint = answer_after(call.record.invite_headers)
        self.event("incoming", call=call.getId(), caller=call.getInfo().remoteUri,
                   answer_after="none" if hint is None else f"{hint:g}s")
        if self.ignore_calls or not self.auto_answer:
            return
        delay = self.answer_delay if self.answer_delay is not None else (hint or 0.0)
        self._pending_answers.append((time.monotonic() + delay, call))

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
                    self.event("answered", call=call.getId(),
                               after=f"{time.monotonic() - call.record.offered_at:.1f}s")
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


class _StderrLog(pj.LogWriter):
    """PJSIP's own log goes to standard error, so standard output carries only the phone's event lines."""

    def write(self, entry) -> None:
        sys.stderr.write(entry.msg if entry.msg.endswith("\n") else entry.msg + "\n")


class Softphones:
    _instance: "Softphones | None" = None

    @classmethod
    def get(cls, bind: str = "127.0.0.1", log_level: int | None = None, log_to_stderr: bool = False) -> "Softphones":
        if cls._instance is None:
            cls._instance = cls(bind, log_level, log_to_stderr)
        return cls._instance

    def __init__(self, bind: str = "127.0.0.1", log_level: int | None = None, log_to_stderr: bool = False) -> None:
        self.bind = bind
        self.ep = pj.Endpoint()
        level = int(os.environ.get("SOFTPHONE_LOG", "1")) if log_level is None else log_level  # 5: every message
        if log_to_stderr:
            # libCreate logs its banner (levels 4 and 5) to file descriptor 1 before any log config applies:
            # point 1 at stderr when the level asked for shows such lines, else at nothing
            saved = os.dup(1)
            quiet = os.open(os.devnull, os.O_WRONLY) if level < 4 else None
            os.dup2(2 if quiet is None else quiet, 1)
            try:
                self.ep.libCreate()
            finally:
                os.dup2(saved, 1)
                os.close(saved)
                if quiet is not None:
                    os.close(quiet)
        else:
            self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.maxCalls = 64
        cfg.logConfig.level = level
        cfg.logConfig.consoleLevel = level
        self._log_writer = None
        if log_to_stderr:
            self._log_writer = _StderrLog()
            cfg.logConfig.writer = self._log_writer
        cfg.medConfig.noVad = True
        self.ep.libInit(cfg)
        self.transports: dict[str, int] = {}
        for name, kind in (("udp", pj.PJSIP_TRANSPORT_UDP), ("tcp", pj.PJSIP_TRANSPORT_TCP)):
            tcfg = pj.TransportConfig()
            tcfg.port = 0
            tcfg.boundAddress = bind
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
                instance: str | None = None, realm: str = "*", play_wav: str | None = None,
                record_to: str | None = None, answer_delay: float | None = None, on_event=None) -> PhoneAccount:
        cfg = pj.AccountConfig()
        dom = domain or server
        cfg.idUri = f"sip:{user}@{dom}"
        cfg.regConfig.registrarUri = f"sip:{server};transport={transport}"
        cfg.regConfig.timeoutSec = expires
        cfg.regConfig.registerOnAdd = register
        cfg.regConfig.retryIntervalSec = 0
        cfg.sipConfig.transportId = self.transports[transport]
        cfg.sipConfig.proxies.append(f"sip:{server};transport={transport};lr")
        cred = pj.AuthCredInfo("digest", realm, user, 0, password)
        cfg.sipConfig.authCreds.append(cred)
        cfg.natConfig.contactRewriteUse = 0
        cfg.natConfig.viaRewriteUse = 0
        cfg.natConfig.sdpNatRewriteUse = 0
        cfg.natConfig.sipOutboundUse = 0
        cfg.mediaConfig.transportConfig.boundAddress = self.bind
        cfg.mediaConfig.transportConfig.port = 0      # any free port: parallel phones and nodes never collide
        acc = PhoneAccount(self, user, auto_answer, tone_hz)
        acc.play_wav, acc.record_to, acc.answer_delay, acc.on_event = play_wav, record_to, answer_delay, on_event
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
