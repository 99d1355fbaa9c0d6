"""The errors of the ACD: one root, split like h11's.

The ACD reads nothing from peers: the shell turns SIP and API input into its calls, and checks that input
itself. So what the ACD raises is on the local side: `LocalProtocolError`, the caller asked for something
the state does not allow (`AgentStateError`: a move the agent table refuses; `AcdError`: an unknown agent,
queue or call, or a call that is not where the request expects it). The API answers them with 4xx because
they are what an agent's or supervisor's request ran into, but to the ACD they are its caller's mistakes.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Root of the ACD's errors."""


class LocalProtocolError(ProtocolError):
    """A request the ACD's state does not allow."""
