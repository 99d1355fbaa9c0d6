"""RFC 4733 DTMF on a trunk's call, with real phones (pjsua2): the carrier's leg speaks the trunk's codec (PCMA
only, its `codecs`) and the agent's phone picks PCMU from the switch's offer, so the switch mixes the two legs
rather than relaying them; the carrier's digits still reach the agent, sent on as events of the agent leg's
own telephone-event payload type, and the agent's reach the carrier. Waits are for conditions; their deadlines only bound a hang."""

from __future__ import annotations

import pytest

from tests.support.cc import PASSWORDS, Api, cc_node, wait_for

TRUNK = "trunks:\n  - {name: carrier, addresses: [127.0.0.1], reach: [acd], codecs: [PCMA, telephone-event]}\n"


@pytest.fixture(scope="module")
def phones():
    from tools.softphone import Softphones
    return Softphones.get()


def test_a_carriers_digits_reach_the_agent_whose_phone_speaks_another_codec(phones, tmp_path):
    with cc_node(tmp_path, phones=TRUNK) as (nt, port, http):
        agent = phones.account("70001", PASSWORDS["70001"], f"127.0.0.1:{port}", domain="cc.test", answer_delay=0)
        carrier = phones.account("5559000", "x", f"127.0.0.1:{port}", domain="cc.test", register=False)
        try:
            assert phones.wait(lambda: agent.registered, 5), agent.reg_codes
            api = Api(http)
            api.login("acme_alice")
            api.call("POST", "/api/agents/me/sign-in", expect=200)
            rec = carrier.call(f"sip:4001@127.0.0.1:{port}")
            assert wait_for(lambda: agent.calls and agent.calls[-1].state == "CONFIRMED", 30, phones)
            assert wait_for(lambda: api.state()["state"] == "talking", 10, phones)

            def payload_types():
                call = next(iter(nt.node.calls.calls.values()))
                legs = (call.customer, call.agent_leg)
                return [(leg.stream.pt, leg.stream.event_pt) for leg in legs]
            (carrier_pt, carrier_ev), (agent_pt, agent_ev) = nt.call(payload_types)
            assert (carrier_pt, agent_pt) == (8, 0)        # the trunk's PCMA; the phone's PCMU: mixed
            assert carrier_ev is not None and agent_ev is not None
            phones.pump(0.5)
            assert rec.send_dtmf("58#")
            got = wait_for(lambda: "".join(agent.calls[-1].dtmf) == "58#", 15, phones)
            assert got, agent.calls[-1].dtmf
            assert agent.calls[-1].send_dtmf("9*")                # and the agent's reach the carrier
            assert wait_for(lambda: "".join(rec.dtmf) == "9*", 15, phones), rec.dtmf
            rec.hangup()
            assert wait_for(lambda: agent.calls[-1].state == "DISCONNECTED", 10, phones)
        finally:
            phones.remove(agent)
            phones.remove(carrier, unregister=False)


