"""The UDP front's gate: which datagrams the front process hands to the node and which it answers or drops
itself, from how far behind the node is.

A node alone on one event loop pays for every datagram of a storm it refuses: reading it, sorting it, sending
the 503 (about a sixth of what a served registration costs, so at twice capacity a sixth of the node goes on
refusals). With a second core the front does that there (softswitch/transport/front.py): once the node
finds itself behind, the front reads the UDP socket, passes datagrams on to the node through a local socket,
and knows from a shared counter which of them the node has handled. How long the oldest one not handled yet
has waited is how far behind the node is, right now (the node's own overload policy learns it only when it
reads that datagram). Past `wait` seconds without a break for `sustain` seconds (counted from when the node
found itself behind and handed over), as the node's policy counts an episode:

  - a new REGISTER (no credentials) gets 503 + Retry-After, built from its raw header lines as the node's
    overload policy builds it (softswitch/security/overload.py), after the guard's checks (a banned or
    rate-limited source or a scanner gets nothing);
  - anything else is passed on: responses, the second half of a challenge, requests that continue work
    in progress, and new calls, which call admission answers statefully (a stateless 503 to the
    retransmission of an INVITE already proceeding would end that call half set up).

Past `hard` seconds nothing is passed on: the node is not reading (stalled, or such work alone outruns it), and
the datagrams are dropped; clients retransmit. The node's own overload policy still sorts what it reads late
(the receive time comes with the datagram). Pure: bytes, the node's wait and the clock in, a verdict out.
"""

from __future__ import annotations

from dataclasses import dataclass

from .guard import Guard, GuardOptions
from .overload import RESPONSE, Episodes, classify, refusal, with_credentials

PASS, REJECT, DROP = "pass", "reject", "drop"


@dataclass
class GateOptions:
    wait: float = 0.15          # seconds the node is behind past which it is late ...
    sustain: float = 0.5        # ... for this long without a break before new REGISTERs are answered here (a
                                # short stall drains by itself; the phones' answers are only later)
    hard: float = 1.0           # seconds behind past which nothing more is passed on
    retry_after: int = 5        # seconds in the 503's Retry-After (spread up to twice this)


class Gate:
    def __init__(self, options: GateOptions, guard: Guard | None = None, tag: str = "ovl",
                 server: str = "") -> None:
        self.o = options
        self.guard = guard
        self._tag = tag.encode()
        self._server = b"\r\nServer: " + server.encode() if server else b""
        self.stats = {"passed": 0, "rejected": 0, "dropped": 0}
        self.episodes = Episodes()      # counted as the node's overload policy counts them

    def reconfigure(self, options: GateOptions) -> None:
        self.o = options

    def engage(self, now: float) -> None:
        """The node found itself behind at `now` and the front reads from here: a run of lateness starts."""
        self._shed(float("inf"), now)

    def _shed(self, behind: float, now: float) -> bool:
        """Whether to answer new REGISTERs here, the node `behind` seconds behind at `now`."""
        o, ep = self.o, self.episodes
        if behind <= o.wait:
            ep.on_time()
            ep.end_if_quiet(now, o.sustain)
            return False
        return ep.late(now, o.sustain)

    @property
    def shedding(self) -> bool:
        return self.episodes.shedding

    @property
    def last_late(self) -> float:
        """When the node was last seen behind."""
        return self.episodes.last_late

    def sort(self, data: bytes, host: str, behind: float, now: float) -> tuple[str, bytes | None]:
        """(verdict, 503 bytes to send back or None) for a datagram from `host`, the node `behind` seconds
        behind, at `now`."""
        stats = self.stats
        if behind > self.o.hard:
            stats["dropped"] += 1
            return DROP, None
        if not self._shed(behind, now):
            stats["passed"] += 1
            return PASS, None
        if data.startswith(b"SIP/2.0 ") or with_credentials(data):
            stats["passed"] += 1
            return PASS, None
        c = classify(data)
        if c is None or c is RESPONSE:
            stats["passed"] += 1          # the node's parser answers what can be answered
            return PASS, None
        method, continuing, _key, picked, user_agent = c
        if continuing or method != b"REGISTER":
            stats["passed"] += 1
            return PASS, None
        reply = refusal(method, picked, self._tag, self.o.retry_after, self._server)
        guard = self.guard
        if reply is not None and (guard is None or guard.allow(host, user_agent.decode("latin-1"), now)):
            stats["rejected"] += 1
            return REJECT, reply
        stats["dropped"] += 1
        return DROP, None


# --- settings as the node hands them to the front process (JSON) ------------------------------------------
def gate_settings(o: GateOptions) -> dict:
    return {"wait": o.wait, "sustain": o.sustain, "hard": o.hard, "retry_after": o.retry_after}


def guard_settings(o: GuardOptions | None) -> dict | None:
    if o is None:
        return None
    return {"rate": o.rate, "burst": o.burst, "flood_ban_after": o.flood_ban_after,
            "auth_failures": o.auth_failures, "window": o.window, "ban_time": o.ban_time,
            "scanners": list(o.scanners), "exempt": list(o.exempt)}


def guard_options_from(d: dict) -> GuardOptions:
    return GuardOptions(**{**d, "scanners": tuple(d["scanners"]), "exempt": tuple(d["exempt"])})


def guard_from(d: dict | None) -> Guard | None:
    return None if not d else Guard(guard_options_from(d))
