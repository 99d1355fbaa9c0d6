"""Supervisors on agents' calls: listen (hears both, heard by none), whisper (heard by the agent only), barge
(three-party) and intercept (the supervisor takes the customer, the agent is released).

The supervisor's phone is called once (auto-answer); switching modes afterwards only changes who hears whom
(the media mixer's masks), the customer and the agent see no new call.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import RemoteCallError

MODES = ("listen", "whisper", "barge", "intercept")

# Who hears whom in each mode (the mixer's masks, media/mixer.py): listener -> the parties it hears.
HEARS: dict[str, dict[str, frozenset[str]]] = {
    "listen": {"supervisor": frozenset({"agent", "customer"}), "agent": frozenset({"customer"}),
               "customer": frozenset({"agent"})},
    "whisper": {"supervisor": frozenset({"agent", "customer"}), "agent": frozenset({"customer", "supervisor"}),
                "customer": frozenset({"agent"})},
    "barge": {"supervisor": frozenset({"agent", "customer"}), "agent": frozenset({"customer", "supervisor"}),
              "customer": frozenset({"agent", "supervisor"})},
    "intercept": {"supervisor": frozenset({"customer"}), "customer": frozenset({"supervisor"}),
                  "agent": frozenset()},
}


class SuperviseError(RemoteCallError):
    """A supervision request refused: `status` is the HTTP status to answer."""


@dataclass(frozen=True)
class Supervise:
    """What a supervision request does: "apply" the mode now (the supervisor is connected), "pending" (the
    supervisor's phone rings; the mode applies when it answers) or "call" the supervisor's phone."""
    action: str
    mode: str

    @property
    def result(self) -> str:
        return self.mode if self.action == "apply" else "calling"


def decide(mode: str, *, anchored: bool, call, has_binding: bool) -> Supervise:
    if mode not in MODES:
        raise SuperviseError(400, f"mode must be one of {', '.join(MODES)}")
    if not anchored:
        raise SuperviseError(409, "supervision needs media anchored by the switch (server.media.anchor)")
    if call is None or call.agent_leg is None or call.agent_leg.stream is None:
        raise SuperviseError(404, "no connected call with that id")
    sup = call.supervisor
    if sup is not None and sup.state == "confirmed":
        return Supervise("apply", mode)
    call.supervisor_mode = mode
    if sup is not None:
        return Supervise("pending", mode)
    if not has_binding:
        raise SuperviseError(409, "the supervisor's softphone is not registered")
    return Supervise("call", mode)


def offer_headers(domain: str, call_id: str, path: list[str]) -> list[tuple[str, str]]:
    """The supervisor's phone answers at once (auto-answer hints) and is told which call it joins."""
    return ([("Call-Info", f"<sip:{domain}>;answer-after=0"),
             ("Alert-Info", "<http://localhost>;info=alert-autoanswer;delay=0"),
             ("X-CC-Supervise", call_id)] + [("Route", p) for p in path])
