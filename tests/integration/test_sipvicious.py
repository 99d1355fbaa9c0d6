"""SIPVicious against `softswitch serve` on the demo tenant: svwar tells no softphone number apart (with its
own User-Agent and posing as a phone), svcrack never finds a password, from one address or from several."""

from __future__ import annotations

import re
import threading
import urllib.request

import pytest

from tests.conftest import free_port
from tests.support.scanners import sipvicious
from tests.support.serve import Served, example_on_free_ports
from tests.support.sipclient import UdpClient

PHONE_UA = "Yealink SIP-T46U 66.86.0.15"
NUMBERS = [str(n) for n in range(69999, 70006)]        # the demo softphones are 70001..70004
AGENTS = {"70001", "70002", "70003", "70004"}
PASSWORD = "Phone-70001!"                               # the demo's, documented in config/example.yaml


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    config, port = example_on_free_ports(tmp)
    text = config.read_text()
    http = int(text.split("http: {listen: 127.0.0.1:")[1].split("}")[0])
    node = Served(config)
    try:
        yield node, port, http
    finally:
        node.stop()


def svwar(port: int, method: str, numbers: str, ua: str) -> str:
    # -P: a free local port, or svwar warns that 5060 is taken (a line that differs between runs)
    res = sipvicious("svwar", ["-e", numbers, "-m", method, "--force", "-P", str(free_port()), "-p", str(port),
                               "127.0.0.1"], ua, 60)
    return res.stdout


def found(output: str) -> set[str]:
    return set(re.findall(r"extension '(\d+)' (?:exists|probably exists)", output))


def metrics(http: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5).read().decode()


@pytest.mark.parametrize("method", ["REGISTER", "INVITE"])
def test_svwar_posing_as_a_phone_tells_no_number_apart(demo, method):
    """svwar compares each number's answer with the answer for a random one; an answer that matches a
    challenge makes it give up on that run, so each number gets a run of its own."""
    node, port, http = demo
    verdicts = {}
    for n in NUMBERS:
        out = svwar(port, method, n, PHONE_UA)
        assert not found(out), out
        assert "found nothing" in out, out
        # what svwar printed, with the number and the per-request values taken out
        verdicts[n] = re.sub(r"'SIP/2\.0.*?'", "<response>", out.replace(n, "N"))
    assert len({verdicts[n] for n in NUMBERS}) == 1, verdicts


@pytest.mark.parametrize("method", ["REGISTER", "INVITE", "OPTIONS"])
def test_svwar_scan_over_the_range_finds_nothing(demo, method):
    """Over OPTIONS svwar walks the whole range (every answer is the same 200); over REGISTER and INVITE it
    gives up at the first number, whose challenge matches the random number's."""
    node, port, http = demo
    out = svwar(port, method, f"{NUMBERS[0]}-{NUMBERS[-1]}", PHONE_UA)
    assert not found(out) and "found nothing" in out, out


@pytest.mark.parametrize("method", ["REGISTER", "INVITE", "OPTIONS"])
def test_svwar_with_its_own_user_agent_hears_nothing_for_any_number(demo, method):
    node, port, http = demo
    before = _scanner_dropped(http)
    outs = {n: svwar(port, method, n, "") for n in ("70001", "79999")}
    for n, out in outs.items():
        assert not found(out) and "timed out" in out, out       # dropped silently, known number or not
    assert outs["70001"].replace("70001", "N") == outs["79999"].replace("79999", "N")
    assert _scanner_dropped(http) >= before + 2


def _scanner_dropped(http: int) -> float:
    m = re.search(r'softswitch_guard_total\{kind="scanner_dropped"\} ([\d.]+)', metrics(http))
    return float(m.group(1)) if m else 0.0


def words(n: int, password_at: int | None) -> list[str]:
    out = [f"Guess-{i:02d}-pw!" for i in range(n)]
    if password_at is not None:
        out[password_at] = PASSWORD
    return out


