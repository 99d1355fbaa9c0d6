"""PhoneWatch, the keepalive shell, with stand-ins for the endpoint and the registrar and a fake clock: what it
sends, how it finds the answers (from the datagram, or parsed), what it concludes, which bindings a closed
connection takes, and a reload of its settings."""

from __future__ import annotations

import asyncio
import time

from softswitch.endpoint import Endpoint as SipEndpoint
from softswitch.registrar.keepalive import KeepaliveOptions
from softswitch.registrar.location import Binding
from softswitch.registrar.phones import PhoneWatch
from softswitch.sip.message import make_response
from softswitch.sip.parser import parse_message
from softswitch.transport.base import Target


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Late:
    """Where the first probe of a binding falls: at 90% of the interval (a schedule the tests can count on)."""
    def uniform(self, a: float, b: float) -> float:
        return a + 0.9 * (b - a)


class Endpoint:
    def __init__(self) -> None:
        self.sent: list = []
        self.connections: set = set()

    def send_stateless(self, req, target):
        # as the wire carries it: parsed back from its bytes
        self.sent.append((parse_message(req.serialize()), target))


def answer(w, req, status: int = 200) -> bool:
    """The phone's answer to the probe `req`, as a datagram through the endpoint's response lane."""
    return w.answer_datagram(make_response(req, status).serialize())


class Calls:
    def binding_target(self, b):
        return Target(b.source[0], b.source[1], b.source[2])

    def via_for(self, proto: str) -> str:
        return f"SIP/2.0/{proto.upper()} 127.0.0.1:5060;rport"


class Registrar:
    def __init__(self) -> None:
        self.dropped: list = []

    async def drop(self, aor, keys, now):
        self.dropped.append((aor, set(keys)))
        return []


class Conn:
    def __init__(self, proto: str, port: int) -> None:
        self.proto, self.peer, self.closed = proto, ("127.0.0.1", port), False


def binding(user: str, proto: str, port: int, key: str = "k") -> Binding:
    return Binding(aor=f"sip:{user}@cc.test", user=user, contact=f"sip:{user}@127.0.0.1:{port}", key=key,
                   expires_at=time.time() + 300, call_id=f"c-{user}", cseq=1, source=(proto, "127.0.0.1", port))


def watch(options=KeepaliveOptions(interval=10, timeout=2, failures=2)):
    loop = asyncio.new_event_loop()
    clock = Clock()
    w = PhoneWatch(loop, Endpoint(), Registrar(), options, Calls(), "cc.test", clock=clock)
    w.core.rng = Late()
    heard: list = []
    w.listeners.append(lambda user, before, after: heard.append((user, len(w.reachable(after)))))
    return w, clock, heard, loop


def test_probes_go_to_each_binding_and_silence_makes_it_unreachable():
    w, clock, heard, loop = watch()
    a, b = binding("70001", "udp", 5001), binding("70002", "tcp", 5002)
    w.on_bindings("70001", [], [a])
    w.on_bindings("70002", [], [b])
    clock.now += 10
    w._tick()
    sent = w.endpoint.sent
    assert sorted(str(req.uri) for req, _ in sent) == ["sip:70001@127.0.0.1:5001", "sip:70002@127.0.0.1:5002"]
    req, target = next(s for s in sent if "70001" in str(s[0].uri))
    assert req.method == "OPTIONS" and target.proto == "udp" and req.get("To") == "<sip:70001@cc.test>"
    assert answer(w, req)                                 # 70001 answers; 70002 never does
    for _ in range(2):
        clock.now += 10
        w._tick()
        for req, _ in w.endpoint.sent[-2:]:
            if "70001" in str(req.uri):
                assert answer(w, req)
    clock.now += 3
    w._tick()
    assert heard == [("70002", 0)]                        # told once, with no reachable binding left
    # one datagram per probe, each its own branch: nothing re-sent, nothing left waiting for those given up
    branches = [req.top_via.param("branch") for req, _ in w.endpoint.sent]
    assert len(branches) == len(set(branches)) == 6 and w._pending == {}
    assert w.reachable([a, b]) == [a]
    # it registers again: reachable at once, no probe needed
    again = binding("70002", "tcp", 5002)
    again.cseq = 2
    w.on_bindings("70002", [b], [again])
    assert w.reachable([again]) == [again]
    loop.close()


