"""Desktop softphones as agents on the shipped configuration: Debian's baresip and Linphone's console
(linphonec) register as a demo agent's softphone to `softswitch serve` on `config/example.yaml` (only its
ports moved; digest settings as shipped), take a queued customer call by themselves and carry audio both ways.

How each phone is set up to answer by itself:

- baresip: `;answermode=auto` on the account line of its `accounts` file, e.g.
  `<sip:70001@cc.example.com>;auth_pass=Phone-70001!;outbound="sip:SWITCH:5060";answermode=auto`.
  baresip 1.0 answers at once: it does not read the `Call-Info: ...;answer-after=2` hint.
- Linphone console: `linphonec -a`, or `autoanswer enable` at its prompt (what these tests type). It answers
  at once too: liblinphone parses answer-after, linphonec does not wait for it.

Neither needs an audio device. baresip sends a WAV file (`audio_source aufile,FILE`) and its `sndfile` module
writes what it hears to `snd_path`; linphonec in file mode (`soundcard use files`, `play FILE`, `record FILE`).
Both are driven by commands on their standard input (baresip's `stdio` module, linphonec's prompt).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from softswitch.sip.digest import make_authorization
from tests.support.cc import Api, wait_for
from tests.conftest import free_port
from tests.support.serve import Served, example_on_free_ports
from tests.support.sipclient import UdpClient
from tests.integration.test_audio import segment

REALM = "cc.example.com"
# the demo secrets listed in config/example.yaml's comments
ACCOUNTS = {"acme_alice": "Alice-Demo1!", "acme_bob": "Bob-Demo2!"}
SOFTPHONES = {"70001": "Phone-70001!", "70002": "Phone-70002!"}
CUSTOMER_HZ = 440
TALK = 2.5          # seconds of the customer's tone the phone must have recorded before it hangs up


@pytest.fixture(scope="module")
def phones():
    from tools.softphone import Softphones
    return Softphones.get()


def write_tone(path: Path, hz: int, seconds: float = 30.0) -> Path:
    """A G.711-rate WAV tone, longer than any call here (baresip's aufile stops the source at the end)."""
    t = np.arange(int(8000 * seconds)) / 8000
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes((8000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes())
    return path


class Phone:
    """A softphone program: commands on its stdin, everything it prints in a log file."""

    def __init__(self, argv: list[str], log: Path, quit_command: str, hangup_command: str,
                 env: dict | None = None) -> None:
        if shutil.which(argv[0]) is None:     # a missing phone fails the test (make test installs it), never skips
            pytest.fail(f"{argv[0]} is not installed: tools/install-sysdeps.sh installs it", pytrace=False)
        self.log = log
        self.quit_command = quit_command
        self.hangup_command = hangup_command
        self._out = open(log, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=self._out, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})

    def send(self, command: str) -> None:
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def said(self, text: str, timeout: float, phones=None) -> bool:
        return wait_for(lambda: text in self.output(), timeout, phones)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-n:])

    def quit(self, timeout: float = 10) -> int | None:
        """Ends the program with its own quit command (so it unregisters first); killed if it hangs."""
        try:
            if self.proc.poll() is None:
                self.send(self.quit_command)
            return self.proc.wait(timeout)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            return None
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdin.close()
            self._out.close()


def baresip(tmp_path: Path, user: str, sip_port: int, tone_hz: int) -> tuple[Phone, int, Path]:
    """baresip with its own config dir in tmp_path; returns the phone, its SIP port and where it records."""
    home = tmp_path / "baresip"
    home.mkdir()
    own = free_port()
    tone = write_tone(tmp_path / f"phone-{tone_hz}.wav", tone_hz)
    (home / "config").write_text(
        f"sip_listen 127.0.0.1:{own}\n"
        f"audio_source aufile,{tone}\n"
        "module_path /usr/lib/baresip/modules\n"
        "module stdio.so\n"                   # the command line on stdin
        "module g711.so\n"
        "module aufile.so\n"
        "module sndfile.so\n"                 # records what the phone sends and hears into snd_path
        f"snd_path {home}\n"
        "module_app account.so\n"
        "module_app menu.so\n")
    (home / "accounts").write_text(
        f'<sip:{user}@{REALM}>;auth_pass={SOFTPHONES[user]};outbound="sip:127.0.0.1:{sip_port}";regint=300;'
        "answermode=auto\n")
    phone = Phone(["baresip", "-f", str(home)], tmp_path / "baresip.log", "/quit", "/hangup")
    return phone, own, home


def linphonec(tmp_path: Path, user: str, sip_port: int, tone_hz: int) -> tuple[Phone, int, Path]:
    """linphonec with its own linphonerc and home in tmp_path; returns the phone, its SIP port and the file
    it records into."""
    home = tmp_path / "linphone"
    (home / ".local" / "share" / "linphone").mkdir(parents=True)     # its databases; it does not start without
    own = free_port()
    tone = write_tone(tmp_path / f"phone-{tone_hz}.wav", tone_hz)
    rc = home / "linphonerc"
    rc.write_text(f"""[sip]
sip_port={own}
sip_tcp_port=0
sip_tls_port=0
default_proxy=0

[rtp]
audio_rtp_port=-1

[proxy_0]
reg_proxy=<sip:127.0.0.1:{sip_port}>
reg_identity=sip:{user}@{REALM}
reg_expires=300
reg_sendregister=1

[auth_info_0]
username={user}
passwd={SOFTPHONES[user]}
realm={REALM}
""")
    heard = tmp_path / "linphone-heard.wav"
    phone = Phone(["linphonec", "-c", str(rc), "-d", "6", "-l", str(tmp_path / "linphone-debug.log")],
                  tmp_path / "linphonec.log", "quit", "terminate", env={"HOME": str(home)})
    for command in ("soundcard use files", f"play {tone}", f"record {heard}", "autoanswer enable"):
        phone.send(command)
    return phone, own, heard


