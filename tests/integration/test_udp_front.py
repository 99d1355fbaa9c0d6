"""The UDP front process of a node run from its config: it stands by while the node keeps up; once the node's
own overload policy sheds, it reads the UDP socket for the node, answers new REGISTERs 503 itself while the node
is behind (here: its event loop held by a sleep) and passes the rest on; the node takes its socket back once it
has kept up for a while. The front follows the node's bans and lives and dies with the node; a node whose front
ends reads its socket itself."""

from __future__ import annotations

import threading
import time
import urllib.request

from softswitch.transport.front import CALM, available
from tests.integration.test_overload import _age_datagrams, register
from tests.support.cc import PASSWORDS, cc_node, wait_for
from tests.support.nodes import authorize
from tests.support.sipclient import UdpClient, options_request

# the bounds far from what a busy machine can blur: 503 once 150 ms behind (at once: no sustained run asked
# for), nothing passed on past 10 s
SLOW = ", security: {exempt: [127.0.0.2]}, overload: {queue_delay: 200ms, sustain: 0s, drop_after: 20s}"


def hold_loop(nt, seconds: float) -> None:
    """The node's event loop does nothing else for `seconds` (as a long stall would), from before this returns."""
    held = threading.Event()

    def hold() -> None:
        held.set()
        time.sleep(seconds)
    nt.loop.call_soon_threadsafe(hold)
    assert held.wait(10)


def metrics(http_port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10).read().decode()


def test_a_node_run_from_its_config_has_a_front_that_stands_by_while_the_node_keeps_up(tmp_path):
    assert available()                    # the suite runs on two cores or more
    with cc_node(tmp_path, security=SLOW) as (nt, sip_port, http_port):
        front = nt.call(lambda: nt.node.front)
        assert front is not None and front.proc.poll() is None and not front.engaged
        c = UdpClient(("127.0.0.1", sip_port))
        for i in range(5):
            c.send(options_request(sip_port, call_id=f"o{i}", branch=f"z9hG4bK-o{i}"))
            assert c.recv().status == 200
        assert 'softswitch_overload_front_total{kind="passed"} 0.0' in metrics(http_port)
        c.close()
    assert front.proc.wait(10) is not None      # the node stopped: so did its front


def test_a_node_behind_hands_its_socket_to_the_front_and_takes_it_back_once_it_keeps_up(tmp_path):
    with cc_node(tmp_path, security=SLOW) as (nt, sip_port, http_port):
        front = nt.call(lambda: nt.node.front)
        c = UdpClient(("127.0.0.1", sip_port))
        _age_datagrams(nt, 0.5)                   # what the node reads looks 0.5 s old: it is behind
        c.send(options_request(sip_port, call_id="late", branch="z9hG4bK-late"))
        assert c.recv().status == 200
        assert not nt.call(lambda: front.engaged)   # behind on other work: the front would only add its hop
        c.send(register("70001", n=1))
        assert c.recv().status == 503             # answered by the node's policy; the socket is handed over
        assert nt.call(lambda: front.engaged)
        _age_datagrams(nt, 0.0)
        for i in range(3):                        # through the front now, its source and port intact
            c.send(options_request(sip_port, call_id=f"o{i}", branch=f"z9hG4bK-o{i}"))
            answer = c.recv()
            assert answer.status == 200 and answer.top_via.param("received") == "127.0.0.1"
            assert int(answer.top_via.param("rport")) == c.addr[1]
        assert wait_for(lambda: 'softswitch_overload_front_total{kind="passed"} 3.0' in metrics(http_port))
        time.sleep(CALM + 0.5)                    # the node has kept up for CALM seconds: the next one tells it
        c.send(options_request(sip_port, call_id="o9", branch="z9hG4bK-o9"))
        assert c.recv().status == 200
        assert wait_for(lambda: not nt.call(lambda: front.engaged))
        c.send(options_request(sip_port, call_id="o10", branch="z9hG4bK-o10"))
        assert c.recv().status == 200
        assert 'softswitch_overload_front_total{kind="passed"} 4.0' in metrics(http_port)   # o10: read directly
        c.close()


def test_behind_the_front_answers_new_registrations_503_and_passes_started_ones_on(tmp_path):
    with cc_node(tmp_path, security=SLOW) as (nt, sip_port, http_port):
        c = UdpClient(("127.0.0.1", sip_port))
        started = register("70002", n=7)
        c.send(started)
        challenge = c.recv()
        assert challenge.status == 401
        nt.call(lambda: nt.node.front.engage())
        hold_loop(nt, 3.0)
        c.send(register("70001", n=1))             # passed on: the node has handled everything so far
        time.sleep(0.5)                           # ... and has not handled it yet: the node is behind
        c.send(register("70003", n=3))
        shed = c.recv(2.0)
        assert shed is not None and shed.status == 503 and shed.call_id == "reg-3@test"
        assert 5 <= int(shed.get("Retry-After")) <= 10 and shed.to.tag
        c.send(authorize(started, challenge, "70002", PASSWORDS["70002"]))   # started work goes on to the node
        # once the loop is free again: the started registration completes, and the node's own overload policy
        # answers the new one it reads 3 s late (no sustained run asked for here either)
        answers = {m.call_id: m.status for m in c.recv_all(5.0)}
        assert answers == {"reg-1@test": 503, "reg-7@test": 200}
        text = metrics(http_port)
        assert 'softswitch_overload_front_total{kind="rejected"} 1.0' in text
        assert 'softswitch_overload_total{kind="rejected"} 1.0' in text
        stats = nt.call(lambda: dict(nt.node.registrar.stats))
        assert stats["challenged"] == 1 and stats["registered"] == 1   # the refused ones never reached it
        c.close()


def test_a_source_the_node_bans_gets_nothing_from_the_front_either(tmp_path):
    with cc_node(tmp_path, security=SLOW) as (nt, sip_port, http_port):
        nt.call(lambda: nt.node.guard.ban("127.0.0.1", nt.node.loop.time(), "test"))
        nt.call(lambda: nt.node.front.engage())
        c = UdpClient(("127.0.0.1", sip_port))
        c.send(options_request(sip_port))          # passed on; the node drops it (banned)
        assert c.recv(0.5) is None
        hold_loop(nt, 2.0)
        c.send(options_request(sip_port, call_id="o2", branch="z9hG4bK-o2"))
        time.sleep(0.5)
        c.send(register("70001", n=2))              # behind, but banned: no 503
        assert c.recv(3.0) is None
        assert 'softswitch_overload_front_total{kind="rejected"} 0.0' in metrics(http_port)
        assert 'softswitch_overload_front_total{kind="dropped"} 1.0' in metrics(http_port)
        c.close()


def test_a_node_whose_front_ends_reads_its_socket_itself(tmp_path):
    with cc_node(tmp_path, security=SLOW) as (nt, sip_port, http_port):
        front = nt.call(lambda: nt.node.front)
        nt.call(front.engage)
        front.proc.kill()
        front.proc.wait(10)
        c = UdpClient(("127.0.0.1", sip_port))
        c.send(options_request(sip_port, call_id="o0", branch="z9hG4bK-o0"))  # nobody reads: it waits
        assert wait_for(lambda: nt.call(lambda: nt.node.endpoint.udp[0].front) is None)
        assert c.recv().status == 200           # ... until the node reads its socket itself again
        c.send(options_request(sip_port))
        assert c.recv().status == 200
        c.close()
