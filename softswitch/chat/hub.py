"""The node's web chats: visitors' sessions, agents' panels, transcripts and delivered/read marks, driven by the
pure router (acd.chat_router). No asyncio and no sockets: a connection is anything with `send(dict)` and
`close(code, reason)`; the clock is injected. web.py feeds it frames and carries nothing else.

What each side may do is checked here: a visitor reaches only their own chat (it is the connection's), an agent
only the chats the router gave them; every refusal is an error frame, never an exception out of a handler.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Callable

from acd.chat_router import Assigned, ChatError, ChatRouter, Ended, Requeued

from .. import log
from .frames import AGENT, VISITOR, FrameError, clean, parse
from .limits import AddressLimits, Bucket, frame_size
from ..widget.origins import origin_or_none

MAX_MESSAGES = 1000          # per chat: a transcript stays a size a record can hold


@dataclass(eq=False)
class Session:
    id: str
    queue: str
    origin: str
    address: str
    page: str
    visitor: str
    opened: float
    conn: object
    bucket: Bucket
    bytes: Bucket | None = None              # frame bytes per second (None: relayed from another node)
    agent_id: str | None = None
    agents: list[str] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    answered_at: float | None = None
    pooled: str | None = None                # pool mode: waiting pool-wide (the Redis member standing for it)
    remote: str | None = None                # pool mode: served at this node (we only relay)
    home: str | None = None                  # pool mode: the visitor's node, which relays for us
    over: int = 0                            # frames over the rate
    read: dict = field(default_factory=lambda: {"visitor": 0, "agent": 0})   # read up to, by reader


@dataclass(eq=False)
class Panel:
    """One agent chat panel's budget: frames and bytes per second, and the frames over it in a row."""
    agent_id: str
    frames: Bucket
    bytes: Bucket
    over: int = 0


