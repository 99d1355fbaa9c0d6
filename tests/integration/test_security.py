"""Security with real clients: scanners, floods and password guessing banned per source while others are
served, size limits, the outbound toll-fraud cap."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest

from softswitch.sip.digest import make_authorization
from softswitch.sip.message import Response, make_response
from softswitch.sip.parser import parse_message
from tests.support.cc import PASSWORDS, Api, cc_node
from tests.support.sipclient import UdpClient, options_request
from tests.support.sipp import SCENARIOS, SIPP

REALM = "cc.test"


def register(port: int, sock: socket.socket, user: str, password: str, n: int, timeout: float = 1.0) -> int | None:
    """One digest registration from `sock`; the final status, or None when nothing came back within
    `timeout` per answer (short where silence is expected, long where an answer is)."""
    host, lport = sock.getsockname()

    def req(cseq: int, auth: str = "") -> bytes:
        return (f"REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{lport};branch=z9hG4bK-s{n}-{cseq};rport"
                f"\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{REALM}>;tag=s{n}\r\nTo: <sip:{user}@{REALM}>\r\n"
                f"Call-ID: sec-{n}-{lport}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{host}:{lport}>\r\n"
                f"User-Agent: TestPhone/1.0\r\n{auth}Content-Length: 0\r\n\r\n").encode()
    sock.settimeout(timeout)
    try:
        sock.sendto(req(1), ("127.0.0.1", port))
        ch = answer_of(sock)
        value = make_authorization(ch.get_all("WWW-Authenticate")[0], "REGISTER", f"sip:{REALM}", user, password)
        sock.sendto(req(2, f"Authorization: {value}\r\n"), ("127.0.0.1", port))
        return answer_of(sock).status
    except socket.timeout:
        return None


def answer_of(sock: socket.socket) -> Response:
    """The next response on `sock`. Once registered, `sock` is a phone to the node, which probes it with OPTIONS
    keepalives at any time: answered 200 on the way, as a phone answers them."""
    while True:
        data, addr = sock.recvfrom(65535)
        m = parse_message(data)
        if isinstance(m, Response):
            return m
        if m.method == "OPTIONS":
            sock.sendto(make_response(m, 200).serialize(), addr)


def udp_from(host: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s


def test_scanner_user_agents_get_no_answer(tmp_path):
    with cc_node(tmp_path) as (nt, port, http):
        c = UdpClient(("127.0.0.1", port))
        c.send(options_request(port, extra="User-Agent: friendly-scanner\r\n"))
        assert c.recv(1.0) is None
        c.send(options_request(port, call_id="o2", branch="z9hG4bK-o2", extra="User-Agent: Yealink SIP-T46U\r\n"))
        assert c.recv(2.0).status == 200
        assert nt.call(lambda: nt.node.guard.stats["scanner_dropped"]) == 1


def test_size_and_via_limits(tmp_path):
    with cc_node(tmp_path) as (nt, port, http):
        c = UdpClient(("127.0.0.1", port))
        c.send(options_request(port, call_id="big", branch="z9hG4bK-big", extra=f"X-Pad: {'a' * 20000}\r\n"))
        assert c.recv(2.0).status == 513
        vias = "".join(f"Via: SIP/2.0/UDP 10.0.0.{i}:5060;branch=z9hG4bK-v{i}\r\n" for i in range(30))
        c.send(options_request(port, call_id="vias", branch="z9hG4bK-vias", extra=vias))
        assert c.recv(2.0).status == 483


def test_password_guessing_bans_the_source_only(tmp_path):
    with cc_node(tmp_path, security=", security: {auth_failures: 5, ban_time: 60s}") as (nt, port, http):
        guesser, phone = udp_from("127.0.0.3"), udp_from("127.0.0.1")
        statuses = [register(port, guesser, "70001", f"Guess-{i}!", i, timeout=10) for i in range(5)]
        assert statuses == [403] * 5                       # unknown-or-wrong: the same 403 every time
        assert register(port, guesser, "70001", PASSWORDS["70001"], 99) is None   # banned: silence
        assert register(port, phone, "70001", PASSWORDS["70001"], 100, timeout=10) == 200     # others are served
        assert nt.call(lambda: nt.node.guard.stats["bans"]) == 1
        text = __import__("urllib.request").request.urlopen(f"http://127.0.0.1:{http}/metrics").read().decode()
        assert "softswitch_guard_bans_active 1.0" in text


def test_flood_is_banned_while_a_phone_keeps_registering_quickly(tmp_path):
    sec = ", security: {rate: 100, burst: 100, flood_ban_after: 200, ban_time: 60s}"
    # keepalives every second: the phone is probed while it registers, as a phone is at any time
    with cc_node(tmp_path, security=sec, phones="phones: {keepalive: {interval: 1s, timeout: 0.5s}}") as (
            nt, port, http):
        flood = subprocess.Popen([SIPP, f"127.0.0.1:{port}", "-sf", f"{SCENARIOS}/options.xml", "-i", "127.0.0.2",
                                  "-p", "0", "-r", "1500", "-m", "6000", "-nostdin", "-timeout", "8s",
                                  "-max_recv_loops", "10000"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        phone = udp_from("127.0.0.1")
        statuses = []
        try:
            # The phone registers all through the flood, until the flood has been banned and over 1000 of
            # its requests dropped, however fast SIPp gets them out on this host (60 s bound a hang).
            deadline = time.monotonic() + 60
            while len(statuses) < 30 or (nt.call(lambda: nt.node.guard.stats["banned_dropped"]) <= 1000
                                         and time.monotonic() < deadline and flood.poll() is None):
                statuses.append(register(port, phone, "70002", PASSWORDS["70002"], 1000 + len(statuses),
                                         timeout=10))
                time.sleep(0.05)
        finally:
            flood.kill()         # once banned it only hears silence; no need to wait for its timeouts
            flood.wait(10)
        assert statuses == [200] * len(statuses)
        guard = nt.call(lambda: dict(nt.node.guard.stats))
        assert guard["bans"] == 1 and guard["banned_dropped"] > 1000
        assert nt.call(lambda: nt.node.guard.banned("127.0.0.2", nt.node.loop.time()))


def test_outbound_call_rate_cap(tmp_path):
    from tools.softphone import Softphones
    import pjsua2
    phones = Softphones.get()
    with cc_node(tmp_path, security=", security: {outbound_calls_per_minute: 2}") as (nt, port, http):
        alice = phones.account("70001", PASSWORDS["70001"], f"127.0.0.1:{port}", domain=REALM)
        carol = phones.account("70003", PASSWORDS["70003"], f"127.0.0.1:{port}", domain=REALM)
        try:
            assert phones.wait(lambda: alice.registered and carol.registered, 5)
            api = Api(http)
            api.login("acme_alice")
            api.call("POST", "/api/agents/me/sign-in", expect=200)
            api.call("POST", "/api/agents/me/state", {"state": "idle"}, expect=200)
            codes = []
            for _ in range(3):
                rec = alice.call(f"sip:70003@127.0.0.1:{port}")
                phones.wait(lambda: rec.state in ("CONFIRMED", "DISCONNCTD") or rec.ended_at, 6)
                if rec.state == "CONFIRMED":
                    codes.append(200)
                    rec.call.hangup(pjsua2.CallOpParam(True))
                    phones.wait(lambda: rec.ended_at is not None, 5)
                    phones.wait(lambda: api.state()["state"] in ("idle", "wrap_up"), 3)
                    phones.pump(1.2)                       # wrap-up
                    api.call("POST", "/api/agents/me/state", {"state": "idle"})
                else:
                    codes.append(rec.last_code)
            assert codes == [200, 200, 403]
        finally:
            phones.remove(alice)
            phones.remove(carol)


def test_sip_over_tls_registers_and_answers(tmp_path):
    import ssl
    cert, key = tmp_path / "node.crt", tmp_path / "node.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    from tests.conftest import free_port
    tls_port = free_port()
    with cc_node(tmp_path, tls_port=tls_port, tls=f", tls: {{certificate: {cert}, key: {key}}}") as (nt, port, http):
        ctx = ssl.create_default_context(cafile=str(cert))          # the client verifies the node's certificate
        raw = socket.create_connection(("127.0.0.1", tls_port), timeout=5)
        conn = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        lport = conn.getsockname()[1]
        buf = b""

        def send_and_read(data: bytes):
            nonlocal buf
            conn.sendall(data)
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(65535)
            head, _, rest = buf.partition(b"\r\n\r\n")
            buf = rest
            return parse_message(head + b"\r\n\r\n")

        def req(cseq: int, auth: str = "") -> bytes:
            return (f"REGISTER sips:{REALM} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:{lport};branch=z9hG4bK-t{cseq};rport"
                    f"\r\nMax-Forwards: 70\r\nFrom: <sips:70001@{REALM}>;tag=t\r\nTo: <sips:70001@{REALM}>\r\n"
                    f"Call-ID: tls-1\r\nCSeq: {cseq} REGISTER\r\nContact: <sips:70001@127.0.0.1:{lport}>\r\n"
                    f"{auth}Content-Length: 0\r\n\r\n").encode()
        ch = send_and_read(req(1))
        assert ch.status == 401 and ch.top_via.transport.upper() == "TLS"
        value = make_authorization(ch.get_all("WWW-Authenticate")[0], "REGISTER", f"sips:{REALM}", "70001",
                                   PASSWORDS["70001"])
        assert send_and_read(req(2, f"Authorization: {value}\r\n")).status == 200
        (b,) = nt.call(nt.node.location.lookup, f"sips:70001@{REALM}", time.time())
        assert b.source[0] == "tls"
        conn.close()
        # a plain TCP client on the TLS port gets nowhere
        plain = socket.create_connection(("127.0.0.1", tls_port), timeout=2)
        plain.sendall(options_request(tls_port, transport="TCP"))
        plain.settimeout(2)
        try:
            got = plain.recv(100)
        except (socket.timeout, ConnectionResetError):
            got = b""
        assert not got.startswith(b"SIP/2.0")
        plain.close()


def test_tls_listener_without_certificate_is_a_config_error(tmp_path):
    from softswitch.settings import ConfigError, parse_config
    text = ("server:\n  sip: {listen: [tls:127.0.0.1:5061], domain: x.test}\n")
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "n.yaml")
    assert "server.sip.tls" in str(exc.value)
    text = ("server:\n  sip: {listen: [tls:127.0.0.1:5061], domain: x.test, tls: {certificate: /nope.crt, "
            "key: /nope.key}}\n")
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "n.yaml")
    assert "server.sip.tls.certificate: cannot read /nope.crt" in str(exc.value)


def test_invite_flood_from_an_agent_number_is_challenged_without_state(tmp_path):
    with cc_node(tmp_path) as (nt, port, http):
        c = UdpClient(("127.0.0.1", port))
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)    # room for 200 answers unread
        before = nt.call(lambda: nt.node.endpoint.layer.counts()["server"])
        for i in range(200):
            c.send((f"INVITE sip:5550000@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c.addr[1]};"
                    f"branch=z9hG4bK-fl{i};rport\r\nMax-Forwards: 70\r\nFrom: <sip:70001@{REALM}>;tag=f{i}\r\n"
                    f"To: <sip:5550000@{REALM}>\r\nCall-ID: flood-{i}\r\nCSeq: 1 INVITE\r\n"
                    f"Contact: <sip:70001@127.0.0.1:{c.addr[1]}>\r\nContent-Length: 0\r\n\r\n").encode())
        answers = c.recv_until(lambda got: len(got) == 200)
        assert len(answers) == 200 and {m.status for m in answers} == {407}
        assert nt.call(lambda: nt.node.endpoint.layer.counts()["server"]) == before   # nothing kept
        assert nt.call(lambda: len(nt.node.calls.calls)) == 0
        c.close()


def test_api_sessions_expire():
    from softswitch.api.sessions import Sessions
    now = [1000.0]
    s = Sessions(ttl=60, clock=lambda: now[0])
    tok = s.open("acme_alice", "agent", "1001").token
    assert s.get(tok).account == "acme_alice"
    now[0] += 61
    assert s.get(tok) is None                    # expired sessions are refused
    assert s.get("forged-token") is None


def test_no_secrets_in_the_logs(tmp_path):
    import json
    from tests.support.serve import Served, example_on_free_ports
    from tools.agents_load import api, register_agents
    from tests.conftest import free_port
    config, port = example_on_free_ports(tmp_path)
    http = int(config.read_text().split("http: {listen: 127.0.0.1:")[1].split("}")[0])
    node = Served(config)
    try:
        register_agents(port, [("70001", "Phone-70001!")], "cc.example.com", free_port())
        base = f"http://127.0.0.1:{http}"
        token = api(base, "POST", "/api/login", {"account": "acme_alice", "password": "Alice-Demo1!"})["token"]
        try:
            api(base, "POST", "/api/login", {"account": "acme_alice", "password": "Wrong-Guess-7!"})
        except Exception:
            pass
        api(base, "POST", "/api/agents/me/softphone-password", {"password": "Brand-New-77!"}, token)
    finally:
        assert node.stop() == 0
    log = node.stderr()
    assert '"event": "login"' in log and '"event": "login_failed"' in log
    for secret in ("Alice-Demo1!", "Wrong-Guess-7!", "Brand-New-77!", "Phone-70001!", token):
        assert secret not in log


def test_a_failing_stateless_handler_still_answers(tmp_path):
    """Whatever a stateless fast path raises, the request is answered and the node goes on."""
    from softswitch.sip.errors import SipError

    def refuses(req):
        raise SipError(400, "bad contact")

    def breaks(req):
        raise RuntimeError("bug")

    with cc_node(tmp_path) as (nt, port, http):
        c = UdpClient(("127.0.0.1", port))
        nt.call(lambda: nt.node.endpoint.stateless.__setitem__("OPTIONS", refuses))
        c.send(options_request(port, call_id="s1", branch="z9hG4bK-s1"))
        r = c.recv(2.0)
        assert r.status == 400 and "bad contact" in r.get("Warning")
        nt.call(lambda: nt.node.endpoint.stateless.__setitem__("OPTIONS", breaks))
        c.send(options_request(port, call_id="s2", branch="z9hG4bK-s2"))
        assert c.recv(2.0).status == 200      # the transaction path answered
        assert nt.call(lambda: nt.node.endpoint.counters["handler_errors"]) == 1
