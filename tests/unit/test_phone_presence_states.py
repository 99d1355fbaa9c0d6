"""The contact center's rules for phones that come and go, driven directly (no sockets): an agent left with no
reachable phone is held busy (phone_unreachable), after their call if they are on one; back to idle with the
phone if they were idle; an unregistered phone still signs the agent out; sign-in needs a reachable phone."""

from __future__ import annotations

import asyncio
import time

import pytest

from acd import AgentStateError
from softswitch.b2bua.contact_center import ContactCenter
from softswitch.registrar.location import Binding
from softswitch.settings import parse_config
from tests.integration.test_settings import BASE


def binding(n: int = 1, proto: str = "tcp") -> Binding:
    return Binding(aor="sip:70001@cc.test", user="70001", contact=f"sip:70001@127.0.0.1:{5000 + n}", key=f"k{n}",
                   expires_at=time.time() + 300, call_id=f"c{n}", cseq=1, source=(proto, "127.0.0.1", 5000 + n))


@pytest.fixture
def center():
    loop = asyncio.new_event_loop()
    cc = ContactCenter(parse_config(BASE, "cc.yaml"), loop)
    yield cc
    cc.stop()
    loop.close()


def settle(cc: ContactCenter) -> None:
    cc.loop.run_until_complete(asyncio.sleep(0))        # what the center deferred with call_soon


def state(cc: ContactCenter) -> tuple[str, str]:
    a = cc.acd.agents["1001"]
    return a.state, a.reason


def test_a_closed_flow_during_a_call_holds_the_agent_after_it(center):
    b = binding()
    center.on_bindings("70001", [], [b])
    center.sign_in("1001")
    center.run(center.acd.enqueue, "call-1", "q1")
    center.run(center.acd.answered, "call-1", "1001")
    assert state(center)[0] == "talking"
    center.flow_lost("70001")
    center.on_bindings("70001", [b], [])
    assert state(center)[0] == "talking"                # the call goes on
    center.run(center.acd.call_ended, "call-1")
    settle(center)
    assert state(center) == ("busy", "phone_unreachable")
    center.on_bindings("70001", [], [binding(2)])        # a new connection, a new REGISTER
    assert state(center)[0] == "idle"                    # they were going to be idle after the call
    assert "1001" not in center.away


def test_an_unregistered_phone_still_signs_the_agent_out(center):
    b = binding(proto="udp")
    center.on_bindings("70001", [], [b])
    center.sign_in("1001")
    center.on_bindings("70001", [b], [])                 # REGISTER with Expires: 0 (no flow closed)
    assert state(center)[0] == "offline"
    assert "1001" not in center.away


def test_silent_bindings_do_not_count_for_a_sign_in(center):
    b = binding(proto="udp")
    silent: set[str] = set()
    center.reachable = lambda bindings: [x for x in bindings if x.key not in silent]
    center.on_bindings("70001", [], [b])
    silent.add(b.key)
    center.on_bindings("70001", [b], [b])                # the keepalive verdict
    assert not center.acd.agents["1001"].registered
    with pytest.raises(AgentStateError, match="phone_unreachable"):
        center.sign_in("1001")
    silent.clear()
    center.on_bindings("70001", [b], [b])
    assert center.sign_in("1001")["state"] == "idle"
    silent.add(b.key)
    center.on_bindings("70001", [b], [b])
    assert state(center) == ("busy", "phone_unreachable")
    # the agent signs out while away: forgotten, and nothing happens when the phone answers again
    center.sign_out("1001")
    assert "1001" not in center.away
    silent.clear()
    center.on_bindings("70001", [b], [b])
    assert state(center)[0] == "offline" and center.acd.agents["1001"].registered
