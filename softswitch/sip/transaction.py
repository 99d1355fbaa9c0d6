"""The four transaction state machines of RFC 3261 s. 17 (with the RFC 6026 Accepted state), as tables.

Each table maps (state, event) -> (new state, actions). Network events (retransmissions, responses, timers)
have an entry in every live state, so peer input never raises; a TU event a table lacks is our bug and raises
TransactionStateError. Timers are deadlines in a TimerQueue; a timer that fires in a state where it is not
live (LIVE_TIMERS) was cancelled by the state change and is dropped.

The layer is sans-I/O: inputs take `now`; outputs are appended to `effects` for the shell:
  ("send", data: bytes, target)                 put bytes on the wire
  ("tu", listener, event, tx, message | None)   tell a transaction user: "response", "timeout", "error", "ack"
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

from .errors import LocalProtocolError, SipError
from .message import Request, Response
from .timers import TimerQueue

T1, T2, T4 = 0.5, 4.0, 5.0
MAGIC = "z9hG4bK"

# --- tables ----------------------------------------------------------------------------------------------------
# RFC 3261 s. 17.2.1, figure 7, as amended by RFC 6026 s. 7.1 (Accepted state; 2xx retransmitted by the TU).
INVITE_SERVER = {
    ("proceeding", "request"): ("proceeding", ("resend",)),
    ("proceeding", "tu_1xx"): ("proceeding", ("send",)),
    ("proceeding", "tu_2xx"): ("accepted", ("send", "arm_L")),
    ("proceeding", "tu_final"): ("completed", ("send", "arm_G", "arm_H")),
    ("proceeding", "transport_error"): ("terminated", ("tu_error",)),
    ("proceeding", "ack"): ("proceeding", ()),
    ("completed", "request"): ("completed", ("resend",)),
    ("completed", "ack"): ("confirmed", ("arm_I",)),
    ("completed", "timer_G"): ("completed", ("resend", "arm_G")),
    ("completed", "timer_H"): ("terminated", ("tu_timeout",)),
    ("completed", "transport_error"): ("terminated", ("tu_error",)),
    ("confirmed", "request"): ("confirmed", ()),
    ("confirmed", "ack"): ("confirmed", ()),
    ("confirmed", "timer_I"): ("terminated", ()),
    ("confirmed", "transport_error"): ("confirmed", ()),
    ("accepted", "request"): ("accepted", ()),
    ("accepted", "ack"): ("accepted", ("tu_ack",)),
    ("accepted", "tu_2xx"): ("accepted", ("send",)),
    ("accepted", "timer_L"): ("terminated", ()),
    ("accepted", "transport_error"): ("accepted", ()),
}
# RFC 3261 s. 17.2.2, figure 8.
NON_INVITE_SERVER = {
    ("trying", "request"): ("trying", ()),
    ("trying", "tu_1xx"): ("proceeding", ("send",)),
    ("trying", "tu_final"): ("completed", ("send", "arm_J")),
    ("trying", "transport_error"): ("terminated", ("tu_error",)),
    ("proceeding", "request"): ("proceeding", ("resend",)),
    ("proceeding", "tu_1xx"): ("proceeding", ("send",)),
    ("proceeding", "tu_final"): ("completed", ("send", "arm_J")),
    ("proceeding", "transport_error"): ("terminated", ("tu_error",)),
    ("completed", "request"): ("completed", ("resend",)),
    ("completed", "timer_J"): ("terminated", ()),
    ("completed", "transport_error"): ("terminated", ()),
}
# RFC 3261 s. 17.1.1, figure 5, as amended by RFC 6026 s. 7.2 (Accepted state keeps absorbing 2xx for the TU).
INVITE_CLIENT = {
    ("calling", "timer_A"): ("calling", ("resend", "arm_A")),
    ("calling", "timer_B"): ("terminated", ("tu_timeout",)),
    ("calling", "rx_1xx"): ("proceeding", ("tu_response",)),
    ("calling", "rx_2xx"): ("accepted", ("tu_response", "arm_M")),
    ("calling", "rx_final"): ("completed", ("send_ack", "tu_response", "arm_D")),
    ("calling", "transport_error"): ("terminated", ("tu_error",)),
    ("proceeding", "rx_1xx"): ("proceeding", ("tu_response",)),
    ("proceeding", "rx_2xx"): ("accepted", ("tu_response", "arm_M")),
    ("proceeding", "rx_final"): ("completed", ("send_ack", "tu_response", "arm_D")),
    ("proceeding", "transport_error"): ("terminated", ("tu_error",)),
    ("completed", "rx_1xx"): ("completed", ()),
    ("completed", "rx_2xx"): ("completed", ()),
    ("completed", "rx_final"): ("completed", ("send_ack",)),
    ("completed", "timer_D"): ("terminated", ()),
    ("completed", "transport_error"): ("terminated", ()),
    ("accepted", "rx_1xx"): ("accepted", ()),
    ("accepted", "rx_2xx"): ("accepted", ("tu_response",)),
    ("accepted", "rx_final"): ("accepted", ()),
    ("accepted", "timer_M"): ("terminated", ()),
    ("accepted", "transport_error"): ("accepted", ()),
}
# RFC 3261 s. 17.1.2, figure 6.
NON_INVITE_CLIENT = {
    ("trying", "timer_E"): ("trying", ("resend", "arm_E")),
    ("trying", "timer_F"): ("terminated", ("tu_timeout",)),
    ("trying", "rx_1xx"): ("proceeding", ("tu_response",)),
    ("trying", "rx_2xx"): ("completed", ("tu_response", "arm_K")),
    ("trying", "rx_final"): ("completed", ("tu_response", "arm_K")),
    ("trying", "transport_error"): ("terminated", ("tu_error",)),
    ("proceeding", "timer_E"): ("proceeding", ("resend", "arm_E")),
    ("proceeding", "timer_F"): ("terminated", ("tu_timeout",)),
    ("proceeding", "rx_1xx"): ("proceeding", ("tu_response",)),
    ("proceeding", "rx_2xx"): ("completed", ("tu_response", "arm_K")),
    ("proceeding", "rx_final"): ("completed", ("tu_response", "arm_K")),
    ("proceeding", "transport_error"): ("terminated", ("tu_error",)),
    ("completed", "rx_1xx"): ("completed", ()),
    ("completed", "rx_2xx"): ("completed", ()),
    ("completed", "rx_final"): ("completed", ()),
    ("completed", "timer_K"): ("terminated", ()),
    ("completed", "transport_error"): ("completed", ()),
}
TABLES = {"invite_server": INVITE_SERVER, "non_invite_server": NON_INVITE_SERVER,
          "invite_client": INVITE_CLIENT, "non_invite_client": NON_INVITE_CLIENT}
INITIAL = {"invite_server": "proceeding", "non_invite_server": "trying",
           "invite_client": "calling", "non_invite_client": "trying"}
# Timers that are live in each state; leaving the state cancels the others.
LIVE_TIMERS = {
    "invite_server": {"completed": {"G", "H"}, "confirmed": {"I"}, "accepted": {"L"}},
    "non_invite_server": {"completed": {"J"}},
    "invite_client": {"calling": {"A", "B"}, "completed": {"D"}, "accepted": {"M"}},
    "non_invite_client": {"trying": {"E", "F"}, "proceeding": {"E", "F"}, "completed": {"K"}},
}
NETWORK_EVENTS = frozenset({"request", "ack", "rx_1xx", "rx_2xx", "rx_final", "transport_error"})


class TransactionStateError(LocalProtocolError):
    """The TU asked for something the transaction's state does not allow (our bug, not the peer's)."""


Listener = Callable[[str, "Transaction", Any], None]


class Transaction:
    __slots__ = ("kind", "key", "state", "request", "target", "reliable", "listener", "last", "interval",
                 "tokens", "ack", "context", "created", "_method")

    def __init__(self, kind: str, key: tuple, request: Request, target: Any, reliable: bool, now: float) -> None:
        self.kind = kind
        self.key = key
        self.state = INITIAL[kind]
        self.request = request
        self._method = request.method
        self.target = target
        self.reliable = reliable
        self.listener: Listener | None = None
        self.last: bytes | None = None        # what a retransmission resends
        self.interval = T1
        self.tokens: dict[str, int] = {}
        self.ack: bytes | None = None
        self.context: Any = None              # free slot for the TU
        self.created = now

    @property
    def method(self) -> str:
        return self._method

    def __repr__(self) -> str:
        return f"<{self.kind} {self.state} {self.key}>"


def server_key(req: Request) -> tuple:
    """RFC 3261 s. 17.2.3: branch + sent-by + method (ACK matches the INVITE); RFC 2543 fallback otherwise."""
    via = req.top_via
    method = "INVITE" if req.method == "ACK" else req.method
    branch = via.branch
    if branch and branch.startswith(MAGIC):
        return (branch, via.host.lower(), via.port, method)
    return ("2543", req.call_id, req.from_.tag, req.cseq[0], method, via.host.lower(), via.port)


def client_key(branch: str, method: str) -> tuple:
    """RFC 3261 s. 17.1.3: the top Via branch and the CSeq method (ACK/CANCEL have their own)."""
    return (branch, method)


def build_ack_for_error(req: Request, resp: Response) -> Request:
    """RFC 3261 s. 17.1.1.3: ACK for a non-2xx final response, same branch, To from the response."""
    headers = [["Via", str(req.top_via)]]
    for n, v in req.headers:
        if n in ("From", "Call-ID", "Route", "Max-Forwards"):
            headers.append([n, v])
    headers.append(["To", resp.get("To") or ""])
    headers.append(["CSeq", f"{req.cseq[0]} ACK"])
    return Request("ACK", req.uri, headers, b"", req.uri_text)


class TransactionLayer:
    def __init__(self, t1: float = T1, t2: float = T2, t4: float = T4, branch_seed: str = "") -> None:
        self.t1, self.t2, self.t4 = t1, t2, t4
        # Branches must be unique across space and time (s. 8.1.1.7): the shell passes a random seed so
        # two nodes, or one node after a restart, never reuse one.
        self.branch_seed = branch_seed
        self.server: dict[tuple, Transaction] = {}
        self.client: dict[tuple, Transaction] = {}
        self.timers = TimerQueue()
        self.effects: list[tuple] = []
        self._branches = itertools.count(1)
        self.stats = {"server_created": 0, "client_created": 0, "retransmissions_absorbed": 0, "resent": 0,
                      "server_resent": 0, "timeouts": 0}

    # --- server side ----------------------------------------------------------------------------------------
    def receive_request(self, req: Request, reply_to: Any, reliable: bool, now: float) -> tuple[str, Any]:
        """Match or create a server transaction.

        Returns ("new", tx) for a request the TU must answer; ("retransmission", tx) when absorbed;
        ("ack", tx_or_None) for an ACK the TU's dialog layer must see (ACK for a 2xx); ("absorbed", tx) for the
        ACK of a non-2xx final response.
        """
        key = server_key(req)
        tx = self.server.get(key)
        if req.method == "ACK":
            if tx is None or tx.kind != "invite_server":
                return "ack", None
            if tx.state == "accepted":
                self._event(tx, "ack", now, req)
                return "ack", tx
            self._event(tx, "ack", now)
            return "absorbed", tx
        if tx is not None:
            self.stats["retransmissions_absorbed"] += 1
            self._event(tx, "request", now)
            return "retransmission", tx
        kind = "invite_server" if req.method == "INVITE" else "non_invite_server"
        tx = Transaction(kind, key, req, reply_to, reliable, now)
        self.server[key] = tx
        self.stats["server_created"] += 1
        return "new", tx

    def forget(self, tx: Transaction) -> None:
        """Drop a server transaction the TU answers statelessly (its timers find it terminated)."""
        tx.state = "terminated"
        self.server.pop(tx.key, None)

    def find_invite_server(self, cancel: Request) -> Transaction | None:
        """The INVITE transaction a CANCEL refers to (RFC 3261 s. 9.2)."""
        key = server_key(cancel)
        return self.server.get(key[:-1] + ("INVITE",))

    def respond(self, tx: Transaction, resp: Response, now: float) -> None:
        if tx.state == "terminated":
            raise TransactionStateError(f"respond on terminated {tx!r}")
        status = resp.status
        event = "tu_1xx" if status < 200 else ("tu_2xx" if status < 300 and tx.kind == "invite_server"
                                                else "tu_final")
        tx.last = resp.serialize()
        self._event(tx, event, now)
        if event == "tu_final":
            # Completed: only the answer's bytes are needed from now on (Timers J and H keep the transaction
            # 32 s); dropping the parsed request keeps the heap of a registration storm, or of a flood of
            # refused INVITEs, small for the collector.
            tx.request = None
        elif tx.state == "accepted":
            # A 2xx sent: the TU re-sends it until the ACK (s. 13.3.1.4), and a later 2xx is serialised anew;
            # the transaction only absorbs retransmissions now. The INVITE and the 2xx's bytes would otherwise
            # live as long as the call's leg holds its transaction.
            tx.request = tx.last = None

    # --- client side ----------------------------------------------------------------------------------------
    def new_branch(self) -> str:
        return f"{MAGIC}-{self.branch_seed}{next(self._branches):x}"

    def send_request(self, req: Request, target: Any, reliable: bool, now: float,
                     listener: Listener | None = None) -> Transaction:
        """Start a client transaction. The request's top Via must carry a fresh branch."""
        branch = req.top_via.branch
        if not branch:
            raise TransactionStateError("client request without a branch")
        kind = "invite_client" if req.method == "INVITE" else "non_invite_client"
        tx = Transaction(kind, client_key(branch, req.method), req, target, reliable, now)
        tx.listener = listener
        tx.last = req.serialize()
        self.client[tx.key] = tx
        self.stats["client_created"] += 1
        self.effects.append(("send", tx.last, target))
        tx.interval = self.t1
        if not reliable:
            self._arm(tx, "A" if kind == "invite_client" else "E", self.t1, now)
        self._arm(tx, "B" if kind == "invite_client" else "F", 64 * self.t1, now)
        return tx

    def receive_response(self, resp: Response, now: float) -> Transaction | None:
        """Match a response to its client transaction; None means a stray (e.g. a 2xx retransmission after
        the transaction ended: the TU's dialog layer handles it)."""
        try:
            branch = resp.top_via.branch
        except (SipError, IndexError):
            return None
        tx = self.client.get(client_key(branch or "", resp.cseq[1]))
        if tx is None:
            return None
        status = resp.status
        event = "rx_1xx" if status < 200 else ("rx_2xx" if status < 300 else "rx_final")
        self._event(tx, event, now, resp)
        if tx.state in ("accepted", "completed"):
            # Nothing is re-sent from here on (the ACK of a non-2xx is kept as bytes in tx.ack): the request
            # and its bytes would otherwise live as long as a leg holds its INVITE transaction.
            tx.request = tx.last = None
        return tx

    def transport_error(self, tx: Transaction, now: float) -> None:
        if tx.state != "terminated":
            self._event(tx, "transport_error", now)

    # --- timers ---------------------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        return self.timers.next_deadline()

    def poll(self, now: float) -> None:
        for tx, name, token in self.timers.pop_due(now):
            if tx.tokens.get(name) != token or tx.state == "terminated":
                continue
            if name not in LIVE_TIMERS[tx.kind].get(tx.state, ()):
                continue
            self._event(tx, "timer_" + name, now)

    def _arm(self, tx: Transaction, name: str, delay: float, now: float) -> None:
        token = tx.tokens.get(name, 0) + 1
        tx.tokens[name] = token
        if delay <= 0:
            self._event(tx, "timer_" + name, now)
        else:
            self.timers.arm(now, delay, tx, name, token)

    # --- the machine ----------------------------------------------------------------------------------------
    def _event(self, tx: Transaction, event: str, now: float, msg: Any = None) -> None:
        entry = TABLES[tx.kind].get((tx.state, event))
        if entry is None:
            if event in NETWORK_EVENTS or event.startswith("timer_"):
                return  # cannot happen with complete tables; peer input never raises
            raise TransactionStateError(f"{event} not allowed in {tx!r}")
        tx.state, actions = entry
        for action in actions:
            self._act(tx, action, now, msg)
        if tx.state == "terminated":
            (self.server if tx.kind.endswith("server") else self.client).pop(tx.key, None)

    def _act(self, tx: Transaction, action: str, now: float, msg: Any) -> None:
        eff = self.effects
        if action == "send" or action == "resend":
            if action == "resend":
                self.stats["resent"] += 1     # ours on a timer, or answering a peer's retransmission
                if tx.kind.endswith("server"):
                    self.stats["server_resent"] += 1    # a peer that waited for our answer
            if tx.last is not None:
                eff.append(("send", tx.last, tx.target))
        elif action.startswith("arm_"):
            name = action[4:]
            if tx.reliable and name in ("A", "E", "G"):
                return  # retransmissions are for unreliable transports only
            self._arm(tx, name, self._delay(tx, name), now)
        elif action == "send_ack":
            if tx.ack is None:
                tx.ack = build_ack_for_error(tx.request, msg).serialize()
            eff.append(("send", tx.ack, tx.target))
        elif action == "tu_response":
            if tx.listener:
                eff.append(("tu", tx.listener, "response", tx, msg))
        elif action == "tu_ack":
            if tx.listener:
                eff.append(("tu", tx.listener, "ack", tx, msg))
        elif action == "tu_timeout":
            self.stats["timeouts"] += 1
            if tx.listener:
                eff.append(("tu", tx.listener, "timeout", tx, None))
        elif action == "tu_error":
            if tx.listener:
                eff.append(("tu", tx.listener, "error", tx, None))
        else:  # pragma: no cover - tables only name the actions above
            raise TransactionStateError(f"unknown action {action}")

    def _delay(self, tx: Transaction, name: str) -> float:
        """Timer durations of RFC 3261 table 4; retransmission intervals double (E and G capped at T2)."""
        t1, t2, t4 = self.t1, self.t2, self.t4
        if name == "G":
            tx.interval = t1 if "G" not in tx.tokens else min(tx.interval * 2, t2)
            return tx.interval
        if name == "A":
            tx.interval *= 2
            return tx.interval
        if name == "E":
            tx.interval = t2 if tx.state == "proceeding" else min(tx.interval * 2, t2)
            return tx.interval
        if name in ("B", "F", "H", "L", "M"):
            return 64 * t1
        if name == "D":
            return 0.0 if tx.reliable else 32.0
        if name == "J":
            return 0.0 if tx.reliable else 64 * t1
        if name in ("I", "K"):
            return 0.0 if tx.reliable else t4
        raise TransactionStateError(f"unknown timer {name}")

    def counts(self) -> dict[str, int]:
        return {"server": len(self.server), "client": len(self.client), "timers": len(self.timers)}
