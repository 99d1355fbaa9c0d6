"""Chat routing for multimedia queues: which agent serves each web chat, with per-agent concurrency.

Pure (no I/O, the clock injected), beside the call ACD and fed by the node with what it knows: the agents'
ACD states (`set_state`), whether their chat panel is connected (`set_online`), and chats opening, ending and
moving. Every input returns the effects the shell carries out (Assigned, Requeued, Ended).

Capacity: an agent takes up to `max_chats` chats while idle, up to `max_on_call` while ringing, talking or in
wrap-up (a call's own rules do not change: calls are offered to idle agents whatever their chats), and none
when busy, resting, offline or with the chat panel closed. Chats already held are never taken away when the
capacity drops; no new one is given until the agent is under it again.

Strategies: among the queue's members with free capacity, lower penalty first, then fewer chats in hand,
then the queue's strategy breaks the tie (longest idle: longest since a chat last left them; fewest calls and
least talk time: fewest chats answered; round robin and linear: config order; random: the injected rng).
A chat transferred to an agent waits for that agent only. A chat waits in its queue up to the queue's
`max_wait`, then ends with outcome `timeout`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable

from .errors import LocalProtocolError

ON_CALL = ("ringing", "talking", "wrap_up")


class ChatError(LocalProtocolError):
    """An unknown chat, queue or agent, a full queue, or a transfer that cannot be made."""


@dataclass
class ChatAgent:
    id: str
    queues: dict[str, int]          # multimedia queue -> penalty
    max_chats: int = 3
    max_on_call: int = 1
    order: int = 0
    state: str = "offline"          # the agent's ACD state
    online: bool = False            # the chat panel is connected
    chats: set[str] = field(default_factory=set)
    freed_at: float = 0.0           # when a chat last left them
    answered: int = 0

    def capacity(self) -> int:
        if not self.online:
            return 0
        if self.state == "idle":
            return self.max_chats
        if self.state in ON_CALL:
            return self.max_on_call
        return 0

    def free(self) -> int:
        return max(0, self.capacity() - len(self.chats))


@dataclass
class Chat:
    id: str
    queue: str
    opened: float
    entered: float                  # entered its current queue (or was transferred)
    agent: str | None = None
    answered_at: float | None = None
    wanted_agent: str | None = None  # a transfer to a named agent waits for them only
    agents: list[str] = field(default_factory=list)   # everyone who served it, in order


@dataclass(frozen=True)
class Assigned:
    chat: str
    agent: str
    queue: str
    wait: float
    transferred_from: str | None = None


@dataclass(frozen=True)
class Requeued:
    chat: str
    queue: str
    from_agent: str
    why: str


@dataclass(frozen=True)
class Ended:
    chat: str
    queue: str
    agent: str | None
    outcome: str                    # answered (an agent took it), abandoned (before any did), timeout
    reason: str
    wait: float


@dataclass
class _Queue:
    name: str
    strategy: str = "longest_idle"
    max_wait: float = 600.0
    max_waiting: int = 100
    members: dict[str, ChatAgent] = field(default_factory=dict)
    waiting: dict[str, Chat] = field(default_factory=dict)     # insertion order: first come first served
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    timed_out: int = 0
    active: int = 0                 # chats with an agent
    wait_sum: float = 0.0           # over answered chats (ASA)
    last_order: int = -1            # round robin


def _tie(strategy: str, q: _Queue, rng) -> Callable[[ChatAgent], tuple]:
    if strategy == "longest_idle":
        return lambda a: (a.freed_at, a.order)
    if strategy in ("fewest_calls", "least_talk_time"):
        return lambda a: (a.answered, a.order)
    if strategy == "round_robin":
        return lambda a: (a.order <= q.last_order, a.order)
    if strategy == "random":
        return lambda a: (rng.random(),)
    return lambda a: (a.order,)


class ChatRouter:
    def __init__(self, clock: Callable[[], float], rng=None) -> None:
        self.clock = clock
        self.rng = rng
        self.queues: dict[str, _Queue] = {}
        self.agents: dict[str, ChatAgent] = {}
        self.chats: dict[str, Chat] = {}
        self._deadlines: list[tuple[float, str, float]] = []    # (due, chat, entered) checked lazily
        self._wanted: dict[str, dict[str, Chat]] = {}            # agent -> chats transferred to them, waiting

    # --- set-up ----------------------------------------------------------------------------------------------
    def add_queue(self, name: str, strategy: str = "longest_idle", max_wait: float = 600.0,
                  max_waiting: int = 100) -> None:
        q = self.queues.get(name)
        if q is None:
            self.queues[name] = _Queue(name, strategy, max_wait, max_waiting)
        else:
            q.strategy, q.max_wait, q.max_waiting = strategy, max_wait, max_waiting

    def add_agent(self, agent_id: str, queues: dict[str, int], max_chats: int = 3, max_on_call: int = 1,
                  order: int = 0) -> None:
        if max_on_call > max_chats:
            raise ChatError(f"agent {agent_id}: chats while on a call ({max_on_call}) above chats ({max_chats})")
        a = self.agents.get(agent_id)
        if a is None:
            a = self.agents[agent_id] = ChatAgent(agent_id, {}, order=order)
        for qn in a.queues:
            self.queues[qn].members.pop(agent_id, None)
        a.queues = {qn: p for qn, p in queues.items() if qn in self.queues}
        a.max_chats, a.max_on_call, a.order = max_chats, max_on_call, order
        for qn in a.queues:
            self.queues[qn].members[agent_id] = a

    # --- inputs ------------------------------------------------------------------------------------------------
    def dispatch(self) -> list:
        """Give waiting chats to agents with room (after a reload changed queues or agents' figures)."""
        return self._dispatch({name: 0 for name in self.queues})

    def set_state(self, agent_id: str, state: str) -> list:
        a = self.agents.get(agent_id)
        if a is None or a.state == state:
            return []
        a.state = state
        return self._dispatch(a.queues, a)

    def set_online(self, agent_id: str, online: bool) -> list:
        """The agent's chat panel connected or went away; going away puts their chats back in their queues
        (ahead of later ones: they keep the time they entered)."""
        a = self._agent(agent_id)
        if a.online == online:
            return []
        a.online = online
        out: list = []
        if not online:
            # each goes to the head of its queue, so the one that came first ends up first
            for cid in sorted(a.chats, key=lambda i: (self.chats[i].entered, i), reverse=True):
                out += self._requeue(self.chats[cid], "agent left")
        return out + self._dispatch(a.queues, a)

    def open(self, chat_id: str, queue: str) -> list:
        q = self.queues.get(queue)
        if q is None:
            raise ChatError(f"no multimedia queue {queue!r}")
        if chat_id in self.chats:
            raise ChatError(f"chat {chat_id} is already open")
        if len(q.waiting) >= q.max_waiting:
            raise ChatError(f"queue {queue} is full")
        now = self.clock()
        c = self.chats[chat_id] = Chat(chat_id, queue, now, now)
        q.offered += 1
        self._wait(c, q)
        return self._dispatch({queue: 0})

    def end(self, chat_id: str, reason: str) -> list:
        """The visitor or the agent ended it (or the visitor's page went away)."""
        c = self._chat(chat_id)
        q = self.queues[c.queue]
        now = self.clock()
        if c.agent is None:
            q.waiting.pop(c.id, None)
            self._unwant(c)
            # a chat an agent had already answered (then transferred or handed back) was not abandoned
            answered = c.answered_at is not None
            q.abandoned += not answered
            ev = Ended(c.id, c.queue, None, "answered" if answered else "abandoned", reason, now - c.entered)
            del self.chats[c.id]
            return [ev]
        agent = c.agent
        ev = Ended(c.id, c.queue, agent, "answered", reason, (c.answered_at or now) - c.entered)
        self._release(c)
        del self.chats[c.id]
        a = self.agents[agent]
        return [ev] + self._dispatch(a.queues, a)

    def transfer(self, chat_id: str, queue: str | None = None, agent: str | None = None) -> list:
        """Move a chat to another queue (it waits there like a new one) or to a named agent (who takes it at
        once if they have room, else it waits for them in its queue)."""
        c = self._chat(chat_id)
        if (queue is None) == (agent is None):
            raise ChatError("transfer to a queue or to an agent")
        if queue is not None and queue not in self.queues:
            raise ChatError(f"no multimedia queue {queue!r}")
        if agent is not None:
            target = self._agent(agent)
            if agent == c.agent:
                raise ChatError("the chat is already with that agent")
            if not target.online:
                raise ChatError(f"agent {agent} has no chat panel open")
        if queue is not None and len(self.queues[queue].waiting) >= self.queues[queue].max_waiting:
            raise ChatError(f"queue {queue} is full")
        old = c.agent
        freed = self._release(c) if old is not None else {}
        self._unwant(c)
        self.queues[c.queue].waiting.pop(c.id, None)
        c.queue = queue or c.queue
        c.wanted_agent = agent
        if agent is not None:
            self._wanted.setdefault(agent, {})[c.id] = c
        c.entered = self.clock()
        out: list = [Requeued(c.id, c.queue, old, "transferred")] if old is not None else []
        self._wait(c, self.queues[c.queue])
        out += self._dispatch({c.queue: 0}, self.agents[agent] if agent else None)
        if old is not None:
            out += self._dispatch(freed, self.agents[old])
        return out

    def withdraw(self, chat_id: str) -> None:
        """Take a waiting chat out of this router without an outcome: another router serves it now (pool mode,
        where a chat no agent of this node can take waits pool-wide)."""
        c = self._chat(chat_id)
        if c.agent is not None:
            raise ChatError(f"chat {chat_id} is with an agent")
        self.queues[c.queue].waiting.pop(c.id, None)
        self.queues[c.queue].offered -= 1
        self._unwant(c)
        del self.chats[c.id]

    def free(self, queue: str) -> int:
        """Room for more chats among the queue's members (pool mode asks before taking chats of other nodes)."""
        return sum(a.free() for a in self.queues[queue].members.values())

    def tick(self) -> list:
        """Chats that waited past their queue's max_wait end (outcome timeout)."""
        now = self.clock()
        out: list = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, cid, entered = heapq.heappop(self._deadlines)
            c = self.chats.get(cid)
            if c is None or c.agent is not None or c.entered != entered:
                continue
            q = self.queues[c.queue]
            q.waiting.pop(cid, None)
            self._unwant(c)
            q.timed_out += 1
            del self.chats[cid]
            out.append(Ended(cid, c.queue, None, "timeout", "no agent in time", now - c.entered))
        return out

    def next_deadline(self) -> float | None:
        while self._deadlines:
            due, cid, entered = self._deadlines[0]
            c = self.chats.get(cid)
            if c is not None and c.agent is None and c.entered == entered:
                return due
            heapq.heappop(self._deadlines)
        return None

    # --- views -------------------------------------------------------------------------------------------------
    def queue_view(self, name: str) -> dict:
        q = self.queues[name]
        now = self.clock()
        online = [a for a in q.members.values() if a.online]
        held = [len(a.chats) for a in online]
        return {"name": name, "waiting": len(q.waiting),
                "longest_wait": max((now - c.entered for c in q.waiting.values()), default=0.0),
                "offered": q.offered, "answered": q.answered, "abandoned": q.abandoned, "timed_out": q.timed_out,
                "average_speed_of_answer": q.wait_sum / q.answered if q.answered else None,
                "active": q.active, "agents_online": len(online),
                "free_capacity": sum(a.free() for a in online),
                "concurrency": sum(held) / len(held) if held else 0.0,
                "max_concurrency": max(held, default=0)}

    def agent_view(self, agent_id: str) -> dict:
        a = self._agent(agent_id)
        return {"id": a.id, "online": a.online, "state": a.state, "chats": sorted(a.chats),
                "capacity": a.capacity(), "max_chats": a.max_chats, "max_on_call": a.max_on_call,
                "queues": sorted(a.queues)}

    def position(self, chat_id: str) -> int | None:
        c = self.chats.get(chat_id)
        if c is None or c.agent is not None:
            return None
        for i, cid in enumerate(self.queues[c.queue].waiting, 1):
            if cid == chat_id:
                return i
        return None

    # --- inside ------------------------------------------------------------------------------------------------
    def _agent(self, agent_id: str) -> ChatAgent:
        a = self.agents.get(agent_id)
        if a is None:
            raise ChatError(f"no chat agent {agent_id!r}")
        return a

    def _chat(self, chat_id: str) -> Chat:
        c = self.chats.get(chat_id)
        if c is None:
            raise ChatError(f"no chat {chat_id!r}")
        return c

    def _wait(self, c: Chat, q: _Queue) -> None:
        q.waiting[c.id] = c
        heapq.heappush(self._deadlines, (c.entered + q.max_wait, c.id, c.entered))

    def _release(self, c: Chat) -> dict[str, int]:
        a = self.agents[c.agent]
        a.chats.discard(c.id)
        self.queues[c.queue].active -= 1
        a.freed_at = self.clock()
        c.agent = None
        return a.queues

    def _requeue(self, c: Chat, why: str) -> list:
        old = c.agent
        self._release(c)
        q = self.queues[c.queue]
        # back to the head of its queue: it had been served before anyone who came later
        q.waiting = {c.id: c, **q.waiting}
        heapq.heappush(self._deadlines, (c.entered + q.max_wait, c.id, c.entered))
        return [Requeued(c.id, c.queue, old, why)]

    def _unwant(self, c: Chat) -> None:
        if c.wanted_agent is not None:
            self._wanted.get(c.wanted_agent, {}).pop(c.id, None)
            c.wanted_agent = None

    def _dispatch(self, queues, agent: ChatAgent | None = None) -> list:
        """Give waiting chats of these queues to agents with room, oldest first per queue; first the chats
        transferred to `agent` by name, if any."""
        out: list = []
        if agent is not None:
            for c in list(self._wanted.get(agent.id, {}).values()):
                if agent.free() <= 0:
                    break
                out.append(self._assign(c, self.queues[c.queue], agent))
        for name in sorted(queues, key=lambda n: queues[n]):
            q = self.queues.get(name)
            if q is None:
                continue
            for c in list(q.waiting.values()):
                if c.wanted_agent is not None:
                    continue        # waits for the agent it was transferred to (served above)
                a = self._pick(q, c)
                if a is None:
                    break           # nobody has room for this queue; the later ones wait too
                out.append(self._assign(c, q, a))
        return out

    def _pick(self, q: _Queue, c: Chat) -> ChatAgent | None:
        tie = _tie(q.strategy, q, self.rng)
        best, best_key = None, None
        for a in q.members.values():       # the queue's members only, never the tenant
            if a.free() <= 0:
                continue
            key = (a.queues.get(q.name, 0), len(a.chats), *tie(a))
            if best_key is None or key < best_key:
                best, best_key = a, key
        return best

    def _assign(self, c: Chat, q: _Queue, a: ChatAgent) -> Assigned:
        now = self.clock()
        del q.waiting[c.id]
        was = c.agents[-1] if c.agents else None
        self._unwant(c)
        c.agent = a.id
        c.agents.append(a.id)
        a.chats.add(c.id)
        q.active += 1
        a.answered += 1
        q.last_order = a.order
        wait = now - c.entered
        if c.answered_at is None:
            c.answered_at = now
            q.answered += 1
            q.wait_sum += wait
        return Assigned(c.id, a.id, q.name, wait, was)