def test_a_closed_connection_drops_only_its_bindings_and_a_reload_keeps_verdicts():
    w, clock, heard, loop = watch()
    tcp1, tcp2 = binding("70001", "tcp", 5001), binding("70002", "tcp", 5002, key="a")
    other = binding("70002", "ws", 5003, key="b")
    w.on_bindings("70001", [], [tcp1])
    w.on_bindings("70002", [], [tcp2, other])
    w.flow_listeners.append(lambda user: heard.append(("flow", user)))
    w.flow_closed(Conn("tcp", 5002))
    loop.run_until_complete(asyncio.sleep(0))
    assert w.registrar.dropped == [("sip:70002@cc.test", {"a"})] and heard == [("flow", "70002")]
    w.flow_closed(Conn("tcp", 5099))                      # a connection nobody registered over
    assert len(w.registrar.dropped) == 1
    # after a restart: stream bindings whose connection is not there are dropped
    w.endpoint.connections = {Conn("tcp", 5001)}
    w.drop_orphans()
    loop.run_until_complete(asyncio.sleep(0))
    assert ("sip:70002@cc.test", {"b"}) in w.registrar.dropped
    assert ("sip:70001@cc.test", {"k"}) not in w.registrar.dropped
    # new keepalive settings: the schedule starts again, an unreachable binding stays so
    w.core.add(("sip:70001@cc.test", "k"), clock.now)
    w.core._peers[("sip:70001@cc.test", "k")].unreachable = True
    w.set_options(KeepaliveOptions(interval=20, timeout=1, failures=5))
    assert w.core.options.interval == 20 and w.core.is_unreachable(("sip:70001@cc.test", "k"))
    w.stop()
    w.flow_closed(Conn("tcp", 5001))                      # stopping: connections close, bindings stay
    assert ("sip:70001@cc.test", {"k"}) not in w.registrar.dropped
    loop.close()


def test_probes_wait_while_the_node_sheds_and_go_out_after():
    w, clock, heard, loop = watch()
    shedding = [True]
    w.deferring = lambda: shedding[0]
    w.on_bindings("70001", [], [binding("70001", "udp", 5001)])
    clock.now += 10
    w._tick()
    assert w.endpoint.sent == [] and w.stats["ticks_deferred"] == 1
    w._rearm()                                            # a registration meanwhile leaves the deferral armed
    assert w._timer is not None and w._armed_for is not None
    clock.now += 5                                        # long past the probe's timeout: nobody concluded anything
    w._tick()
    assert w.endpoint.sent == [] and heard == []
    shedding[0] = False
    w._tick()
    sent = [str(req.uri) for req, _ in w.endpoint.sent]
    assert sent and set(sent) == {"sip:70001@127.0.0.1:5001"}
    w._timer.cancel()
    loop.close()


def probed(user: str = "70001", proto: str = "udp"):
    """A watch with one binding of `user`, probed once: (watch, clock, heard, loop, the probe as sent)."""
    w, clock, heard, loop = watch()
    w.on_bindings(user, [], [binding(user, proto, 5001)])
    clock.now += 10
    w._tick()
    (req, _), = w.endpoint.sent
    return w, clock, heard, loop, req


def test_an_answer_is_found_by_its_branch_from_the_datagram_or_parsed():
    for status in (200, 404, 501):                       # any answer: the phone is there
        w, clock, heard, loop, req = probed()
        data = make_response(req, status).serialize()
        assert w.answer_datagram(data) and w._pending == {}
        assert w.core.stats["answered"] == 1
        loop.close()
    # the same answer parsed (a stream's, or a datagram the lane did not read): the stray-response handler
    w, clock, heard, loop, req = probed(proto="tcp")
    resp = parse_message(make_response(req, 200).serialize().replace(b"Via:", b"v:"))
    assert w.answer(resp, Target("tcp", "127.0.0.1", 5001)) and w.core.stats["answered"] == 1
    loop.close()


