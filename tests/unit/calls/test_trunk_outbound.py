"""Outbound calls over the trunks on the pure core, with a fake clock: the failover sequence on 503 and on a silent
trunk, the digest answer to a trunk's challenge, what the caller hears when no trunk is left, and the agent's
side of it (ringing meanwhile, a clear refusal)."""

from __future__ import annotations

import hashlib

from softswitch.calls.call import Call
from softswitch.calls.effects import Respond
from softswitch.calls.leg import LegState
from softswitch.calls.trunk_outbound import (Abandon, ArmAttempt, Authenticate, GiveUp, Place, TrunkDial,
                                             TrunkFailed, agent_hears_progress, agent_queue, final_status,
                                             no_trunk_answered)
from softswitch.settings.trunks import Secret, Trunk, TrunkSettings
from softswitch.sip.digest import DigestAuth, parse_authorization
from softswitch.trunks.dialplan import CallerIds, DialPlan, Route
from softswitch.trunks.numbers import NumberPlan
from softswitch.trunks.outbound import OutboundCall

from .harness import World


def settings(auth: Secret | None = None) -> TrunkSettings:
    return TrunkSettings(
        trunks=(Trunk("a", addresses=("192.0.2.1",)),
                Trunk("b", addresses=("192.0.2.2",), numbers=NumberPlan(country_code="49", send_as="national"),
                      outbound_auth=auth)),
        dial_plan=DialPlan((Route("+49*", ("a", "b")),),
                           CallerIds("+4930555000", {"support": "+4930555100"}, {"1002": "+4930555999"})))


def dial(usable=lambda n: True, auth=None, queue=None, agent=None) -> TrunkDial:
    return TrunkDial(OutboundCall(settings(auth), "+4930123456", usable, queue, agent), attempt_timeout=4.0)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0


def test_failover_on_503_to_the_next_trunk_in_its_number_format_with_the_queues_caller_id():
    clock, d = Clock(), dial(queue="support")
    first = d.start(clock.t)
    assert first == [Place(first[0].attempt), ArmAttempt(1004.0)]
    a = first[0].attempt
    assert (a.trunk, a.uri, a.caller_id) == ("a", "sip:+4930123456@192.0.2.1:5060", "+4930555100")
    clock.t += 0.2
    assert d.provisional(100, clock.t) == []
    out = d.final(503, clock.t)
    assert out[0] == TrunkFailed("a", 503) and isinstance(out[1], Place) and out[2] == ArmAttempt(clock.t + 4)
    b = out[1].attempt
    assert (b.trunk, b.uri, b.caller_id) == ("b", "sip:030123456@192.0.2.2:5060", "030555100")
    assert d.final(200, clock.t + 3) == [] and d.answered and d.done
    assert d.timer(clock.t + 4) == []                 # a timer that fires late decides nothing


def test_a_silent_trunk_is_given_up_when_the_attempt_timer_fires_and_the_next_is_tried():
    clock, d = Clock(), dial()
    d.start(clock.t)
    clock.t += 0.5
    assert d.provisional(100, clock.t) == [] and d.timer(1004.0) == []     # a trunk that answered is not silent
    d = dial()
    d.start(1000.0)
    clock.t = 1004.0
    out = d.timer(clock.t)
    assert out[:2] == [Abandon(), TrunkFailed("a", "timeout")]
    assert out[2].attempt.trunk == "b" and out[3] == ArmAttempt(1008.0)
    assert d.provisional(180, clock.t + 1) == []      # b rings: the timer no longer gives it up
    assert d.timer(1008.0) == []
    assert not d.done


def test_every_trunk_silent_ends_with_480_and_a_reason():
    clock, d = Clock(), dial()
    d.start(clock.t)
    d.timer(1004.0)
    out = d.timer(1008.0)
    assert out == [Abandon(), TrunkFailed("b", "timeout"), GiveUp(480, "No answer from trunk b")]
    assert d.done and d.timer(1012.0) == []


def test_all_trunks_down_refuses_at_once_with_503_and_says_so():
    d = dial(usable=lambda n: False)
    assert d.start(1000.0) == [GiveUp(503, "All trunks down or at their call limit")]


def test_a_busy_callee_does_not_fail_over_and_the_agent_hears_busy():
    d = dial()
    d.start(1000.0)
    assert d.final(486, 1001.0) == [TrunkFailed("a", 486), GiveUp(486, "Refused by the far side (486)")]


