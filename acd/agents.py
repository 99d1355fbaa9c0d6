"""Agent states as a literal table: (state, event) -> new state. Anything not in the table is refused.

States: offline (not signed in), idle (ready), ringing (an offer is out), talking, busy (not ready, with a
reason), rest, wrap_up (timed after-call work).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import LocalProtocolError

STATES = ("offline", "idle", "ringing", "talking", "busy", "rest", "wrap_up")
AVAILABLE_FOR_CHANGE = ("idle", "busy", "rest", "wrap_up")

TABLE: dict[tuple[str, str], str] = {}
for _s in AVAILABLE_FOR_CHANGE:
    TABLE[(_s, "set_idle")] = "idle"
    TABLE[(_s, "set_busy")] = "busy"
    TABLE[(_s, "set_rest")] = "rest"
    TABLE[(_s, "sign_out")] = "offline"
    TABLE[(_s, "unregistered")] = "offline"
TABLE.update({
    ("offline", "sign_in"): "idle",
    ("idle", "offer"): "ringing",
    ("ringing", "answered"): "talking",
    ("ringing", "no_answer"): "busy",        # reason no_answer: the agent is away from the phone
    ("ringing", "declined"): "busy",         # the phone refused the call (486/603/...)
    ("ringing", "withdrawn"): "idle",        # the customer hung up or the call left the queue
    ("ringing", "sign_out"): "offline",
    ("ringing", "unregistered"): "offline",
    ("talking", "hangup"): "wrap_up",
    ("idle", "outbound"): "talking",         # the agent placed a call
    ("busy", "outbound"): "talking",
    ("rest", "outbound"): "talking",
    ("wrap_up", "outbound"): "talking",
    ("talking", "hangup_no_wrap"): "idle",
    ("wrap_up", "wrap_up_done"): "idle",
})
# While talking, sign-out and losing the phone take effect when the call ends.
DEFERRED = {("talking", "sign_out"), ("talking", "unregistered")}


class AgentStateError(LocalProtocolError):
    """A change the table does not allow (e.g. sign-in while offline without a phone)."""

    def __init__(self, state: str, event: str, why: str = "") -> None:
        self.state, self.event = state, event
        super().__init__(why or f"cannot {event.replace('_', ' ')} while {state}")


@dataclass
class Agent:
    id: str
    softphone: str
    queues: dict[str, int]                  # queue name -> penalty (lower is preferred)
    auto_answer_after: float = 2.0
    order: int = 0                          # position in the config (linear strategy)
    state: str = "offline"
    reason: str = ""
    since: float = 0.0                      # when the current state began
    idle_since: float = 0.0
    registered: bool = False
    call_id: str | None = None              # the call offered or being talked
    pending: str | None = None              # a deferred sign_out/unregistered
    wrap_up_until: float = 0.0
    elsewhere: bool = False                 # pool mode: on a call (or reserved) at another node
    answered: int = 0
    talk_time: float = 0.0
    talk_started: float = 0.0
    extra: dict = field(default_factory=dict)

    def apply(self, event: str, now: float, reason: str = "") -> tuple[str, str] | None:
        """Move by the table; returns (old, new) or None when nothing changed (deferred or same state)."""
        if (self.state, event) in DEFERRED:
            self.pending = event
            return None
        new = TABLE.get((self.state, event))
        if new is None:
            raise AgentStateError(self.state, event)
        old = self.state
        if old == new and self.reason == reason:
            return None
        self.state, self.reason, self.since = new, reason, now
        if new == "idle":
            self.idle_since = now
        if new not in ("ringing", "talking"):
            self.call_id = None
        return old, new