def test_only_the_probe_outstanding_with_its_secret_counts():
    w, clock, heard, loop, req = probed()
    branch = req.top_via.param("branch")
    data = make_response(req, 200).serialize()
    token, secret = branch.split(".")[1:]
    forged = data.replace(secret.encode(), b"0" * 16)
    longer = data.replace(secret.encode(), secret.encode() + b"x")
    other = data.replace(branch.encode(), branch.replace(token, format(int(token, 16) + 1, "x")).encode())
    for fake in (forged, longer, other):
        assert not w.answer_datagram(fake)               # left to the parser, and it proves nothing there
        assert w.answer(parse_message(fake), None)       # ... where it is a probe's, and dropped
    assert w.core.stats["answered"] == 0 and len(w._pending) == 1
    clock.now += 3                                       # past the timeout: given up
    w._tick()
    assert w._pending == {}
    # the answer after its probe was given up (on the fake clock above) counts for nothing
    assert not w.answer_datagram(data) and w.core.stats["answered"] == 0
    loop.close()


def test_responses_that_are_not_a_probes_go_to_the_parser():
    w, clock, heard, loop, req = probed()
    data = make_response(req, 200).serialize()
    branch = req.top_via.param("branch").encode()
    assert not w.answer_datagram(data.replace(branch, b"z9hG4bK-other"))
    assert not w.answer_datagram(data.replace(b";branch=" + branch, b"") + b"x;branch=" + branch)   # in a body
    assert not w.answer(parse_message(data.replace(branch, b"z9hG4bK-other")), None)
    assert w.core.stats["answered"] == 0
    loop.close()


def test_the_lane_stays_linear_on_hostile_shapes():
    w, clock, heard, loop, req = probed()
    t0 = time.process_time()
    for filler in (b"0" * 60000, b";branch=z9hG4bKka." * 3000, b"z9hG4bKka.0." * 5000, b"\r\n" * 30000):
        for data in (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKka." + filler,
                     b"SIP/2.0 200 OK\r\n" + filler + b"\r\n\r\n", b"SIP/2.0 200 OK\r\nv: x" + filler):
            w.answer_datagram(data)
    # CPU time, not wall-clock: a linear scan of these takes milliseconds, a quadratic one seconds
    assert time.process_time() - t0 < 1.0 and w.core.stats["answered"] == 0
    loop.close()


def test_the_endpoint_hands_probe_answers_to_the_lane_and_other_strays_to_the_parsed_path():
    w, clock, heard, loop, req = probed()
    ep = SipEndpoint(loop)
    ep.response_lane = w.answer_datagram
    ep.stray_response_handlers.append(lambda resp, src: False)          # the call control's: not its own
    ep.stray_response_handlers.append(w.answer)
    data = make_response(req, 200).serialize()
    src = Target("udp", "127.0.0.1", 5001)
    ep.on_datagram(data, src)                                            # read from the datagram
    assert w.core.stats["answered"] == 1 and ep.counters["rx_responses"] == 1 and w._pending == {}
    clock.now += 10
    w._tick()
    req2 = w.endpoint.sent[-1][0]
    odd = make_response(req2, 200).serialize().replace(b";branch=", b";BRANCH=")   # as the parser reads it
    assert not w.answer_datagram(odd)
    ep.on_datagram(odd, src)                                             # parsed, then the stray handlers
    assert w.core.stats["answered"] == 2 and ep.counters["rx_responses"] == 2
    loop.close()


def test_a_binding_gone_or_a_reload_leaves_no_probe_waiting():
    w, clock, heard, loop, req = probed()
    assert len(w._pending) == 1
    b = next(iter(w.by_aor["sip:70001@cc.test"].values()))
    w.on_bindings("70001", [b], [])                      # unregistered while its probe is out
    assert w._pending == {}
    assert not w.answer_datagram(make_response(req, 200).serialize()) and w.core.stats["answered"] == 0
    loop.close()
    w, clock, heard, loop, req = probed()
    w.set_options(KeepaliveOptions(interval=20, timeout=2, failures=2))
    assert w._pending == {}
    w._timer.cancel()
    loop.close()
