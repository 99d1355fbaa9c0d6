"""A fake shell for the call core: a fake clock, the real (pure) ACD, and a log of every effect.

It does what softswitch/b2bua/control.py does with the core's effects, minus sockets and media: ACD effects run the
ACD and feed its actions back (an Offer rings a new agent leg), LegFailed goes back to the core.
"""

from __future__ import annotations

import random

from acd import Acd, Agent, Leave, Offer, QueueSpec, Withdraw
from softswitch.calls import flow
from softswitch.calls.call import Call
from acd import handover
from softswitch.calls.effects import (AcdCallback, AcdCallEnded, AcdCallerGone, AcdConsult, AcdConsultOver,
                                      AcdOfferFailed, AcdTakeOver, AcdTransfer, LegFailed, WriteCdr)
from softswitch.calls.flow import CallCore
from softswitch.calls.leg import LegState


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class World:
    def __init__(self, agents: int = 2, extra_agents: tuple = (), **queue) -> None:
        self.clock = Clock()
        spec = QueueSpec("sales", **{"ring_timeout": 15.0, "wrap_up": 5.0, **queue})
        ags = [Agent(str(1001 + i), str(70001 + i), {"sales": 0}, order=i) for i in range(agents)]
        self.acd = Acd([spec, QueueSpec("support", ring_timeout=15.0, wrap_up=5.0)], ags + list(extra_agents),
                       self.clock, random.Random(1))
        self.core = CallCore(node_id="n1")
        self.effects: list = []
        self.rung: list[LegState] = []          # agent legs in the order they were offered
        self.cdrs: list[dict] = []

    @property
    def now(self) -> float:
        return self.clock.t

    def ready(self, *agent_ids: str) -> None:
        for a in agent_ids:
            self.acd.registration(a, True)
            self.act(self.acd.sign_in(a))

    def set_state(self, agent_id: str, state: str) -> None:
        self.act(self.acd.set_state(agent_id, state))

    # the shell's side ----------------------------------------------------------------------------------------
    def carry(self, effects: list) -> list:
        self.effects += effects
        for e in effects:
            if isinstance(e, AcdOfferFailed):
                self.act(self.acd.offer_failed(e.call_id, e.agent_id, e.reason))
            elif isinstance(e, AcdCallEnded):
                self.act(self.acd.call_ended(e.call_id))
            elif isinstance(e, AcdCallerGone):
                self.act(self.acd.caller_gone(e.call_id))
            elif isinstance(e, AcdConsult):
                self.act(handover.begin_consult(self.acd, e.agent_id, e.other, e.key))
            elif isinstance(e, AcdConsultOver):
                self.act(handover.consult_over(self.acd, e.key))
            elif isinstance(e, AcdTakeOver):
                self.act(handover.take_over(self.acd, e.call_id, e.agent_id, e.key))
            elif isinstance(e, AcdTransfer):
                self.act(self.acd.transfer(e.call_id, e.queue, e.agent_id))
            elif isinstance(e, AcdCallback):
                self.act(self.acd.callback(e.call_id))
            elif isinstance(e, LegFailed):
                self.carry(self.core.leg_failed(e.leg, e.why, self.now, self.acd))
            elif isinstance(e, WriteCdr):
                self.cdrs.append(e.row)
        return effects

    def act(self, actions: list) -> None:
        for a in actions:
            if isinstance(a, Offer):
                call = self.core.calls[a.call_id]
                leg = LegState("uac", call, a.agent_id)
                call.offers[a.agent_id] = leg
                leg.fire("invite")
                self.rung.append(leg)
            elif isinstance(a, Withdraw):
                self.carry(self.core.withdraw(a.call_id, a.agent_id))
            elif isinstance(a, Leave):
                self.carry(self.core.end_call(self.core.calls[a.call_id], a.reason, self.now, self.acd))

    # the peers' side -----------------------------------------------------------------------------------------
    def customer_calls(self, call_id: str = "c1", interval: int = 0, we_refresh: bool = True,
                       queue: str = "sales", priority: int = 0) -> Call:
        leg = LegState("uas")
        call = Call(call_id, leg, "100", self.now)
        call.queue, call.priority = queue, priority
        leg.call = call
        leg.fire("answer")
        self.core.add(call)
        self.carry(flow.start_session(leg, interval, we_refresh))
        self.act(self.acd.enqueue(call_id, queue, priority))
        return call

    def rings(self, leg: LegState) -> list:
        return self.carry(flow.provisional(leg, 180))

    def answers(self, leg: LegState, body: bytes = b"v=0 agent", record: bool = False) -> list:
        """The agent phone's 2xx, as the shell handles it: the unwanted are BYE'd, else the ACD decides."""
        unwanted = flow.answered(leg)
        if unwanted:
            return self.carry(unwanted)
        self.carry(flow.start_session(leg, 1800, True))
        self.act(self.acd.answered(leg.call.id, leg.agent_id))
        return self.carry(self.core.connected(leg.call, leg, self.now, body=body, record=record))

    def rejects(self, leg: LegState, status: int) -> list:
        return self.carry(self.core.agent_rejected(leg.call, leg, status))

    def hangs_up(self, leg: LegState) -> list:
        return self.carry(self.core.peer_bye(leg, self.now, self.acd))

    def tick(self, seconds: float) -> None:
        self.clock.t += seconds
        self.act(self.acd.tick())

    def of(self, kind) -> list:
        return [e for e in self.effects if isinstance(e, kind)]
