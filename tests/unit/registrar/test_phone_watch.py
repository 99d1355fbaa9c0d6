"""PhoneWatch, the keepalive shell, with stand-ins for the endpoint and the registrar and a fake clock: what it
sends, what it concludes, which bindings a closed connection takes, and a reload of its settings."""

from __future__ import annotations

import asyncio
import time

from softswitch.registrar.keepalive import KeepaliveOptions
from softswitch.registrar.location import Binding
from softswitch.registrar.phones import PhoneWatch
from softswitch.transport.base import Target


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Layer:
    def __init__(self) -> None:
        self.abandoned: list = []

    def new_branch(self) -> str:
        return "z9hG4bK-test"

    def abandon(self, tx) -> None:
        self.abandoned.append(tx)


class Answer:
    status = 200


class Endpoint:
    def __init__(self) -> None:
        self.sent: list = []
        self.layer = Layer()
        self.connections: set = set()

    def send_request(self, req, target, listener):
        self.sent.append((req, target, listener))
        return f"tx-{len(self.sent)}-{req.get('To')}"


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
    assert sorted(str(req.uri) for req, _, _ in sent) == ["sip:70001@127.0.0.1:5001", "sip:70002@127.0.0.1:5002"]
    req, target, listener = next(s for s in sent if "70001" in str(s[0].uri))
    assert req.method == "OPTIONS" and target.proto == "udp" and req.get("To") == "<sip:70001@cc.test>"
    listener("response", None, Answer())                # 70001 answers; 70002 never does
    for _ in range(2):
        clock.now += 10
        w._tick()
        for req, _, listener in w.endpoint.sent[-2:]:
            if "70001" in str(req.uri):
                listener("response", None, Answer())
    clock.now += 3
    w._tick()
    assert heard == [("70002", 0)]                        # told once, with no reachable binding left
    # each unanswered probe was given up (no re-sends until Timer F); the answered ones needed nothing
    abandoned = w.endpoint.layer.abandoned
    assert len(abandoned) == 3 and all("70002" in tx for tx in abandoned)
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
    sent = [str(req.uri) for req, _, _ in w.endpoint.sent]
    assert sent and set(sent) == {"sip:70001@127.0.0.1:5001"}
    w._timer.cancel()
    loop.close()
