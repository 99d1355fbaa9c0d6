"""The automatic call distributor: calls wait in skill queues and are offered to agents (pure, clock injected).

Inputs are method calls (a call arrives, an offer is answered, a caller hangs up, time passes); outputs are
actions for the call-control side (`Offer`, `Withdraw`, `Leave`) and events for the queue log. `dispatch`
runs after every input, so no agent stays idle while a call it can take waits.

No input scans all agents or calls: per-queue views (roster.py) say who is ready and how many are in each
state, waiting calls are kept per queue in offer order, and deadlines (ring timeouts, queue max waits,
wrap-up ends) are in a heap (deadlines.py). `dispatch` only looks at queues where a call or an agent
became available since the last input.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable

from . import agent_state
from .agent_state import SETTABLE, WITHDRAW_FIRST
from .agents import Agent
from .deadlines import Deadlines
from .errors import LocalProtocolError
from .roster import Roster, is_ready
from .stats import QueueStats


@dataclass(frozen=True)
class QueueSpec:
    name: str
    type: str = "voice"
    strategy: str = "longest_idle"
    max_wait: float = 60.0
    max_calls: int = 100
    ring_timeout: float = 15.0
    wrap_up: float = 5.0
    overflow: tuple[str, str] = ("hangup", "")     # (queue|ivr|hangup, target)
    service_level: float = 20.0
    short_abandon: float = 5.0
    service_level_goal: float = 0.8


@dataclass
class Entry:
    call_id: str
    queue: str
    priority: int
    enqueued_at: float
    seq: int
    video: bool = False
    first_enqueued: float = 0.0
    hops: int = 0
    ringing: dict[str, float] = field(default_factory=dict)     # agent id -> offer deadline
    callback: bool = False        # the caller hung up to be called back: keeps its place, no max wait
    rank: float = 0.0             # place among equal priorities: the arrival (a transferred call keeps its first)


# --- actions for call control ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Offer:
    call_id: str
    agent_id: str
    softphone: str
    auto_answer_after: float
    ring_timeout: float


@dataclass(frozen=True)
class Withdraw:
    """Stop ringing this agent for this call (CANCEL the agent leg)."""
    call_id: str
    agent_id: str
    reason: str


@dataclass(frozen=True)
class Leave:
    """The call leaves the ACD without an agent: to an IVR flow, or hung up (overflow, rejection)."""
    call_id: str
    kind: str            # ivr, hangup
    target: str
    reason: str          # max_wait, max_calls, no_agents, video_required, overflow_loop


@dataclass(frozen=True, slots=True)        # a node keeps the last 10,000 (ContactCenter.events)
class Event:
    at: float
    kind: str            # enqueue, offer, answer, no_answer, declined, abandon, overflow, complete, state
    queue: str = ""
    call_id: str = ""
    agent_id: str = ""
    old: str = ""
    new: str = ""
    reason: str = ""
    wait: float = 0.0    # seconds from entering this queue to the answer, abandon or overflow (complete: the answer's)
    talk: float = 0.0    # complete: seconds from the agent's answer to the end

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


class AcdError(LocalProtocolError):
    """An unknown agent, queue or call, or one that is not where the request expects it."""


class Acd:
    MAX_HOPS = 3

    def __init__(self, queues: list[QueueSpec], agents: list[Agent], clock: Callable[[], float], rng=None,
                 on_event: Callable[[Event], None] | None = None) -> None:
        self.clock = clock
        self.rng = rng
        self.on_event = on_event
        self.queues: dict[str, QueueSpec] = {}
        self.agents: dict[str, Agent] = {}
        self.by_softphone: dict[str, Agent] = {}
        self.entries: dict[str, Entry] = {}
        self.talking: dict[str, tuple[str, str, float]] = {}          # call id -> (agent id, queue, answered at)
        self.answer_waits: dict[str, float] = {}                     # call id -> its wait, while talking
        self.arrivals: dict[str, tuple[float, int, bool]] = {}        # talking call -> first arrival, priority, video
        self.consulting: dict[str, str] = {}                         # agent id -> their consult's key (handover.py)
        self.outcomes: dict[str, str] = {}                           # call id -> answered/abandoned/overflowed/rejected
        self.stats: dict[str, QueueStats] = {}
        self.roster = Roster()
        self._strategy_state: dict[str, dict] = {}
        self._waiting: dict[str, dict[str, Entry]] = {}       # queue -> its entries, ringing or not
        self._unoffered: dict[str, list] = {}                 # queue -> heap of (-priority, rank, seq, call id)
        self._deadlines = Deadlines()
        self._seq = 0
        for q in queues:
            self.set_queue(q)
        for a in agents:
            self.add_agent(a)

    # --- tenant changes (config load and reload) ------------------------------------------------------------
    def set_queue(self, spec: QueueSpec) -> None:
        """Add a skill queue or change its settings; calls already waiting keep their place."""
        name = spec.name
        if name not in self.queues:
            self.stats[name] = QueueStats(name, spec.service_level, spec.short_abandon)
            self._strategy_state[name] = {}
            self._waiting[name] = {}
            self._unoffered[name] = []
        st = self.stats[name]           # counts so far stay; new calls are judged by the new settings
        st.service_level_s, st.short_abandon_s, st.target_share = (spec.service_level, spec.short_abandon,
                                                                   spec.service_level_goal)
        self.queues[name] = spec
        self.roster.set_strategy(name, spec.strategy)
        for e in self._waiting[name].values():     # a new max wait: the old deadlines no longer stand
            self._deadlines.add(e.enqueued_at + spec.max_wait, ("wait", e.call_id, e.seq))

    def add_agent(self, a: Agent) -> None:
        self.agents[a.id] = a
        self.by_softphone[a.softphone] = a
        self.roster.sync(a)

    def update_agent(self, agent_id: str, softphone: str, queues: dict[str, int], auto_answer_after: float,
                     order: int) -> None:
        a = self.agent(agent_id)
        if self.by_softphone.get(a.softphone) is a:
            del self.by_softphone[a.softphone]
        a.softphone, a.queues, a.auto_answer_after, a.order = softphone, queues, auto_answer_after, order
        self.by_softphone[softphone] = a
        self.roster.sync(a)

    def remove_agent(self, agent_id: str) -> None:
        """Forget an agent that is offline (sign it out first)."""
        a = self.agent(agent_id)
        if a.state != "offline":
            raise AcdError(f"agent {agent_id!r} is {a.state}; sign it out first")
        del self.agents[agent_id]
        if self.by_softphone.get(a.softphone) is a:
            del self.by_softphone[a.softphone]
        self.roster.remove(a)

    # --- agents --------------------------------------------------------------------------------------------
    def _change(self, agent: Agent, event: str, reason: str = "") -> tuple[str, str] | None:
        """The one way the ACD changes an agent's state (agent_state.py has the rules)."""
        now = self.clock()
        moved = agent_state.apply(agent, event, now, reason)
        if moved:
            self.roster.sync(agent)
            self._emit(Event(now, "state", agent_id=agent.id, old=moved[0], new=moved[1], reason=reason or event))
            then = agent_state.follow_up(agent, moved[0])
            if then is not None:
                self._change(agent, *then)
        return moved

    def agent(self, agent_id: str) -> Agent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise AcdError(f"no agent {agent_id!r}") from None

    def registration(self, agent_id: str, registered: bool) -> list:
        """The agent's softphone gained its first / lost its last binding."""
        a = self.agent(agent_id)
        a.registered = registered
        self.roster.sync(a)
        out: list = []
        if not registered:
            if (a.state, "unregistered") in WITHDRAW_FIRST:
                out += self._withdraw_agent(a, "softphone unregistered")
            self._change(a, "unregistered", "softphone unregistered")
        return out + self.dispatch()

    def sign_in(self, agent_id: str) -> list:
        a = self.agent(agent_id)
        if not self._change(a, "sign_in", "signed in"):
            return []                           # already signed in
        return self.dispatch()

    def sign_out(self, agent_id: str) -> list:
        a = self.agent(agent_id)
        out: list = []
        if agent_state.kind(a.state, "sign_out") == "no-op":
            return []
        if (a.state, "sign_out") in WITHDRAW_FIRST:
            out += self._withdraw_agent(a, "signed out")
        self._change(a, "sign_out", "signed out")
        return out + self.dispatch()

    def set_state(self, agent_id: str, state: str, reason: str = "") -> list:
        if state not in SETTABLE:
            raise AcdError(f"cannot set state {state!r}: use idle, busy or rest")
        a = self.agent(agent_id)
        self._change(a, f"set_{state}", reason)
        return self.dispatch()

    # --- calls ---------------------------------------------------------------------------------------------
    def enqueue(self, call_id: str, queue: str, priority: int = 0, video: bool = False) -> list:
        return self._enqueue(call_id, queue, priority, video, self.entries.get(call_id))

    def _enqueue(self, call_id: str, queue: str, priority: int, video: bool, old: Entry | None,
                 rank: float | None = None) -> list:
        """`old`: the entry the call had (an overflow from another queue), whose hops and first arrival carry on.
        `rank`: a transferred call's first arrival, its place among callers of its priority."""
        now = self.clock()
        spec = self.queues.get(queue)
        if spec is None:
            raise AcdError(f"no skill queue {queue!r}")
        if old is not None and self.entries.get(call_id) is old:
            self._drop(call_id)
        hops = old.hops + 1 if old else 0
        first = old.first_enqueued if old else (now if rank is None else rank)
        if spec.type in ("video", "video_click_to_dial") and not video:
            return self._leave_rejected(call_id, queue, "video_required")
        if len(self._waiting[queue]) >= spec.max_calls:
            return self._overflow(Entry(call_id, queue, priority, now, 0, video, first, hops), "max_calls")
        if not self.roster.staffed(queue):
            return self._overflow(Entry(call_id, queue, priority, now, 0, video, first, hops), "no_agents")
        self._seq += 1
        e = self.entries[call_id] = Entry(call_id, queue, priority, now, self._seq, video, first, hops,
                                          rank=now if rank is None else rank)
        self._waiting[queue][call_id] = e
        self._deadlines.add(now + spec.max_wait, ("wait", call_id, e.seq))
        self._unoffer(e)
        self.stats[queue].entered(now)
        self._emit(Event(now, "enqueue", queue, call_id, reason=f"priority {priority}"))
        return self.dispatch()

    def answered(self, call_id: str, agent_id: str) -> list:
        """The agent's phone answered the offer: the call is connected to that agent."""
        now = self.clock()
        e = self.entries.get(call_id)
        a = self.agent(agent_id)
        if e is None or agent_id not in e.ringing:
            raise AcdError(f"no offer of {call_id} to {agent_id}")
        out: list = []
        del e.ringing[agent_id]
        self._drop(call_id)
        for other in list(e.ringing):        # ring_all: the others stop ringing
            out += self._withdraw(e, self.agents[other], "answered elsewhere")
        self._change(a, "answered", "answered")
        a.call_id = call_id
        a.talk_started = now
        a.answered += 1
        self.talking[call_id] = (agent_id, e.queue, now)
        self.arrivals[call_id] = (e.first_enqueued, e.priority, e.video)
        self.outcomes[call_id] = "answered"
        wait = self.answer_waits[call_id] = now - e.enqueued_at
        self.stats[e.queue].answered(now, wait)
        self._emit(Event(now, "answer", e.queue, call_id, agent_id, wait=wait))
        return out + self.dispatch()

    def offer_failed(self, call_id: str, agent_id: str, reason: str = "no_answer") -> list:
        """The agent's phone did not take the offer: no_answer (timeout) or declined (a final error)."""
        e = self.entries.get(call_id)
        if e is None or agent_id not in e.ringing:
            return []
        del e.ringing[agent_id]
        if not e.ringing:
            self._unoffer(e)
        a = self.agent(agent_id)
        self._change(a, "no_answer" if reason == "no_answer" else "declined", reason)
        self._emit(Event(self.clock(), "no_answer" if reason == "no_answer" else "declined", e.queue, call_id,
                         agent_id, reason=reason))
        return self.dispatch()

    def callback(self, call_id: str) -> list:
        """The caller asked to be called back: the entry keeps its place though the caller's line is gone."""
        e = self.entries.get(call_id)
        if e is None:
            raise AcdError(f"{call_id} is not waiting")
        e.callback = True
        self._emit(Event(self.clock(), "callback", e.queue, call_id, reason="caller keeps place",
                         wait=self.clock() - e.enqueued_at))
        return []

    def caller_gone(self, call_id: str) -> list:
        """The customer hung up: while waiting or ringing it is an abandon; while talking the call ends."""
        now = self.clock()
        if call_id in self.talking:
            return self.call_ended(call_id)
        e = self._drop(call_id)
        if e is None:
            return []
        out: list = []
        for agent_id in list(e.ringing):
            out += self._withdraw(e, self.agents[agent_id], "caller hung up")
        self.outcomes[call_id] = "abandoned"
        wait = now - e.enqueued_at
        self.stats[e.queue].abandoned(now, wait)
        self._emit(Event(now, "abandon", e.queue, call_id, wait=wait))
        return out + self.dispatch()

    def call_ended(self, call_id: str) -> list:
        """A connected call ended (either side hung up): the agent goes to wrap-up."""
        now = self.clock()
        item = self.talking.pop(call_id, None)
        self.arrivals.pop(call_id, None)
        if self.consulting:         # a consult call placed from the agent's phone ends: the flag goes
            self.consulting = {a: k for a, k in self.consulting.items() if k != call_id}
        if item is None:
            return []
        agent_id, queue, at = item
        a = self.agents[agent_id]
        a.talk_time += now - at
        wrap_up = self.queues[queue].wrap_up if queue else 0.0
        if queue:
            self.stats[queue].completed(now, now - at)
        self._emit(Event(now, "complete", queue, call_id, agent_id, wait=self.answer_waits.pop(call_id, 0.0),
                         talk=now - at))
        if a.state == "talking":
            if wrap_up > 0:
                a.wrap_up_until = now + wrap_up
                self._deadlines.add(a.wrap_up_until, ("wrap", a.id))
                self._change(a, "hangup", "wrap-up")
            else:
                self._change(a, "hangup_no_wrap", "call ended")
        return self.dispatch()

    def transfer(self, call_id: str, queue: str = "", agent_id: str = "") -> list:
        """A connected call is transferred: its agent is done with it (wrap-up, as at any end) and the call
        waits in `queue` with its priority, placed by its first arrival (ahead of callers who came later, not
        behind them). With `agent_id` it rings that agent alone when they are ready for it (signed in, phone
        registered, idle), else it waits in the agent's queue: the call's own when the agent serves it, else
        the agent's first. A `transfer` line says who gave it where."""
        item = self.talking.get(call_id)
        if item is None:
            raise AcdError(f"{call_id} is not connected to an agent")
        target = self.agent(agent_id) if agent_id else None
        if target is not None:
            if target.id == item[0]:
                raise AcdError("an agent cannot transfer a call to themselves")
            if not target.queues:
                raise AcdError(f"agent {agent_id} serves no skill queue")
            queue = item[1] if item[1] in target.queues else min(target.queues, key=lambda q: (target.queues[q], q))
        if queue not in self.queues:
            raise AcdError(f"no skill queue {queue!r}")
        now = self.clock()
        first, priority, video = self.arrivals.get(call_id, (now, 0, False))
        self._emit(Event(now, "transfer", queue, call_id, item[0], old=item[1],
                         new=f"agent/{agent_id}" if agent_id else f"queue/{queue}"))
        out = self.call_ended(call_id)
        if target is None or not is_ready(target) or queue not in target.queues:
            return out + self._enqueue(call_id, queue, priority, video, None, rank=first)
        spec = self.queues[queue]
        self._seq += 1
        e = self.entries[call_id] = Entry(call_id, queue, priority, now, self._seq, video, first, rank=first)
        self._waiting[queue][call_id] = e
        self._deadlines.add(now + spec.max_wait, ("wait", call_id, e.seq))
        self.stats[queue].entered(now)
        self._emit(Event(now, "enqueue", queue, call_id, reason=f"priority {priority}, transferred"))
        return out + [self._offer(e, target, spec)] + self.dispatch()

    def offer_lost(self, call_id: str, agent_id: str) -> list:
        """Pool mode: another node reserved the agent first; this offer never went out. The call goes on to
        the next agent; the agent counts as engaged elsewhere until that node frees it."""
        e = self.entries.get(call_id)
        a = self.agent(agent_id)
        a.elsewhere = True
        self.roster.sync(a)
        if e is not None and agent_id in e.ringing:
            del e.ringing[agent_id]
            if not e.ringing:
                self._unoffer(e)
            if a.state == "ringing" and a.call_id == call_id:
                self._change(a, "withdrawn", "reserved by another node")
        return self.dispatch()

    def set_elsewhere(self, agent_id: str, engaged: bool) -> list:
        """Pool mode: the agent's calls at other nodes began or ended."""
        a = self.agent(agent_id)
        if a.elsewhere == engaged:
            return []
        a.elsewhere = engaged
        self.roster.sync(a)
        return [] if engaged else self.dispatch()

    def outbound(self, agent_id: str, call_id: str) -> list:
        """A signed-in agent placed a call: occupied (talking) until it ends, then wrap-up like any call."""
        now = self.clock()
        a = self.agent(agent_id)
        self._change(a, "outbound", "outbound call")      # refused unless the agent is free for it
        a.call_id = call_id
        self.talking[call_id] = (agent_id, "", now)
        return self.dispatch()

    # --- time ----------------------------------------------------------------------------------------------
    def tick(self) -> list:
        """Ring timeouts, max waits and wrap-up ends that are due."""
        now = self.clock()
        out: list = []
        due = self._deadlines.due(now, self._stands)
        for at, key in due:                  # agents freed first: they may take the calls below
            if key[0] == "wrap" and self._stands(key, at):
                self._change(self.agents[key[1]], "wrap_up_done", "wrap-up over")
        for at, key in due:
            if key[0] == "wrap" or not self._stands(key, at):
                continue
            if key[0] == "ring":
                out.append(Withdraw(key[1], key[2], "no_answer"))
                out += self.offer_failed(key[1], key[2], "no_answer")
            else:
                out += self._overflow(self.entries[key[1]], "max_wait")
        return out + self.dispatch()

    def next_deadline(self) -> float | None:
        return self._deadlines.next(self._stands)

    def _stands(self, key: tuple, at: float) -> bool:
        """Whether a deadline in the heap still applies (the offer, the wait or the wrap-up it was for)."""
        if key[0] == "ring":
            e = self.entries.get(key[1])
            return e is not None and e.ringing.get(key[2]) == at
        if key[0] == "wait":
            e = self.entries.get(key[1])
            return (e is not None and e.seq == key[2] and not e.callback
                    and e.enqueued_at + self.queues[e.queue].max_wait == at)
        a = self.agents.get(key[1])
        return a is not None and a.state == "wrap_up" and a.wrap_up_until == at

    # --- matching ------------------------------------------------------------------------------------------
    def dispatch(self) -> list:
        """Offer waiting calls to idle agents: calls by priority then arrival, across all queues.

        Only queues where a call or an agent became available since the last dispatch can have a match (after
        each dispatch no waiting call has a ready agent); among those, the best waiting call goes first."""
        out: list = []
        dirty = self.roster.gained
        while dirty:
            best = None
            for q in list(dirty):
                head = self._head(q)
                if head is None or not self.roster.ready.get(q):
                    dirty.discard(q)
                elif best is None or head < best[0]:
                    best = (head, q)
            if best is None:
                break
            (*_, call_id), q = best
            heapq.heappop(self._unoffered[q])
            e, spec = self.entries[call_id], self.queues[q]
            for a in self.roster.pick(q, self.rng, self._strategy_state[q]):
                out.append(self._offer(e, a, spec))
        return out

    def _head(self, q: str) -> tuple | None:
        """The first waiting call of the queue that is not ringing anyone, dropping stale heap items."""
        heap = self._unoffered.get(q)
        while heap:
            _, _, seq, call_id = heap[0]
            e = self.entries.get(call_id)
            if e is not None and e.seq == seq and e.queue == q and not e.ringing:
                return heap[0]
            heapq.heappop(heap)
        return None

    def _unoffer(self, e: Entry) -> None:
        """The entry rings no one (new, or its offers failed): it waits for the next ready agent."""
        heapq.heappush(self._unoffered[e.queue], (-e.priority, e.rank, e.seq, e.call_id))
        self.roster.gained.add(e.queue)

    def _drop(self, call_id: str) -> Entry | None:
        e = self.entries.pop(call_id, None)
        if e is not None:
            self._waiting[e.queue].pop(call_id, None)
        return e

    def _offer(self, e: Entry, a: Agent, spec: QueueSpec) -> Offer:
        now = self.clock()
        e.ringing[a.id] = now + spec.ring_timeout
        self._deadlines.add(e.ringing[a.id], ("ring", e.call_id, a.id))
        self._change(a, "offer", f"call {e.call_id}")
        a.call_id = e.call_id
        self._strategy_state[e.queue]["last_order"] = a.order
        self._emit(Event(now, "offer", e.queue, e.call_id, a.id))
        return Offer(e.call_id, a.id, a.softphone, a.auto_answer_after, spec.ring_timeout)

    def _withdraw(self, e: Entry, a: Agent, reason: str) -> list:
        if e.ringing.pop(a.id, None) is not None and not e.ringing and self.entries.get(e.call_id) is e:
            self._unoffer(e)
        if a.state == "ringing" and a.call_id == e.call_id:
            self._change(a, "withdrawn", reason)
        return [Withdraw(e.call_id, a.id, reason)]

    def _withdraw_agent(self, a: Agent, reason: str) -> list:
        e = self.entries.get(a.call_id or "")
        return self._withdraw(e, a, reason) if e else []

    def _overflow(self, e: Entry, reason: str) -> list:
        now = self.clock()
        out: list = []
        if self.entries.get(e.call_id) is e:
            self._drop(e.call_id)
        for agent_id in list(e.ringing):
            out += self._withdraw(e, self.agents[agent_id], reason)
        spec = self.queues[e.queue]
        kind, target = spec.overflow
        self.stats[e.queue].overflowed(now)
        self._emit(Event(now, "overflow", e.queue, e.call_id, reason=reason, new=f"{kind}/{target}".rstrip("/"),
                         wait=now - e.enqueued_at))
        if kind == "queue" and e.hops < self.MAX_HOPS:
            return out + self._enqueue(e.call_id, target, e.priority, e.video, e)
        self.outcomes[e.call_id] = "overflowed"
        if kind == "queue":
            return out + [Leave(e.call_id, "hangup", "", "overflow_loop")]
        return out + [Leave(e.call_id, kind, target, reason)]

    def _leave_rejected(self, call_id: str, queue: str, reason: str) -> list:
        self._drop(call_id)
        self.outcomes[call_id] = "rejected"
        self._emit(Event(self.clock(), "reject", queue, call_id, reason=reason))
        return [Leave(call_id, "hangup", "", reason)]

    def _emit(self, ev: Event) -> None:
        if self.on_event is not None:
            self.on_event(ev)

    # --- caller information -------------------------------------------------------------------------------
    def position(self, call_id: str) -> int | None:
        """1-based place of a waiting call in its queue, in the order calls are offered."""
        e = self.entries.get(call_id)
        if e is None:
            return None
        ahead = sum(1 for o in self._waiting[e.queue].values() if (-o.priority, o.rank, o.seq) < (-e.priority, e.rank, e.seq))
        return ahead + 1

    def estimated_wait(self, call_id: str, default_handle_time: float = 180.0) -> float | None:
        """Seconds until an agent is likely free for this caller, from live statistics: callers ahead times
        the average handle time, shared by the agents serving the queue (any strategy)."""
        pos = self.position(call_id)
        if pos is None:
            return None
        e = self.entries[call_id]
        view = self.stats[e.queue].view(self.clock())
        aht = view["average_handle_time"] or default_handle_time
        serving = self.roster.staffed(e.queue)
        if serving == 0:
            return None
        return pos * aht / serving

    # --- views ---------------------------------------------------------------------------------------------
    def queue_view(self, name: str) -> dict:
        now = self.clock()
        waits = [now - e.enqueued_at for e in self._waiting.get(name, {}).values()]
        by_state = {s: 0 for s in ("offline", "idle", "ringing", "talking", "busy", "rest", "wrap_up")}
        by_state.update(self.roster.counts.get(name, {}))
        return {"name": name, "waiting": len(waits), "longest_wait": round(max(waits, default=0.0), 3),
                "agents": by_state, **self.stats[name].view(now)}

    def agent_view(self, agent_id: str) -> dict:
        a = self.agent(agent_id)
        return {"id": a.id, "softphone": a.softphone, "state": a.state, "reason": a.reason,
                "since": a.since, "registered": a.registered, "call_id": a.call_id,
                "queues": sorted(a.queues), "answered": a.answered, "elsewhere": a.elsewhere,
                "consult": a.id in self.consulting}
