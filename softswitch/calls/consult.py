"""Consult, attended transfer and three-way conference on a connected call (media anchored on the switch).

The agent puts the customer on hold (music) and calls a second party: a ready agent (occupied by the consult in
the ACD) or a number (a registered phone). Then, in any order:

  swap        talk with the customer again, the second party on hold; swap again to go back
  conference  all three in the call's room (the mixer's N-party room)
  complete    the customer joined to the second party and the agent gone (an attended transfer: the API, or
              a REFER with Replaces from a SIP phone); the agent leaving a conference (BYE) does the same
  cancel      the second party hung up, the agent back with the customer (also when the second party leaves)

Modes of a consult: calling (the second party rings), talking (agent with the second party, customer held),
swapped (agent with the customer, second party held), conference.
"""

from __future__ import annotations

from .effects import (AcdCallEnded, AcdConsult, AcdConsultOver, AcdTakeOver, CloseMedia, DialConsult, Forget,
                      Log, Mix, Notify, PointMedia)
from .hangup import hangup
from .transfer import Target, TransferError, check


class Consult:
    __slots__ = ("target", "agent_id", "phone", "mode", "leg", "key")

    def __init__(self, target: Target, agent_id: str, phone: str, key: str) -> None:
        self.target = target
        self.agent_id = agent_id          # the consulted agent, "" for a number
        self.phone = phone                # what is dialled: the agent's softphone or the number
        self.mode = "calling"
        self.leg = None                   # the second party's leg, once the shell made it
        self.key = key                    # the consult's id in the ACD (the consulted agent talks on it)


def _ready(agent) -> bool:
    return agent is not None and agent.state == "idle" and agent.registered and not agent.elsewhere


def start(call, target: Target, *, by_agent: str | None, acd) -> list:
    """The agent holds the customer and the second party is called."""
    check(call, by_agent)
    if call.consult is not None:
        raise TransferError(409, "a consult is already in progress on this call")
    agent = call.agent_leg
    if target.kind == "agent":
        a = acd.agents.get(target.name) if acd is not None else None
        if target.name == agent.agent_id:
            raise TransferError(409, "an agent cannot consult themselves")
        if not _ready(a):
            raise TransferError(409, f"agent {target.name} is not ready for a consult")
        c = Consult(target, target.name, a.softphone, f"{call.id}#consult")
    elif target.kind == "number":
        c = Consult(target, "", target.name, f"{call.id}#consult")
    else:
        raise TransferError(501, "a consult calls an agent or a number (blind-transfer to a queue or IVR)")
    call.consult = c
    out: list = [Mix(call, present=(agent,), held=(call.customer,)),
                 Log("consult_started", {"call_id": call.id, "agent_id": agent.agent_id, "to": target.name})]
    if c.agent_id:
        out.append(AcdConsult(agent.agent_id, c.agent_id, c.key))
    return out + [DialConsult(call, c.phone)]


def answered(call, leg, body: bytes) -> list:
    """The second party answered (the shell ACKed it; an unwanted answer was BYE'd there)."""
    c = call.consult
    if c is None or c.leg is not leg or call.ended:
        return []
    c.mode = "talking"
    out: list = [PointMedia(leg, body)] if body and leg.stream is not None else []
    return out + [Mix(call, present=(call.agent_leg, leg), held=(call.customer,)),
                  Log("consult_connected", {"call_id": call.id, "to": c.target.name})]


def _mine(call, by_agent: str | None):
    check(call, by_agent)
    c = call.consult
    if c is None:
        raise TransferError(409, "no consult on this call")
    return c


def swap(call, by_agent: str | None) -> list:
    c = _mine(call, by_agent)
    if c.mode not in ("talking", "swapped"):
        raise TransferError(409, f"cannot swap while the consult is {c.mode}")
    c.mode = "swapped" if c.mode == "talking" else "talking"
    agent, cust = call.agent_leg, call.customer
    if c.mode == "swapped":
        return [Mix(call, present=(agent, cust), held=(c.leg,))]
    return [Mix(call, present=(agent, c.leg), held=(cust,))]


def conference(call, by_agent: str | None) -> list:
    c = _mine(call, by_agent)
    if c.mode == "calling":
        raise TransferError(409, "the second party has not answered yet")
    c.mode = "conference"
    return [Mix(call, present=(call.agent_leg, call.customer, c.leg)),
            Log("conference", {"call_id": call.id, "agent_id": call.agent_leg.agent_id, "with": c.target.name})]


def complete(call, now: float, *, by_agent: str | None, by: str, refer=None) -> list:
    """The customer and the second party talk on; the agent leaves (after the REFER's final NOTIFY)."""
    c = _mine(call, by_agent)
    if c.mode == "calling":
        raise TransferError(409, "the second party has not answered yet")
    return _hand_over(call, c, now, by, refer)


