"""`softswitch phone`: a SIP softphone on the command line, for trying a node by hand and for scripts.

    softswitch phone register 70001 --password 'Phone-70001!'            # an agent's phone: auto-answers
    softswitch phone call 4001 --play-tone 440 --record heard.wav        # a customer calling the support queue

One line per event on standard output (`registered user=70001 code=200 ...`, `incoming ...`, `connected ...`,
`dtmf digit=5`, `ended ... code=200 by=remote`), PJSIP's own log on standard error. The exit status says how it
went, so scripts can branch on it (see EXIT_*).
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import socket
import sys
import time

EXIT_OK = 0
EXIT_ERROR = 1             # the phone could not start (pjsua2 missing, unreadable WAV, no such transport)
EXIT_USAGE = 2             # argparse's own
EXIT_REGISTRATION = 3      # the registrar refused the REGISTER (wrong password, unknown number, ...)
EXIT_CALL_FAILED = 4       # the call was rejected or failed (4xx/5xx/6xx other than busy)
EXIT_BUSY = 5              # 486 Busy Here / 600 Busy Everywhere
EXIT_TIMEOUT = 6           # no answer (or no registrar response) within --timeout

BUSY_CODES = (486, 600)
NO_RESPONSE_CODES = (408,)     # pjsua's code when the server never answered


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = __doc__.split("\n\n")[0]
    sub = p.add_subparsers(dest="phone_action", required=True)
    reg = sub.add_parser("register", help="register a softphone and answer its calls until stopped")
    reg.add_argument("number", help="softphone number (the SIP user), e.g. 70001")
    reg.add_argument("--answer", type=answer_mode, default="hint", metavar="hint|now|never|SECONDS",
                     help="auto-answer incoming calls: after the INVITE's answer-after hint (default; at once when "
                          "there is none), at once, never (let them ring), or after SECONDS")
    reg.add_argument("--calls", type=int, default=0,
                     help="exit after this many calls have ended (default: run until SIGINT/SIGTERM)")
    reg.add_argument("--duration", type=float, default=0.0, help="exit after SECONDS (default: until a signal)")
    reg.add_argument("--expires", type=int, default=300, help="registration lifetime asked for, seconds")
    cl = sub.add_parser("call", help="call a number and stay on the call until it ends")
    cl.add_argument("number", help="the number to call, e.g. 4001 (an access code of the demo tenant)")
    cl.add_argument("--from", dest="caller", default="5550100",
                    help="caller number for an unregistered call, as a customer (default 5550100)")
    cl.add_argument("--user", help="register as this softphone first and call from it (an agent's outbound call)")
    cl.add_argument("--timeout", type=float, default=30.0, help="give up when not answered within SECONDS (30)")
    for q in (reg, cl):
        q.add_argument("--server", default="127.0.0.1:5060", help="the node's SIP address (127.0.0.1:5060)")
        q.add_argument("--transport", choices=("udp", "tcp"), default="udp")
        q.add_argument("--domain", default="cc.example.com",
                       help="SIP domain of the phone's address (the node's server.sip.domain; cc.example.com)")
        q.add_argument("--realm", default="*", help="digest realm to answer (default: whatever the node asks)")
        q.add_argument("--password", help="softphone password (default: $SOFTSWITCH_PHONE_PASSWORD, else asked)")
        media = q.add_mutually_exclusive_group()
        media.add_argument("--play", metavar="WAV", help="send this WAV file (looped) on every call")
        media.add_argument("--play-tone", type=int, metavar="HZ", help="send a steady tone of HZ on every call")
        q.add_argument("--record", metavar="WAV", help="record what the phone hears (later calls: NAME-2.wav ...)")
        q.add_argument("--dtmf", default="", metavar="DIGITS", help="send these digits (RFC 4733) once connected")
        q.add_argument("--dtmf-after", type=float, default=1.0, help="seconds after connecting to send --dtmf (1)")
        q.add_argument("--hangup-after", type=float, default=0.0,
                       help="hang up SECONDS after a call connects (default: stay until the other side hangs up)")
        q.add_argument("--sip-log", type=int, default=1, metavar="LEVEL",
                       help="PJSIP log level on standard error (0-6; 5 prints every SIP message)")


def answer_mode(text: str) -> str | float:
    if text in ("hint", "now", "never"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--answer wants hint, now, never or a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError("--answer seconds must not be negative")
    return value


class Phone:
    """The command's run: one account, its calls, the clock for hang-up and DTMF, and the exit status."""

    def __init__(self, args) -> None:
        self.args = args
        self.t0 = time.monotonic()
        self.stop_signal: str | None = None
        self.phones = None
        self.account = None
        self.calls_ended = 0
        self.done: dict = {}      # per call id: what this phone did on it already ("dtmf", "hangup")

    def say(self, kind: str, fields: dict | None = None) -> None:
        parts = [kind] + [f"{k}={_quote(v)}" for k, v in (fields or {}).items()]
        parts.append(f"t={time.monotonic() - self.t0:.2f}")
        print(" ".join(parts), flush=True)

    def on_event(self, kind: str, fields: dict) -> None:
        if kind == "ended":
            self.calls_ended += 1
        self.say(kind, fields)

    # ------------------------------------------------------------------ set-up
    def start(self) -> int | None:
        a = self.args
        try:
            import pjsua2  # noqa: F401   (checked here: the rest of the CLI runs without it)
        except ImportError:
            print("softswitch phone needs PJSIP's Python binding: pip install pjsua2-python "
                  "(make install puts it in .venv)", file=sys.stderr)
            return EXIT_ERROR
        if a.play and not os.path.isfile(a.play):
            print(f"no such WAV file: {a.play}", file=sys.stderr)
            return EXIT_ERROR
        if a.record:
            folder = os.path.dirname(os.path.abspath(a.record))
            if not os.path.isdir(folder):
                print(f"cannot record to {a.record}: no folder {folder}", file=sys.stderr)
                return EXIT_ERROR
        from .softphone import Softphones
        self.phones = Softphones.get(bind=local_address_for(a.server), log_level=a.sip_log, log_to_stderr=True)
        return None

    def password(self) -> str:
        a = self.args
        if a.password is not None:
            return a.password
        if os.environ.get("SOFTSWITCH_PHONE_PASSWORD"):
            return os.environ["SOFTSWITCH_PHONE_PASSWORD"]
        if sys.stdin.isatty():
            return getpass.getpass(f"Password of {a.user or a.number}: ")
        return sys.stdin.readline().rstrip("\r\n")

    def make_account(self, user: str, password: str, register: bool, auto_answer: bool):
        a = self.args
        answer = getattr(a, "answer", "hint")
        delay = 0.0 if answer == "now" else answer if isinstance(answer, float) else None
        return self.phones.account(
            user, password, a.server, transport=a.transport, domain=a.domain, realm=a.realm, register=register,
            auto_answer=auto_answer and answer != "never", tone_hz=a.play_tone or 0,
            play_wav=os.path.abspath(a.play) if a.play else None,
            record_to=os.path.abspath(a.record) if a.record else None, answer_delay=delay,
            expires=getattr(a, "expires", 300), on_event=self.on_event)

    def register(self, user: str, auto_answer: bool) -> int | None:
        a = self.args
        self.say("registering", {"user": user, "server": f"{a.transport}:{a.server}", "domain": a.domain})
        acc = self.account = self.make_account(user, self.password(), True, auto_answer)
        # a REGISTER gets its final answer within Timer F (32 s) at worst; stop earlier on a signal
        self.pump_until(lambda: acc.registered or any(c // 100 >= 3 for c in acc.reg_codes), 40)
        if acc.registered:
            return None
        if self.stop_signal:
            return EXIT_OK
        code = acc.reg_codes[-1] if acc.reg_codes else 0
        return EXIT_TIMEOUT if code in NO_RESPONSE_CODES or not code else EXIT_REGISTRATION

    # ------------------------------------------------------------------ the loop
    def pump_until(self, predicate, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self.stop_signal:
            if predicate():
                return True
            self.phones.pump(0.02)
            self.tend_calls()
        return bool(predicate())

    def tend_calls(self) -> None:
        """Per connected call: send --dtmf after --dtmf-after, hang up after --hangup-after."""
        a = self.args
        now = time.monotonic()
        for rec in self.account.calls if self.account else ():
            if rec.answered_at is None or rec.ended_at is not None:
                continue
            done = self.done.setdefault(id(rec), set())
            if a.dtmf and "dtmf" not in done and now - rec.answered_at >= a.dtmf_after:
                done.add("dtmf")
                sent = rec.send_dtmf(a.dtmf)
                self.say("dtmf_sent" if sent else "dtmf_failed", {"digits": a.dtmf})
            if a.hangup_after and "hangup" not in done and now - rec.answered_at >= a.hangup_after:
                done.add("hangup")
                self.say("hangup", {"after": f"{a.hangup_after:g}s"})
                rec.hangup()

    def hang_up_all(self) -> None:
        for rec in self.account.calls if self.account else ():
            if rec.ended_at is None:
                rec.hangup()
        self.pump_until(lambda: all(r.ended_at is not None for r in self.account.calls), 5)

    def unregister(self) -> None:
        acc = self.account
        if acc is None or not acc.registered:
            return
        try:
            acc.setRegistration(False)
        except Exception:            # pjsua2.Error: the registration is gone already
            return
        stop, self.stop_signal = self.stop_signal, None    # let the un-REGISTER finish even after a signal
        self.pump_until(lambda: not acc.registered, 5)
        self.stop_signal = stop

    def run_register(self) -> int:
        a = self.args
        status = self.register(a.number, auto_answer=True)
        if status is not None:
            return status
        end = time.monotonic() + a.duration if a.duration else float("inf")
        self.pump_until(lambda: (a.calls and self.calls_ended >= a.calls) or time.monotonic() >= end, float("inf"))
        return EXIT_OK

    def run_call(self) -> int:
        a = self.args
        if a.user:
            status = self.register(a.user, auto_answer=False)
            if status is not None:
                return status
        else:
            self.account = self.make_account(a.caller, "unused", False, False)
        uri = f"sip:{a.number}@{a.domain}"
        self.say("calling", {"uri": uri, "from": a.user or a.caller})
        rec = self.account.call(uri)
        answered = self.pump_until(lambda: rec.answered_at is not None or rec.ended_at is not None, a.timeout)
        if self.stop_signal:
            return EXIT_OK
        if not answered:
            self.say("timeout", {"after": f"{a.timeout:g}s"})
            rec.hangup()
            return EXIT_TIMEOUT
        if rec.answered_at is None:
            code = rec.last_code
            if code in BUSY_CODES:
                self.say("busy", {"code": code, "reason": rec.reason})
                return EXIT_BUSY
            if code in NO_RESPONSE_CODES:
                return EXIT_TIMEOUT
            self.say("failed", {"code": code, "reason": rec.reason})
            return EXIT_CALL_FAILED
        self.pump_until(lambda: rec.ended_at is not None, float("inf"))
        return EXIT_OK

    def run(self) -> int:
        status = self.start()
        if status is not None:
            return status
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            status = self.run_register() if self.args.phone_action == "register" else self.run_call()
            if self.stop_signal:
                self.say("stopping", {"signal": self.stop_signal})
                self.stop_signal = None
            self.hang_up_all()
            self.unregister()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            from .softphone import shutdown
            shutdown()
        self.say("exit", {"status": status})
        return status

    def _on_signal(self, signum, frame) -> None:
        self.stop_signal = signal.Signals(signum).name


def _quote(value) -> str:
    text = str(value)
    return f'"{text}"' if not text or any(c in text for c in ' "=') else text


def local_address_for(server: str) -> str:
    """The local address that reaches the server: what the phone binds and puts in Contact and SDP."""
    host = server.rsplit(":", 1)[0] if server.count(":") == 1 else server
    if host.startswith("127.") or host == "localhost":
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((socket.gethostbyname(host), 5060))
            return s.getsockname()[0]
        except OSError:
            return "0.0.0.0"


def run(args) -> int:
    return Phone(args).run()
