"""A call leg's state, and every rule that changes it: one literal table (as h11's `_state.py`).

A leg is one SIP dialog the B2BUA holds: the customer's (we are UAS), an agent's, a supervisor's or an
outbound far side (we are UAC). States:

  init       made, nothing sent yet
  calling    our INVITE sent, no provisional response above 100 yet
  early      a 18x came (RFC 3261 s. 13.2.2.1); a CANCEL may go now
  confirmed  the 2xx was sent (UAS) or received and ACKed (UAC): the dialog is up
  ended      hung up (BYE or CANCEL sent, BYE received, the INVITE failed)

Events:

  invite       we send the INVITE (UAC)
  answer       we send the 200 to the peer's INVITE (UAS)
  provisional  a 1xx above 100 to our INVITE
  answered     a 2xx to our INVITE. A 2xx after we gave up (ended) leaves the leg ended: it is ACKed and
               BYE'd at once (RFC 3261 s. 15: a CANCEL that loses the race to a 2xx ends by BYE)
  failed       a final non-2xx, a timeout or a transport error for our INVITE
  hangup       we end it: BYE when confirmed, CANCEL while calling or early, nothing when init
  bye          the peer's BYE

Anything not in the table is our bug and raises LegStateError.
"""

from __future__ import annotations

from .errors import LocalCallError

STATES = ("init", "calling", "early", "confirmed", "ended")
EVENTS = ("invite", "answer", "provisional", "answered", "failed", "hangup", "bye")

LEG_TABLE: dict[tuple[str, str], str] = {
    ("init", "invite"): "calling",
    ("init", "answer"): "confirmed",
    ("init", "hangup"): "ended",
    ("calling", "provisional"): "early",
    ("calling", "answered"): "confirmed",
    ("calling", "failed"): "ended",
    ("calling", "hangup"): "ended",
    ("early", "provisional"): "early",
    ("early", "answered"): "confirmed",
    ("early", "failed"): "ended",
    ("early", "hangup"): "ended",
    ("confirmed", "hangup"): "ended",
    ("confirmed", "bye"): "ended",
    # Late news for a leg already hung up: it stays ended (a 2xx is then ACKed and BYE'd by the caller).
    ("ended", "provisional"): "ended",
    ("ended", "answered"): "ended",
    ("ended", "failed"): "ended",
    ("ended", "hangup"): "ended",
    ("ended", "bye"): "ended",
}


class LegStateError(LocalCallError):
    pass


def step(state: str, event: str) -> str:
    """The state after `event`; LegStateError for a pair the table does not have."""
    try:
        return LEG_TABLE[(state, event)]
    except KeyError:
        raise LegStateError(f"leg in state {state!r} cannot take event {event!r}") from None


class LegState:
    """What the core knows of a leg; the asyncio shell's Leg adds the dialog and the sending."""

    def __init__(self, role: str, call=None, agent_id: str | None = None) -> None:
        self.role = role                  # "uas" (the peer called us) or "uac" (we called the peer)
        self.call = call                  # the calls.call.Call it belongs to
        self.state = "init"
        self.agent_id = agent_id
        self.stream = None                # media handles the shell sets (anchored media, a browser's WebRTC):
        self.video = None                 # the core only asks whether they are there
        self.rtc = None
        self.cancelled = False            # we CANCELled (or will, at the first provisional response)
        self.cancel_pending = False       # CANCEL waits for a provisional response (RFC 3261 s. 9.1)
        self.session_expires = 0          # RFC 4028 interval in force, seconds; 0: none
        self.we_refresh = False

    @property
    def remote_uri(self) -> str:
        """The peer's name-addr (the caller, for a customer's leg); the shell's leg reads it off the dialog."""
        return ""

    @property
    def sip_call_id(self) -> str:
        return ""

    def fire(self, event: str) -> str:
        self.state = step(self.state, event)
        return self.state