def svcrack(port: int, user: str, wordlist: list[str], path, bind: str = "127.0.0.1") -> str:
    path.write_text("\n".join(wordlist) + "\n")
    return sipvicious("svcrack", ["-u", user, "-d", str(path), "-b", bind, "-P", str(free_port()), "-p", str(port),
                                  "127.0.0.1"], PHONE_UA, 90).stdout


def register_once(port: int, user: str, password: str, bind: str) -> int | None:
    """A phone's REGISTER with the right password, from `bind`: the final status."""
    from softswitch.sip.digest import make_authorization
    c = UdpClient(("127.0.0.1", port), (bind, 0))
    host, lport = c.addr

    def req(cseq: int, auth: str = "") -> bytes:
        return (f"REGISTER sip:cc.example.com SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{lport};branch=z9hG4bK-r{cseq}"
                f";rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@cc.example.com>;tag=r\r\n"
                f"To: <sip:{user}@cc.example.com>\r\nCall-ID: real-phone-{lport}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{user}@{host}:{lport}>\r\nUser-Agent: {PHONE_UA}\r\n{auth}Content-Length: 0\r\n\r\n"
                ).encode()
    try:
        c.send(req(1))
        ch = c.recv(2.0)
        value = make_authorization(ch.get("WWW-Authenticate"), "REGISTER", "sip:cc.example.com", user, password)
        c.send(req(2, f"Authorization: {value}\r\n"))
        resp = c.recv(2.0)
        return resp.status if resp is not None else None
    finally:
        c.close()


def test_svcrack_from_one_address_never_finds_the_password(tmp_path):
    """The per-source ban is raised out of the way: only the account lockout stands in front of the password,
    which is the 25th of 50 words. The control: a password among the first attempts (before any lockout
    can act) is found by the same tool against the same node."""
    config, port = example_on_free_ports(tmp_path)
    text = config.read_text()
    assert "auth_failures: 10," in text
    config.write_text(text.replace("auth_failures: 10,", "auth_failures: 10000,"))
    http = int(text.split("http: {listen: 127.0.0.1:")[1].split("}")[0])
    node = Served(config)
    try:
        out = svcrack(port, "70001", words(50, 24), tmp_path / "words.txt")
        assert PASSWORD not in out and "found nothing" in out, out
        text = metrics(http)
        assert 'softswitch_account_lockout_total{kind="lockouts"} 1.0' in text
        assert 'softswitch_account_lockout_total{kind="locked_rejected"} 40.0' in text
        assert "softswitch_accounts_locked 1.0" in text
        # the real phone, elsewhere, with the right password: refused like everyone while the lock lasts
        assert register_once(port, "70001", PASSWORD, "127.0.0.9") == 403
        control = svcrack(port, "70002", [*words(4, None), "Phone-70002!"], tmp_path / "control.txt")
        assert re.search(r"70002\s*\|\s*Phone-70002!", control), control
    finally:
        node.stop()
    assert '"event": "account_locked"' in node.stderr()


def test_svcrack_from_several_addresses_never_finds_the_password(demo, tmp_path):
    """Six addresses, each kept under the per-source limit (at most 9 failures each, the demo bans at 10):
    the account lockout stops them together. Three go first, then three more with the password."""
    node, port, http = demo
    wordlist = words(50, 36)                         # the 2nd address of the second wave has it
    chunks = [wordlist[i:i + 9] for i in range(0, 50, 9)]
    sources = [f"127.0.0.{i}" for i in range(2, 8)]
    outputs: dict[str, str] = {}

    def run(i: int) -> None:
        outputs[sources[i]] = svcrack(port, "70001", chunks[i], tmp_path / f"w{i}.txt", sources[i])
    for wave in ((0, 1, 2), (3, 4, 5)):
        threads = [threading.Thread(target=run, args=(i,)) for i in wave]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert len(outputs) == 6
    for src, out in outputs.items():
        assert PASSWORD not in out and "found nothing" in out, (src, out)
    text = metrics(http)
    assert "softswitch_guard_bans_active 0.0" in text, [ln for ln in text.splitlines() if "guard" in ln]           # no address was banned: the lockout did it
    assert 'softswitch_account_lockout_total{kind="lockouts"} 1.0' in text