def test_transport_errors_and_transaction_timeouts_fail_over_like_a_503():
    d = dial()
    d.start(1000.0)
    assert d.unreachable("error", 1000.1)[0] == TrunkFailed("a", "network_error")
    assert d.unreachable("timeout", 1032.0)[:2] == [TrunkFailed("b", "timeout"), GiveUp(480, "No answer from trunk b")]


def test_final_status_for_each_way_the_walk_can_end():
    assert final_status([], []) == (503, "No trunk for this number")
    assert final_status([("a", 503), ("b", 502)], [])[0] == 503
    assert final_status([("a", "network_error")], []) == (503, "Trunk a unreachable")
    assert final_status([("a", 407)], [])[0] == 403                 # credentials refused: never passed back
    assert final_status([("a", 302)], [])[0] == 480


def test_a_trunks_challenge_is_answered_once_with_its_outbound_credentials():
    secret = Secret("acct7", "Trunk-Pass9")
    server = DigestAuth("carrier.example", b"k" * 32)
    d = dial(usable=lambda n: n == "b", auth=secret)
    (place, arm) = d.start(1000.0)
    assert place.attempt.trunk == "b"
    challenge = server.challenge(1000.0)
    out = d.final(407, 1000.1, challenge, proxy=True)
    assert isinstance(out[0], Authenticate) and out[0].header == "Proxy-Authorization" and out[1] == ArmAttempt(1004.1)
    _, p = parse_authorization(out[0].value)
    assert (p["username"], p["uri"]) == ("acct7", place.attempt.uri)
    result = server.verify("INVITE", out[0].value, lambda user, alg: hashlib.md5(
        f"{user}:carrier.example:Trunk-Pass9".encode()).hexdigest() if user == "acct7" else None, 1000.2)
    assert result.kind == "ok", result
    # the same trunk challenging again: the credentials are wrong, no loop; b was the last trunk
    assert d.final(407, 1000.3, challenge, proxy=True) == [
        TrunkFailed("b", 407), GiveUp(403, "Trunk b refused the call (407)")]


def test_a_challenge_from_a_trunk_without_credentials_fails_over():
    d = dial()
    d.start(1000.0)
    out = d.final(401, 1000.1, ['Digest realm="x", nonce="n"'])
    assert out[0] == TrunkFailed("a", 401) and out[1] == GiveUp(403, "Trunk a refused the call (401)")


def test_the_agent_hears_ringing_during_failover_and_gets_the_reason_when_none_answers():
    w = World()
    w.ready("1001")
    a = LegState("uas", agent_id="1001")
    call = Call("out-t", a, "+4930123456", w.now)
    a.call = call
    w.act(w.acd.outbound("1001", call.id))
    w.core.add(call)
    call.outbound_to = LegState("uac", call)
    call.outbound_to.fire("invite")
    assert agent_hears_progress(call) == [Respond(a, 180, provisional=True)]
    out = w.carry(no_trunk_answered(w.core, call, 503, "All trunks failed (last: b 503)", w.now, w.acd))
    assert out[0] == Respond(a, 503, reason="All trunks failed (last: b 503)")
    assert call.ended and call.outbound_to.state == "ended" and agent_hears_progress(call) == []
    assert w.cdrs and w.acd.agents["1001"].state != "talking"


def test_no_trunk_tried_at_all_still_ends_the_call_cleanly():
    w = World()
    w.ready("1001")
    a = LegState("uas", agent_id="1001")
    call = Call("out-u", a, "+4930123456", w.now)
    a.call = call
    w.core.add(call)
    call.outbound_to = LegState("uac", call)
    out = w.carry(no_trunk_answered(w.core, call, 503, "All trunks down or at their call limit", w.now))
    assert out[0].status == 503 and call.ended and call.outbound_to.state == "ended"


def test_caller_id_of_the_agent_before_its_most_preferred_queue_with_one():
    ids = CallerIds("+1", {"support": "+2", "sales": "+3"}, {})
    assert agent_queue({"sales": 1, "support": 0, "other": 0}, ids) == "support"
    assert agent_queue({"other": 0}, ids) is None
    d = dial(queue="support", agent="1002")
    assert d.start(0.0)[0].attempt.caller_id == "+4930555999"