class ChatHub:
    def __init__(self, settings, router: ChatRouter, clock: Callable[[], float], node_id: str = "",
                 records=None, names: dict[str, str] | None = None,
                 state_of: Callable[[str], str] | None = None) -> None:
        self.settings, self.router, self.clock, self.node_id = settings, router, clock, node_id
        self.records = records
        self.names = names or {}
        self.state_of = state_of or (lambda agent_id: "idle")
        self.sessions: dict[str, Session] = {}
        self.agent_conns: dict[str, set] = {}
        self.panels: dict[object, Panel] = {}           # agent panel connection -> its budget
        self.agent_buckets: dict[str, Bucket] = {}      # per agent, all their panels (agents are configured)
        self.addresses = AddressLimits(settings.address_rate, settings.sessions_per_address, clock)
        self.counters = {"messages": 0, "bad_frames": 0, "rate_limited": 0, "cut_off": 0, "refused": 0,
                         "agent_rate_limited": 0, "agent_cut_off": 0, "agent_refused": 0}
        self.on_change: Callable[[], None] = lambda: None       # the shell re-arms its timer
        self.pool = None                    # ChatPool in pool mode (chat/pool.py)
        self.accepting = set(router.queues)     # queues that take new chats (a reload may drop one)

    # --- visitors ----------------------------------------------------------------------------------------------
    def admit(self, queue: str, origin: str | None, address: str, own_origins: tuple[str, ...] = ()
              ) -> tuple[int, str] | None:
        """(HTTP status, why) when a widget's WebSocket must be refused before it is opened, else None."""
        refusal = None
        origin = origin_or_none(origin)       # compared as the settings keep them: normalised
        if origin is None or (origin not in self.settings.origins
                              and origin not in {origin_or_none(o) for o in own_origins}):
            refusal = 403, "this website may not open the chat (origin not allowed)"
        elif queue not in self.accepting:
            refusal = 404, "no such chat queue"
        else:
            why = self.addresses.admit(address)
            if why:
                refusal = 429, why
        if refusal is not None:
            self.counters["refused"] += 1
        return refusal

    def visitor_open(self, conn, queue: str, origin: str, address: str, page: str = "", visitor: str = ""
                     ) -> Session | None:
        now = self.clock()
        name = clean(visitor, 60) or "Visitor"
        s = Session(secrets.token_urlsafe(12), queue, origin, address, clean(page, 500), name, now, conn,
                    Bucket(*self.settings.rate, now), Bucket(*self.settings.byte_rate, now))
        try:
            effects = self.router.open(s.id, queue)
        except ChatError as exc:
            conn.send({"type": "error", "error": str(exc)})
            conn.close(1013, "try again later")
            return None
        self.sessions[s.id] = s
        self.addresses.opened(address)
        conn.send({"type": "welcome", "chat": s.id, "queue": queue, "position": self.router.position(s.id)})
        self._apply(effects)
        if self.pool is not None and s.agent_id is None and s.id in self.sessions:
            self.pool.offer(s)          # nobody here has room: it waits pool-wide
        return s

    def visitor_ping(self, s: Session, data: bytes) -> bool:
        """A WebSocket ping costs a frame of the budget too: True when it is to be answered."""
        return s.id in self.sessions and self._visitor_budget(s, data)

    def _visitor_budget(self, s: Session, data) -> bool:
        now = self.clock()
        # every bucket is charged, so many chats of one address cannot share out a flood
        if all([s.bucket.take(now), s.bytes is None or s.bytes.take(now, frame_size(data)),
                self.addresses.take(s.address)]):
            return True
        self.counters["rate_limited"] += 1
        s.over += 1
        if s.over >= self.settings.cut_off_after:
            self.counters["cut_off"] += 1
            self.addresses.ban(s.address)
            s.conn.send({"type": "error", "error": "too many messages: the chat is closed"})
            self._visitor_ends(s, "flood")
        else:
            s.conn.send({"type": "error", "error": "too many messages: slow down (dropped)"})
        return False

    def visitor_frame(self, s: Session, data) -> None:
        if s.id not in self.sessions or not self._visitor_budget(s, data):
            return
        try:
            f = parse(data, self.settings.max_frame, self.settings.max_message, VISITOR)
        except FrameError as exc:
            self.counters["bad_frames"] += 1
            s.conn.send({"type": "error", "error": str(exc)})
            return
        if s.remote is not None:
            self.pool.relay(s.remote, {"chat": s.id, "visitor": f})
        elif f["type"] == "end":
            self._visitor_ends(s, "visitor ended")
        else:
            self.remote_visitor(s.id, f)

    def remote_visitor(self, chat_id: str, f: dict) -> None:
        """A checked visitor frame (here, or relayed by the visitor's node in pool mode)."""
        s = self.sessions.get(chat_id)
        if s is None:
            return
        kind = f["type"]
        if kind == "message":
            self._message(s, "visitor", None, f["text"])
        elif kind == "typing":
            self._to_agent(s, {"type": "typing", "chat": s.id, "on": f["on"]})
        elif kind == "read":
            self._read(s, "visitor", f["upto"])
        elif kind == "end":
            self._end(s.id, "visitor ended")

    def visitor_gone(self, s: Session) -> None:
        """The visitor's page closed (or the connection broke): the chat ends, queued or with an agent."""
        if s.id in self.sessions:
            self._visitor_ends(s, "visitor left")

    def _visitor_ends(self, s: Session, reason: str) -> None:
        if s.remote is not None:        # served at another node: it ends there, with its record
            self.pool.relay(s.remote, {"chat": s.id, "gone": reason})
            self._drop(s, {"type": "ended", "reason": reason})
        elif s.pooled is not None:      # waiting pool-wide: taken back, it ends here
            self.pool.unoffer(s)
            s.pooled = None
            self._apply([Ended(s.id, s.queue, None, "abandoned", reason, self.clock() - s.opened)])
        else:
            self._end(s.id, reason)

    def _drop(self, s: Session, last: dict | None = None) -> None:
        """Forget a session this node only relayed (pool mode)."""
        if self.sessions.pop(s.id, None) is not None:
            self.addresses.closed(s.address)
            if last is not None:
                s.conn.send(last)
            s.conn.close(1000, "chat ended")

    # --- agents ------------------------------------------------------------------------------------------------
    def is_chat_agent(self, agent_id: str | None) -> bool:
        return agent_id is not None and agent_id in self.router.agents

    def admit_agent(self, agent_id: str | None) -> tuple[int, str] | None:
        """(HTTP status, why) when an agent's chat panel must be refused before it is opened, else None."""
        refusal = None
        if not self.is_chat_agent(agent_id):
            refusal = 403, "this account serves no multimedia queue"
        elif len(self.agent_conns.get(agent_id, ())) >= self.settings.agent_panels:
            refusal = 429, f"too many chat panels open for this agent (at most {self.settings.agent_panels})"
        if refusal is not None:
            self.counters["agent_refused"] += 1
        return refusal

    def agent_open(self, agent_id: str, conn) -> None:
        conns = self.agent_conns.setdefault(agent_id, set())
        first = not conns
        conns.add(conn)
        now = self.clock()
        self.panels[conn] = Panel(agent_id, Bucket(*self.settings.agent_rate, now),
                                  Bucket(*self.settings.byte_rate, now))
        if agent_id not in self.agent_buckets:
            self.agent_buckets[agent_id] = Bucket(*self.settings.agent_rate, now)
        held = [self._chat_frame(s) for s in self.sessions.values() if s.agent_id == agent_id] \
            if not first else []
        effects = []
        if first:       # online now; the chats this gives them follow the hello
            effects = self.router.set_state(agent_id, self.state_of(agent_id))
            effects += self.router.set_online(agent_id, True)
        conn.send({"type": "hello", **self._agent_view(agent_id),
                   "transfer_queues": sorted(self.router.queues), "chats": held})
        if effects:
            self._apply(effects)

    def agent_ping(self, agent_id: str, conn, data: bytes) -> bool:
        """A WebSocket ping costs a frame of the budget too: True when it is to be answered."""
        return self._agent_budget(agent_id, conn, data)

    def _agent_budget(self, agent_id: str, conn, data) -> bool:
        p = self.panels.get(conn)
        if p is None or p.agent_id != agent_id:
            return False
        now = self.clock()
        if all([p.frames.take(now), p.bytes.take(now, frame_size(data)), self.agent_buckets[agent_id].take(now)]):
            p.over = 0
            return True
        self.counters["agent_rate_limited"] += 1
        p.over += 1
        if p.over >= self.settings.cut_off_after:     # over the budget that many frames in a row: a flood
            self.counters["agent_cut_off"] += 1
            conn.send({"type": "error", "error": "too many frames: the chat panel is closed"})
            conn.close(1008, "flood")
        else:
            conn.send({"type": "error", "error": "too many frames: slow down (dropped)"})
        return False

    def agent_frame(self, agent_id: str, conn, data) -> None:
        if not self._agent_budget(agent_id, conn, data):
            return
        try:
            f = parse(data, self.settings.max_frame, self.settings.max_message, AGENT)
        except FrameError as exc:
            self.counters["bad_frames"] += 1
            conn.send({"type": "error", "error": str(exc)})
            return
        s = self.sessions.get(f["chat"])
        if s is None or s.agent_id != agent_id:     # often a chat that just ended: answered, not a bad frame
            conn.send({"type": "error", "chat": f["chat"], "error": "not a chat of yours"})
            return
        kind = f["type"]
        if kind == "message":
            self._message(s, "agent", agent_id, f["text"])
        elif kind == "typing":
            self._send_visitor(s, {"type": "typing", "on": f["on"]})
        elif kind == "read":
            self._read(s, "agent", f["upto"])
        elif kind == "end":
            self._end(s.id, "agent ended")
        elif kind == "transfer":
            try:
                effects = self.router.transfer(s.id, queue=f.get("queue"), agent=f.get("agent"))
            except ChatError as exc:
                conn.send({"type": "error", "chat": s.id, "error": f"transfer refused: {exc}"})
                return
            self._apply(effects)

    def agent_gone(self, agent_id: str, conn) -> None:
        conns = self.agent_conns.get(agent_id)
        if conns is None:
            return
        conns.discard(conn)
        self.panels.pop(conn, None)
        if not conns:
            del self.agent_conns[agent_id]
            self._apply(self.router.set_online(agent_id, False))

    def acd_state(self, agent_id: str, state: str) -> None:
        """The agent's ACD state changed (a call, a break, signing in or out)."""
        if agent_id in self.router.agents:
            self._apply(self.router.set_state(agent_id, state))
            self._capacity(agent_id)

    def reconfigure(self, settings, accepting: set[str], names: dict[str, str]) -> None:
        """Reloaded settings (the router's queues and agents are already updated, see chat/config.py): limits
        apply from the next frame, each bucket keeping what it has used; waiting chats go to any new room."""
        self.settings, self.accepting, self.names = settings, accepting, names
        self.addresses.reconfigure(settings.address_rate, settings.sessions_per_address)
        for s in self.sessions.values():
            if s.bytes is not None:         # not an adopted chat (its visitor's own node limits it)
                s.bucket.set_rate(settings.rate)
                s.bytes.set_rate(settings.byte_rate)
        for p in self.panels.values():
            p.frames.set_rate(settings.agent_rate)
            p.bytes.set_rate(settings.byte_rate)
        for b in self.agent_buckets.values():
            b.set_rate(settings.agent_rate)
        self._apply(self.router.dispatch())
        for agent_id in self.agent_conns:
            self._capacity(agent_id)

    # --- time, views, shutdown -----------------------------------------------------------------------------------
    def tick(self) -> None:
        self._apply(self.router.tick())

    def next_deadline(self) -> float | None:
        return self.router.next_deadline()

    def kpis(self) -> dict:
        queues = [self.router.queue_view(q) for q in sorted(self.router.queues)]
        answered = sum(q["answered"] for q in queues)
        online = [len(a.chats) for a in self.router.agents.values() if a.online]
        asa_sum = sum(q["average_speed_of_answer"] * q["answered"] for q in queues if q["answered"])
        return {"queues": queues, "waiting": sum(q["waiting"] for q in queues),
                "active": sum(q["active"] for q in queues), "agents_online": len(online),
                "average_speed_of_answer": asa_sum / answered if answered else None,
                "concurrency": sum(online) / len(online) if online else 0.0,
                "max_concurrency": max(online, default=0), **self.counters}

    def shutdown(self, reason: str = "the chat service stopped") -> None:
        """End every chat (each leaves its record) and close the agents' panels."""
        for s in list(self.sessions.values()):
            if s.home is not None:
                self._end(s.id, reason)
            else:
                self._visitor_ends(s, reason)
        for conns in list(self.agent_conns.values()):
            for c in list(conns):
                c.close(1001, reason)

    # --- pool mode: chats between nodes (chat/pool.py carries these over Redis) -------------------------------------
    def reclaim(self, s: Session) -> None:
        """Our own pool-wide chat came back to us (an agent here has room): route it here again."""
        s.pooled = None
        self._apply(self.router.open(s.id, s.queue))

    def handed(self, s: Session, node: str) -> dict:
        """Another node took our pool-wide chat: from now on we relay; what it needs to serve it."""
        s.pooled, s.remote = None, node
        return {"queue": s.queue, "origin": s.origin, "address": s.address, "page": s.page, "visitor": s.visitor,
                "opened": s.opened, "messages": s.messages}

    def adopt(self, chat_id: str, queue: str, home: str, conn) -> None:
        """Serve a chat of another node's visitor (its frames come relayed through `conn`)."""
        now = self.clock()
        s = Session(chat_id, queue, "", "", "", "Visitor", now, conn, Bucket(1e9, 1e9, now), home=home)
        try:
            effects = self.router.open(chat_id, queue)
        except ChatError as exc:
            conn.send({"type": "error", "error": str(exc)})
            conn.close(1013, "try again later")
            return
        self.sessions[chat_id] = s
        self._apply(effects)

    def handover(self, chat_id: str, h: dict) -> None:
        """What the visitor's node knew of an adopted chat: who, from where, and what was said while it waited."""
        s = self.sessions.get(chat_id)
        if s is None:
            return
        s.origin, s.address, s.page = str(h.get("origin", ""))[:200], str(h.get("address", ""))[:100], \
            str(h.get("page", ""))[:500]
        s.visitor, s.opened = str(h.get("visitor", "Visitor"))[:60], float(h.get("opened", s.opened))
        earlier = [m for m in h.get("messages", []) if isinstance(m, dict)][:MAX_MESSAGES]
        s.messages = earlier + s.messages
        now = self.clock()
        for i, m in enumerate(s.messages, 1):
            m["seq"] = i
            if m.get("from") == "visitor" and s.agent_id is not None:
                m["delivered_at"] = m.get("delivered_at") or now
        if s.agent_id is not None:
            self._to_conns(s.agent_id, self._chat_frame(s))
            if earlier:
                self._send_visitor(s, {"type": "delivered", "upto": len(earlier)})

    def remote_gone(self, chat_id: str, reason: str) -> None:
        if chat_id in self.sessions:
            self._end(chat_id, reason)

    def from_remote(self, chat_id: str, frame: dict) -> None:
        """A frame for our visitor from the node serving the chat."""
        s = self.sessions.get(chat_id)
        if s is not None and s.remote is not None:
            s.conn.send(frame)

    def remote_close(self, chat_id: str) -> None:
        s = self.sessions.get(chat_id)
        if s is not None and s.remote is not None:
            self._drop(s)

    # --- inside --------------------------------------------------------------------------------------------------
    def _agent_view(self, agent_id: str) -> dict:
        return {**self.router.agent_view(agent_id), "name": self.names.get(agent_id, agent_id)}

    def _capacity(self, agent_id: str) -> None:
        self._to_conns(agent_id, {"type": "capacity", **self._agent_view(agent_id)})

    def _message(self, s: Session, sender: str, agent_id: str | None, text: str) -> None:
        if len(s.messages) >= MAX_MESSAGES:
            conn_send = s.conn.send if sender == "visitor" else (lambda f: self._to_conns(agent_id, f))
            conn_send({"type": "error", "chat": s.id, "error": "this chat is full; start a new one"})
            return
        now = self.clock()
        m = {"seq": len(s.messages) + 1, "from": sender, "agent_id": agent_id, "text": text, "at": now,
             "delivered_at": None, "read_at": None}
        s.messages.append(m)
        self.counters["messages"] += 1
        public = {"seq": m["seq"], "from": sender, "text": text, "at": now}
        if sender == "agent":
            public["name"] = self.names.get(agent_id, "Agent")
        self._send_visitor(s, {"type": "message", **public})
        if s.agent_id is not None:
            self._to_agent(s, {"type": "message", "chat": s.id, **public})
        # delivered: handed to the other side's open connection (a queued visitor's wait for an agent)
        if sender == "agent" or s.agent_id is not None:
            m["delivered_at"] = now
            mark = {"type": "delivered", "upto": m["seq"]}
            self._send_visitor(s, mark) if sender == "visitor" else self._to_agent(s, {**mark, "chat": s.id})

    def _read(self, s: Session, reader: str, upto: int) -> None:
        upto = min(upto, len(s.messages))
        start = s.read[reader]
        if upto <= start:
            return
        now = self.clock()
        other = "agent" if reader == "visitor" else "visitor"
        for m in s.messages[start:upto]:
            if m["from"] == other:
                m["read_at"] = m["read_at"] or now
                m["delivered_at"] = m["delivered_at"] or now
        s.read[reader] = upto
        if reader == "visitor":
            self._to_agent(s, {"type": "read", "chat": s.id, "upto": upto})
        else:
            self._send_visitor(s, {"type": "read", "upto": upto})

    def _send_visitor(self, s: Session, frame: dict) -> None:
        s.conn.send(frame)

    def _to_agent(self, s: Session, frame: dict) -> None:
        if s.agent_id is not None:
            self._to_conns(s.agent_id, frame)

    def _to_conns(self, agent_id: str, frame: dict) -> None:
        for c in self.agent_conns.get(agent_id, ()):
            c.send(frame)

    def _chat_frame(self, s: Session, transferred_from: str | None = None) -> dict:
        return {"type": "chat", "chat": s.id, "queue": s.queue, "visitor": s.visitor, "origin": s.origin,
                "page": s.page, "opened": s.opened, "transferred_from": transferred_from,
                "messages": [{k: m[k] for k in ("seq", "from", "text", "at")} |
                             {"delivered": m["delivered_at"] is not None, "read": m["read_at"] is not None}
                             for m in s.messages]}

    def _end(self, chat_id: str, reason: str) -> None:
        try:
            effects = self.router.end(chat_id, reason)
        except ChatError:
            return
        self._apply(effects)

    def _apply(self, effects: list) -> None:
        now = self.clock()
        for e in effects:
            s = self.sessions.get(e.chat)
            if s is None:
                continue
            if isinstance(e, Assigned):
                s.agent_id, s.queue = e.agent, e.queue
                s.agents.append(e.agent)
                s.answered_at = s.answered_at or now
                self._to_conns(e.agent, self._chat_frame(s, e.transferred_from))
                self._send_visitor(s, {"type": "agent", "name": self.names.get(e.agent, "Agent"),
                                       "transferred": e.transferred_from is not None})
                pending = [m for m in s.messages if m["from"] == "visitor" and m["delivered_at"] is None]
                for m in pending:
                    m["delivered_at"] = now
                if pending:
                    self._send_visitor(s, {"type": "delivered", "upto": pending[-1]["seq"]})
                self._capacity(e.agent)
            elif isinstance(e, Requeued):
                s.agent_id, s.queue = None, e.queue
                self._to_conns(e.from_agent, {"type": "removed", "chat": s.id, "why": e.why})
                self._send_visitor(s, {"type": "queued", "queue": e.queue, "why": e.why,
                                       "position": self.router.position(s.id)})
                self._capacity(e.from_agent)
            elif isinstance(e, Ended):
                del self.sessions[s.id]
                self.addresses.closed(s.address)
                if e.agent is not None:
                    self._to_conns(e.agent, {"type": "ended", "chat": s.id, "reason": e.reason})
                    self._capacity(e.agent)
                self._send_visitor(s, {"type": "ended", "reason": e.reason})
                s.conn.close(1000, "chat ended")
                self._record(s, e, now)
        self.on_change()

    def _record(self, s: Session, e: Ended, now: float) -> None:
        if self.records is None:
            return
        row = {"chat_id": s.id, "node": self.node_id, "queue": e.queue, "agent_id": s.agents[-1] if s.agents else None,
               "agents": s.agents, "visitor": s.visitor, "origin": s.origin, "page": s.page, "address": s.address,
               "started_at": s.opened, "answered_at": s.answered_at, "ended_at": now,
               "wait_s": (s.answered_at or now) - s.opened, "outcome": e.outcome, "end_reason": e.reason,
               "messages": len(s.messages), "transcript": s.messages}
        try:
            self.records.add_chat(row)
        except Exception as exc:    # a closed store at shutdown: the chat is over either way
            log.get("chat").warning("chat_record_lost", chat=s.id, error=str(exc))
