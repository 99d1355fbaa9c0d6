"""The call core, pure: legs (one state table), calls, and the decisions between them, as effects.

Imports no asyncio, socket, time or random: `now` is passed in, effects come out (effects.py), and the
asyncio shell (softswitch/b2bua/control.py, softswitch/b2bua/legs.py) carries them out.
"""

from .bindings import choose_binding
from .call import Call
from .errors import CallError, LocalCallError, RemoteCallError
from .flow import CallCore
from .leg import LEG_TABLE, LegState, LegStateError, step

__all__ = ["Call", "CallCore", "CallError", "LEG_TABLE", "LegState", "LegStateError", "LocalCallError",
           "RemoteCallError", "choose_binding", "step"]