def bindings(sip_port: int, user: str) -> list:
    """The registrar's contacts for a softphone, fetched as RFC 3261 section 10.2.3 allows: "a REGISTER
    request that does not contain a Contact header field ... the response lists the current bindings"."""
    client = UdpClient(("127.0.0.1", sip_port))
    local = client.addr[1]

    def fetch(cseq: int, auth: str = "") -> bytes:
        return (f"REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-fetch{cseq};"
                f"rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{REALM}>;tag=fetch\r\nTo: <sip:{user}@{REALM}>\r\n"
                f"Call-ID: fetch-{user}-{local}\r\nCSeq: {cseq} REGISTER\r\n{auth}Content-Length: 0\r\n\r\n").encode()
    try:
        client.send(fetch(1))
        challenge = client.recv(5)
        assert challenge is not None and challenge.status == 401
        auth = make_authorization(challenge.get_all("WWW-Authenticate")[0], "REGISTER", f"sip:{REALM}", user,
                                  SOFTPHONES[user])
        client.send(fetch(2, f"Authorization: {auth}\r\n"))
        ok = client.recv(5)
        assert ok is not None and ok.status == 200, ok
        return ok.contacts if ok.has("Contact") else []
    finally:
        client.close()


def http_port(config: Path) -> int:
    return int(config.read_text().split("http: {listen: 127.0.0.1:")[1].split("}")[0])


def phone_takes_a_queued_call(phones, tmp_path, start, account: str, user: str, phone_hz: int,
                              answered_line: str, recording) -> None:
    """The whole agent's day in small: register, sign in, take a queued call by itself, talk, hang up, quit."""
    config, sip_port = example_on_free_ports(tmp_path)
    node = Served(config)
    phone = None
    cust = None
    try:
        phone, own_port, rec_at = start(tmp_path, user, sip_port, phone_hz)
        api = Api(http_port(config))
        _, p = api.call("POST", "/api/login", {"account": account, "password": ACCOUNTS[account]}, expect=200)
        api.token = p["token"]
        assert wait_for(lambda: api.state()["registered"], 10), phone.tail()
        (contact,) = bindings(sip_port, user)                 # one binding, and it is the phone's address
        assert (contact.uri.host, contact.uri.port) == ("127.0.0.1", own_port), str(contact.uri)
        assert api.call("GET", "/health", expect=200)[1]["bindings"] == 1
        assert api.call("POST", "/api/agents/me/sign-in", expect=200)[1]["state"] == "idle"

        cust = phones.account("5552100", "unused", f"127.0.0.1:{sip_port}", domain="customer.example.net",
                              register=False, auto_answer=False, tone_hz=CUSTOMER_HZ)
        call = cust.call(f"sip:4001@127.0.0.1:{sip_port}")
        # queued behind the welcome prompt, then offered; nobody tells the phone to answer
        assert wait_for(lambda: api.state()["state"] == "talking", 20, phones), phone.tail()
        assert phone.said(answered_line, 5, phones), phone.tail()
        assert call.state == "CONFIRMED"

        def heard() -> Path | None:
            return next(iter(recording(rec_at)), None)
        assert wait_for(lambda: heard() is not None and heard().stat().st_size >= 44 + 2 * 8000 * TALK, 10,
                        phones), phone.tail()

        phone.send(phone.hangup_command)                      # the agent hangs up from the phone
        assert phones.wait(lambda: call.ended_at is not None, 5), phone.tail()
        assert wait_for(lambda: api.state()["state"] in ("wrap_up", "idle"), 5, phones)
        phones.pump(0.3)                                      # the customer's recorder closes its file

        rms, freq = segment(str(heard()), 0.3, -0.2)
        assert rms > 300 and abs(freq - CUSTOMER_HZ) < 30, (rms, freq)     # the phone heard the customer
        rms, freq = segment(call.recording, -1.5, -0.2)
        assert rms > 300 and abs(freq - phone_hz) < 30, (rms, freq)        # the customer heard the phone
        (stereo,) = (tmp_path / "recordings").glob("*.wav")                 # the queue records its calls
        assert abs(segment(str(stereo), 0.3, -0.3, channel=0)[1] - CUSTOMER_HZ) < 30
        assert abs(segment(str(stereo), 0.3, -0.3, channel=1)[1] - phone_hz) < 30

        assert phone.quit() == 0, phone.tail()               # quitting unregisters
        assert wait_for(lambda: not api.state()["registered"], 5)
        assert bindings(sip_port, user) == []
    finally:
        if cust is not None:
            phones.remove(cust, unregister=False)
        if phone is not None:
            phone.quit()
        node.stop()


def test_baresip_registers_and_auto_answers_a_queued_call(phones, tmp_path):
    phone_takes_a_queued_call(phones, tmp_path, baresip, "acme_alice", "70001", 1000,
                              "Call established", lambda home: home.glob("*-dec.wav"))


def test_linphonec_registers_and_auto_answers_a_queued_call(phones, tmp_path):
    phone_takes_a_queued_call(phones, tmp_path, linphonec, "acme_bob", "70002", 1300,
                              "connected.", lambda heard: [heard] if heard.exists() else [])
