"""A trunk's traffic skips the per-source flood limit and meets the trunk's own caps instead, over real UDP:
from a trunk's address every OPTIONS of a burst is answered where another source is throttled, and new
INVITEs past the trunk's call rate or its calls at once get 503 + Retry-After before call control (a
retransmission is not a new call; an ended call leaves the count). The guard's hook is also checked alone on a fake clock."""

from __future__ import annotations

import socket
import time
import uuid

from softswitch.guard import Guard, GuardOptions
from tests.integration.test_trunks_kamailio import node_config, start_node
from tests.conftest import free_port


def sip(sock, port: int, method: str, call_id: str | None = None, branch: str | None = None) -> str:
    me = sock.getsockname()[1]
    call_id = call_id or uuid.uuid4().hex
    msg = (f"{method} sip:9999@127.0.0.1:{port} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch={branch or 'z9hG4bK' + uuid.uuid4().hex};rport\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:+4930555@carrier.test>;tag=c1\r\nTo: <sip:9999@cc.test>\r\n"
           f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:c@127.0.0.1:{me}>\r\nContent-Length: 0\r\n\r\n")
    sock.sendto(msg.encode(), ("127.0.0.1", port))
    return call_id


def answers(sock, want: int, wait: float = 3.0) -> list[str]:
    """Final answers received until `want` have come or the socket stays quiet for `wait` seconds."""
    out = []
    sock.settimeout(wait)
    while len(out) < want:
        try:
            data = sock.recv(65535).decode()
        except OSError:
            break
        if int(data.split(" ", 2)[1]) >= 200:
            out.append(data)
    return out


def burst_of_options(addresses: str, tmp_path) -> int:
    tmp_path.mkdir()
    port, http = free_port(), free_port()
    cfg = node_config(tmp_path, port, http, f"trunks: [{{name: carrier, addresses: [{addresses}]}}]\n")
    nt = start_node(cfg)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            for _ in range(40):
                sip(s, port, "OPTIONS")
            return len(answers(s, 40, wait=2.0))
    finally:
        nt.stop()


def test_a_trunk_address_skips_the_per_source_limit(tmp_path):
    # the node allows 5 requests/s with a burst of 5 per source
    assert burst_of_options("127.0.0.1", tmp_path / "trunk") == 40
    assert burst_of_options("192.0.2.1", tmp_path / "other") <= 10


def test_new_invites_past_the_trunk_rate_get_503_and_retransmissions_are_not_counted(tmp_path):
    port, http = free_port(), free_port()
    cfg = node_config(tmp_path, port, http, "trunks: [{name: carrier, addresses: [127.0.0.0/8], "
                                            "calls_per_second: 1, burst: 2, max_calls: 50}]\n")
    nt = start_node(cfg)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            first = sip(s, port, "INVITE", branch="z9hG4bKfirst")
            got = answers(s, 1)
            ids = [sip(s, port, "INVITE") for _ in range(4)]
            got += answers(s, 4)
            sip(s, port, "INVITE", call_id=first, branch="z9hG4bKfirst-again")    # same call, new transaction
            again = answers(s, 1)
        statuses = [int(a.split(" ", 2)[1]) for a in got]
        # two calls fit the burst (call control answers them: 9999 is no called route), the rest are refused
        assert statuses.count(503) == 3 and len(statuses) == 5, statuses
        refused = [a for a in got if a.startswith("SIP/2.0 503")]
        assert all("Trunk call rate exceeded" in a and "Retry-After: 1" in a for a in refused)
        assert {a.split("Call-ID: ")[1].split("\r\n")[0] for a in refused} <= set(ids)
        assert again and not again[0].startswith("SIP/2.0 503")
        caps = nt.call(lambda: dict(nt.node.trunks.caps["carrier"].stats))
        assert caps == {"admitted": 2, "over_rate": 3, "over_calls": 0}
    finally:
        nt.stop()


def test_guard_trusted_hook_on_a_fake_clock():
    g = Guard(GuardOptions(rate=1, burst=1, auth_failures=2))
    g.trusted = lambda host: host == "203.0.113.10"
    assert all(g.allow("203.0.113.10", None, 0.0) for _ in range(100))
    assert g.allow("198.51.100.1", None, 0.0) and not g.allow("198.51.100.1", None, 0.0)
    for _ in range(5):
        g.auth_failed("203.0.113.10", 0.0)
    assert not g.bans and g.admit("203.0.113.10", 0.0)


def test_calls_at_once_past_the_trunk_cap_get_503_until_a_call_ends(tmp_path):
    port, http = free_port(), free_port()
    cfg = node_config(tmp_path, port, http, "trunks: [{name: carrier, addresses: [127.0.0.1], max_calls: 1}]\n")
    nt = start_node(cfg)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            sip(s, port, "INVITE")              # counted as the trunk's one call until call control lets it go
            first = answers(s, 1)
            sip(s, port, "INVITE")
            second = answers(s, 1)
            assert not first[0].startswith("SIP/2.0 503")
            assert second[0].startswith("SIP/2.0 503 Trunk call limit reached")
            # the first was refused by call control (9999 is no called route): it leaves the count
            deadline = time.monotonic() + 30
            while nt.call(lambda: len(nt.node.trunks.caps["carrier"].active)) and time.monotonic() < deadline:
                time.sleep(0.05)
            sip(s, port, "INVITE")
            assert not answers(s, 1)[0].startswith("SIP/2.0 503")
        assert nt.call(lambda: nt.node.trunks.caps["carrier"].stats) == {"admitted": 2, "over_rate": 0,
                                                                         "over_calls": 1}
    finally:
        nt.stop()
