"""An agent of the ACD: who it is, which queues it serves, and its counters. Its state machine (the table,
deferred sign-out, the refusals) is agent_state.py; `Agent.apply` is that file's `apply`."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import agent_state
from .agent_state import AVAILABLE_FOR_CHANGE, DEFERRED, STATES, TABLE, AgentStateError

__all__ = ["AVAILABLE_FOR_CHANGE", "DEFERRED", "STATES", "TABLE", "Agent", "AgentStateError"]


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
        """Move by the table; returns (old, new) or None when nothing changed (deferred, no-op, same state)."""
        return agent_state.apply(self, event, now, reason)
