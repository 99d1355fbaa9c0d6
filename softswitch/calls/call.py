"""A call as the core knows it: the customer's leg, the agents' offers, the connected agent, and times."""

from __future__ import annotations

PRIORITIES = {"emergency": 2, "urgent": 1}       # the customer's Priority header (RFC 3261 s. 20.26)


class Call:
    def __init__(self, call_id: str, customer, number: str, now: float) -> None:
        self.id = call_id
        self.customer = customer
        self.number = number
        self.queue = ""
        self.offers: dict[str, object] = {}     # agent id -> agent leg ringing or answered
        self.agent_leg = None                   # the connected agent
        self.offer_sdp = b""                    # the customer's session description
        self.answer_sdp = b""                   # outbound, anchored: our answer to the agent's offer
        self.video = False
        self.started = now
        self.answered_at = 0.0
        self.ended = False
        self.outbound_to = None                 # outbound calls: the called leg
        self.to_agent = False                   # a trunk's call to an agent's own number (outbound_to rings it)
        self.supervisor = None                  # a supervisor listening, whispering or barging in
        self.callback = False                   # the caller hung up to be called back in turn
        self.customer_contact = ""
        self.supervisor_mode = ""
        self.ivr = None
        self.priority = 0
        self.offer = None                       # the customer's parsed SDP offer (media anchored: leg.stream)
        self.recording = None
        self.committed = None                   # the shell's: a Future, the call's last records stored
        self.transfers: list | None = None      # transfers so far (dicts for the CDR), None: none
        self.consult = None                     # calls.consult.Consult while the agent consults a second party

    def legs(self) -> list:
        """Every leg of the call, the customer's first."""
        second = self.consult.leg if self.consult is not None else None
        return [leg for leg in (self.customer, self.agent_leg, self.outbound_to, self.supervisor, second,
                                *self.offers.values()) if leg is not None]

    def other_side(self, leg):
        """The leg talking with `leg` (customer <-> connected agent), None for any other."""
        if leg is self.customer:
            return self.agent_leg
        return self.customer if leg is self.agent_leg else None


def priority_of(header: str | None) -> int:
    return PRIORITIES.get((header or "").strip().lower(), 0)