def _hand_over(call, c: Consult, now: float, by: str, refer=None) -> list:
    agent = call.agent_leg
    record = {"at": round(now, 3), "from_agent": agent.agent_id, "kind": "attended", "to": c.target.name,
              "by": by, "conference": c.mode == "conference"}
    call.transfers = [*(call.transfers or ()), record]
    call.consult = None
    call.agent_leg = c.leg
    c.leg.agent_id = c.agent_id
    out: list = [Log("call_transferred", {"call_id": call.id, **record})]
    out += [Mix(call, present=(call.customer, c.leg))]
    out.append(AcdTakeOver(call.id, c.agent_id, c.key) if c.agent_id else AcdCallEnded(call.id))
    if refer is not None:
        out.append(Notify(refer, 200, "OK", True))
    return out + [*hangup(agent), Forget(agent), CloseMedia(agent)]


def cancel(call, by_agent: str | None) -> list:
    """The agent drops the second party and is back with the customer."""
    c = _mine(call, by_agent)
    return [*hangup(c.leg), Forget(c.leg), *_back(call, c, "cancelled")] if c.leg is not None else \
        _back(call, c, "cancelled")


def _back(call, c: Consult, why: str) -> list:
    call.consult = None
    out: list = [Mix(call, present=(call.agent_leg, call.customer))]
    if c.leg is not None:
        out.append(CloseMedia(c.leg))
    if c.agent_id:
        out.append(AcdConsultOver(c.key))
    return out + [Log("consult_ended", {"call_id": call.id, "why": why})]


def second_failed(call, leg) -> list:
    """The second party's INVITE failed (busy, no answer, unreachable)."""
    c = call.consult
    if c is None or c.leg is not leg:
        return []
    if leg.state != "ended":
        leg.fire("failed")
    return [Forget(leg), *_back(call, c, "not answered")]


def leg_gone(call, leg, now: float) -> list | None:
    """A leg of a consulting call is over: the second party leaving ends the consult; the agent leaving hands
    the call over to an answered second party. None: not the consult's business."""
    c = call.consult
    if c is None:
        return None
    if leg is c.leg:
        return _back(call, c, "second party hung up")
    if leg is call.agent_leg and c.mode != "calling":
        return _hand_over(call, c, now, "agent left")
    return None


def joined_by_replaces(call, other, far_agent_id: str, now: float, *, refer=None) -> list:
    """A SIP phone's attended transfer (REFER with Replaces, RFC 3891): its agent talks with the customer on
    `call` and has placed `other` (the consult: the agent is its caller; the far side an agent's or any phone,
    or the agent that answered in a queue). The customer is joined to that far side, both of the agent's legs
    end (the REFER first hears its final NOTIFY), and the ACD hands the call to the far agent if there is one.
    Returns the effects; `other` must then be ended by the caller (its record says it was replaced)."""
    agent = call.agent_leg
    far = other.outbound_to or other.agent_leg
    if far is None or far.state != "confirmed" or other.customer.agent_id != agent.agent_id:
        raise TransferError(409, "the replaced call is not this agent's answered consult")
    if call.consult is not None:
        raise TransferError(409, "a consult is already in progress on this call")
    other.outbound_to = other.agent_leg = None
    other.transfers = [*(other.transfers or ()), {"at": round(now, 3), "kind": "replaced", "into": call.id}]
    record = {"at": round(now, 3), "from_agent": agent.agent_id, "kind": "attended", "to": far_agent_id or
              other.number, "by": "refer", "conference": False}
    call.transfers = [*(call.transfers or ()), record]
    far.call, far.agent_id = call, far_agent_id
    call.agent_leg = far
    out: list = [Log("call_transferred", {"call_id": call.id, "replaced": other.id, **record}),
                 Mix(call, present=(call.customer, far)),
                 AcdTakeOver(call.id, far_agent_id, other.id) if far_agent_id else AcdCallEnded(call.id)]
    if refer is not None:
        out.append(Notify(refer, 200, "OK", True))
    return out + [*hangup(agent), Forget(agent), CloseMedia(agent)]


def agent_hold(call, leg, held: bool | None) -> list:
    """The agent's phone holds (or resumes) the customer with a re-INVITE: the customer hears music on hold
    meanwhile. Outside a consult run from the API, whose room the API commands arrange."""
    if held is None or call.ended or leg is not call.agent_leg or call.consult is not None:
        return []
    if held:
        return [Mix(call, present=(leg,), held=(call.customer,)), Log("customer_held", {"call_id": call.id})]
    return [Mix(call, present=(leg, call.customer))]


def ended(call) -> list:
    """The call ends during a consult: the consulted agent is freed (the legs are hung up by the end)."""
    c = call.consult
    call.consult = None
    return [AcdConsultOver(c.key)] if c is not None and c.agent_id else []
