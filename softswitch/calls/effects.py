"""What the call core asks the shell to do, as typed objects (the ACD's Offer/Withdraw, aioquic's events).

The core decides; the shell (softswitch/b2bua/control.py and the Leg in softswitch/b2bua/legs.py) carries these out in the
order given. A call's end always lists WriteCdr before the hang-ups, so a shell may wait for the record to be
stored before the last BYE leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


# --- signalling on a leg -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SendBye:
    """BYE inside the leg's confirmed dialog."""
    leg: Any


@dataclass(frozen=True)
class SendCancel:
    """CANCEL our unanswered INVITE (RFC 3261 s. 9.1)."""
    leg: Any


@dataclass(frozen=True)
class SendRefresh:
    """A session-refreshing re-INVITE with the leg's current session (RFC 4028 s. 7.4)."""
    leg: Any
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Reinvite:
    """Offer a new session description to a leg's peer (media straight between the phones)."""
    leg: Any
    body: bytes


@dataclass(frozen=True)
class Respond:
    """A response to the peer's INVITE on `leg`, sent only while that INVITE is still unanswered. A
    provisional one names our Contact; `body`: early media (SDP)."""
    leg: Any
    status: int
    body: bytes = b""
    provisional: bool = False
    reason: str | None = None             # the reason phrase, when the default one would not say why


@dataclass(frozen=True)
class AnswerCall:
    """The 200 to the peer's INVITE on `leg`, with our session `body` (then resent until the ACK)."""
    leg: Any
    body: bytes


@dataclass(frozen=True)
class StopTimers:
    """Cancel the leg's 2xx-retransmission and session timers."""
    leg: Any


@dataclass(frozen=True)
class ArmSessionTimer:
    """(Re)arm the leg's session timer to fire `delay` seconds from now."""
    leg: Any
    delay: float


@dataclass(frozen=True)
class Forget:
    """Drop the leg's dialog from the dialog table: later requests in it get 481."""
    leg: Any


@dataclass(frozen=True)
class LegFailed:
    """A confirmed leg is dead (no ACK, session expired, re-INVITE failed): hang it up and end what it is part of."""
    leg: Any
    why: str


# --- media ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CloseMedia:
    leg: Any


@dataclass(frozen=True)
class PointMedia:
    """Send the leg's RTP where its SDP answer says."""
    leg: Any
    body: bytes


@dataclass(frozen=True)
class Bridge:
    """Put customer and `leg` in one room; with `body` (the leg's answer) point the leg first."""
    call: Any
    leg: Any
    body: bytes | None = None


@dataclass(frozen=True)
class AcceptBrowserAnswer:
    """A browser agent's SDP answer: finish ICE/DTLS, then bridge (or call the customer back)."""
    call: Any
    leg: Any
    body: bytes


@dataclass(frozen=True)
class Record:
    call: Any
    leg: Any


@dataclass(frozen=True)
class PlayCallbackConfirm:
    """Tell the caller their callback is booked; the shell reports back with callback_confirmed()."""
    call: Any


@dataclass(frozen=True)
class CallBack:
    """The agent answered a callback: greet the agent and call the customer."""
    call: Any
    leg: Any


@dataclass(frozen=True)
class StopIvr:
    call: Any


@dataclass(frozen=True)
class CloseRecording:
    call: Any


@dataclass(frozen=True)
class SetSupervision:
    """Change what the supervisor, agent and customer hear (listen, whisper, barge); intercept: the agent's
    stream leaves the call's room and the supervisor's joins it."""
    call_id: str
    supervisor: Any
    agent: Any
    customer: Any
    mode: str


# --- transfers ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Notify:
    """Report a REFER's progress to the phone that sent it: a NOTIFY in its dialog, Event: refer, with a
    message/sipfrag status line (RFC 3515 s. 2.4.5); `final` ends the implicit subscription."""
    leg: Any
    status: int
    reason: str
    final: bool


@dataclass(frozen=True)
class HoldCustomer:
    """The customer's stream leaves the call's room; `music`: it hears the queue's music on hold meanwhile."""
    call: Any
    music: bool = True


@dataclass(frozen=True)
class AcdTransfer:
    """Acd.transfer: the agent to wrap-up, the call back in a queue (or ringing one agent)."""
    call_id: str
    queue: str
    agent_id: str


@dataclass(frozen=True)
class StartIvr:
    call: Any
    flow: str


@dataclass(frozen=True)
class DialNumber:
    """Call `number` through the outbound path for the call's customer."""
    call: Any
    number: str


@dataclass(frozen=True)
class Mix:
    """Who is in the call's room: `present` legs join it (their music stops), `held` legs leave it and hear
    music on hold (consult, swap, conference)."""
    call: Any
    present: tuple
    held: tuple = ()


@dataclass(frozen=True)
class DialConsult:
    """Call the consult's second party (an agent's softphone or a number) for the call's agent."""
    call: Any
    phone: str


@dataclass(frozen=True)
class AcdConsult:
    """acd handover.begin_consult: `other` occupied by the consult `key`, `agent_id` flagged as consulting."""
    agent_id: str
    other: str
    key: str


@dataclass(frozen=True)
class AcdConsultOver:
    key: str


@dataclass(frozen=True)
class AcdTakeOver:
    """acd handover.take_over: the call is `agent_id`'s now, the first agent to wrap-up."""
    call_id: str
    agent_id: str
    key: str


# --- the ACD and records -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AcdOfferFailed:
    call_id: str
    agent_id: str
    reason: str            # no_answer, declined


@dataclass(frozen=True)
class AcdCallEnded:
    call_id: str


@dataclass(frozen=True)
class AcdCallerGone:
    call_id: str


@dataclass(frozen=True)
class AcdCallback:
    call_id: str


@dataclass(frozen=True)
class CallOver:
    """The call has ended: the shell drops its own indexes of it and counts it."""
    call: Any


@dataclass(frozen=True)
class WriteCdr:
    row: dict
    call: Any = field(default=None, compare=False)     # whose end the shell holds back until it is stored


@dataclass(frozen=True)
class Log:
    event: str
    fields: dict = field(default_factory=dict)
    level: str = "info"         # "debug": a routine step of every call (the CDR and queue log hold it too)


Effect = (SendBye | SendCancel | SendRefresh | Reinvite | Respond | AnswerCall | StopTimers | ArmSessionTimer | Forget | LegFailed
          | CloseMedia | PointMedia | Bridge | AcceptBrowserAnswer | Record | PlayCallbackConfirm | CallBack
          | StopIvr | CloseRecording | SetSupervision | AcdOfferFailed | AcdCallEnded | AcdCallerGone
          | AcdCallback | CallOver | WriteCdr | Log | Notify | HoldCustomer | AcdTransfer | StartIvr | DialNumber
          | Mix | DialConsult | AcdConsult | AcdConsultOver | AcdTakeOver)
