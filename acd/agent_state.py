"""The agent state machine, all of it: what every (state, event) pair does, in one place.

States: offline (not signed in), idle (ready), ringing (an offer is out), talking, busy (not ready, with a
reason), rest, wrap_up (timed after-call work).

Every pair is one of four kinds, and `kind()` says which:
  move      TABLE: the agent goes to the new state;
  deferred  DEFERRED: while talking, signing out and losing the phone wait for the call to end, then take
            effect with the reason in DEFERRED_REASON (`follow_up`);
  no-op     NO_OP: the request is already met (signing in twice, signing out while offline);
  refused   anything else: AgentStateError.
Two rules sit beside the table: signing in needs a registered softphone (checked first, in any state), and
an offer still ringing is withdrawn before a sign-out or the loss of the phone (WITHDRAW_FIRST; the ACD
does it, since the offer is its business). The ACD changes agents only through `apply` and `follow_up`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import LocalProtocolError

if TYPE_CHECKING:
    from .agents import Agent

STATES = ("offline", "idle", "ringing", "talking", "busy", "rest", "wrap_up")
AVAILABLE_FOR_CHANGE = ("idle", "busy", "rest", "wrap_up")
SETTABLE = ("idle", "busy", "rest")         # the states an agent (or supervisor) may ask for by name

TABLE: dict[tuple[str, str], str] = {}
for _s in AVAILABLE_FOR_CHANGE:
    TABLE[(_s, "set_idle")] = "idle"
    TABLE[(_s, "set_busy")] = "busy"
    TABLE[(_s, "set_rest")] = "rest"
    TABLE[(_s, "sign_out")] = "offline"
    TABLE[(_s, "unregistered")] = "offline"
    TABLE[(_s, "outbound")] = "talking"     # the agent placed a call
TABLE.update({
    ("offline", "sign_in"): "idle",
    ("idle", "offer"): "ringing",
    ("ringing", "answered"): "talking",
    ("ringing", "no_answer"): "busy",        # reason no_answer: the agent is away from the phone
    ("ringing", "declined"): "busy",         # the phone refused the call (486/603/...)
    ("ringing", "withdrawn"): "idle",        # the customer hung up or the call left the queue
    ("ringing", "sign_out"): "offline",      # (the ACD withdraws the offer first: WITHDRAW_FIRST)
    ("ringing", "unregistered"): "offline",
    ("talking", "hangup"): "wrap_up",
    ("talking", "hangup_no_wrap"): "idle",
    ("wrap_up", "wrap_up_done"): "idle",
})
# While talking, sign-out and losing the phone take effect when the call ends, with these reasons.
DEFERRED = {("talking", "sign_out"), ("talking", "unregistered")}
DEFERRED_REASON = {"sign_out": "signed out", "unregistered": "softphone unregistered"}
NO_OP = {(s, "sign_in") for s in STATES if s != "offline"} | {("offline", "sign_out"), ("offline", "unregistered")}
WITHDRAW_FIRST = {("ringing", "sign_out"), ("ringing", "unregistered")}
EVENTS = tuple(sorted({e for _, e in TABLE} | {e for _, e in DEFERRED}))
# What the refusal says, where the event's name does not say it well (a phone hears the outbound one).
REFUSALS = {"outbound": "cannot call out while {state}"}


class AgentStateError(LocalProtocolError):
    """A change the table does not allow (e.g. sign-in while offline without a phone)."""

    def __init__(self, state: str, event: str, why: str = "") -> None:
        self.state, self.event = state, event
        why = why or REFUSALS.get(event, "cannot {event} while {state}").format(
            event=event.replace("_", " "), state=state)
        super().__init__(why)


def kind(state: str, event: str) -> str:
    """move, deferred, no-op or refused (see the module doc)."""
    if (state, event) in DEFERRED:
        return "deferred"
    if (state, event) in TABLE:
        return "move"
    if (state, event) in NO_OP:
        return "no-op"
    return "refused"


def apply(agent: Agent, event: str, now: float, reason: str = "") -> tuple[str, str] | None:
    """Move the agent by the table; (old, new), or None when nothing changed (deferred, no-op, same state)."""
    state = agent.state
    if event == "sign_in" and not agent.registered:
        raise AgentStateError(state, event, "sign-in needs a registered softphone")
    k = kind(state, event)
    if k == "deferred":
        agent.pending = event
        return None
    if k == "no-op":
        return None
    if k == "refused":
        raise AgentStateError(state, event)
    new = TABLE[(state, event)]
    if state == new and agent.reason == reason:
        return None
    agent.state, agent.reason, agent.since = new, reason, now
    if new == "idle":
        agent.idle_since = now
    if new not in ("ringing", "talking"):
        agent.call_id = None
    return state, new


def follow_up(agent: Agent, left: str) -> tuple[str, str] | None:
    """After a move out of `left`: the deferred event that now takes effect, and its reason (taken off the
    agent), or None."""
    if left != "talking" or agent.pending is None:
        return None
    event, agent.pending = agent.pending, None
    return event, DEFERRED_REASON[event]
