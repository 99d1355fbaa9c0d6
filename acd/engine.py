"""The automatic call distributor: calls wait in skill queues and are offered to agents (pure, clock injected).

Inputs are method calls (a call arrives, an offer is answered, a caller hangs up, time passes); outputs are
actions for the call-control side (`Offer`, `Withdraw`, `Leave`) and events for the queue log. `dispatch`
runs after every input, so no agent stays idle while a call it can take waits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .agents import Agent, AgentStateError
from .stats import QueueStats
from .strategies import rank


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


@dataclass(frozen=True)
class Event:
    at: float
    kind: str            # enqueue, offer, answer, no_answer, declined, abandon, overflow, complete, state
    queue: str = ""
    call_id: str = ""
    agent_id: str = ""
    old: str = ""
    new: str = ""
    reason: str = ""
    wait: float = 0.0


class AcdError(Exception):
    pass


class Acd:
    MAX_HOPS = 3

    def __init__(self, queues: list[QueueSpec], agents: list[Agent], clock: Callable[[], float], rng=None,
                 on_event: Callable[[Event], None] | None = None) -> None:
        self.queues = {q.name: q for q in queues}
        self.agents = {a.id: a for a in agents}
        self.by_softphone = {a.softphone: a for a in agents}
        self.clock = clock
        self.rng = rng
        self.on_event = on_event
        self.entries: dict[str, Entry] = {}
        self.talking: dict[str, tuple[str, str, float]] = {}          # call id -> (agent id, queue, answered at)
        self.outcomes: dict[str, str] = {}                           # call id -> answered/abandoned/overflowed/rejected
        self.stats = {q: QueueStats(q, spec.service_level, spec.short_abandon) for q, spec in self.queues.items()}
        self._strategy_state: dict[str, dict] = {q: {} for q in self.queues}
        self._seq = 0

    # --- agents --------------------------------------------------------------------------------------------
    def _change(self, agent: Agent, event: str, reason: str = "", out: list | None = None) -> None:
        now = self.clock()
        old_state = agent.state
        moved = agent.apply(event, now, reason)
        if moved:
            self._emit(Event(now, "state", agent_id=agent.id, old=moved[0], new=moved[1], reason=reason or event))
            if old_state == "talking" and agent.pending:
                pending, agent.pending = agent.pending, None
                self._change(agent, pending, "signed out" if pending == "sign_out" else "softphone unregistered")

    def agent(self, agent_id: str) -> Agent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise AcdError(f"no agent {agent_id!r}") from None

    def registration(self, agent_id: str, registered: bool) -> list:
        """The agent's softphone gained its first / lost its last binding."""
        a = self.agent(agent_id)
        a.registered = registered
        out: list = []
        if not registered and a.state != "offline":
            if a.state == "ringing" and a.call_id:
                out += self._withdraw_agent(a, "softphone unregistered")
            if a.state in ("idle", "busy", "rest", "wrap_up", "talking"):
                self._change(a, "unregistered", "softphone unregistered")
        return out + self.dispatch()

    def sign_in(self, agent_id: str) -> list:
        a = self.agent(agent_id)
        if not a.registered:
            raise AgentStateError(a.state, "sign_in", "sign-in needs a registered softphone")
        if a.state != "offline":
            return []
        self._change(a, "sign_in", "signed in")
        return self.dispatch()

    def sign_out(self, agent_id: str) -> list:
        a = self.agent(agent_id)
        out: list = []
        if a.state == "offline":
            return []
        if a.state == "ringing":
            out += self._withdraw_agent(a, "signed out")
        self._change(a, "sign_out", "signed out")
        return out + self.dispatch()

    def set_state(self, agent_id: str, state: str, reason: str = "") -> list:
        if state not in ("idle", "busy", "rest"):
            raise AcdError(f"cannot set state {state!r}: use idle, busy or rest")
        a = self.agent(agent_id)
        self._change(a, f"set_{state}", reason)
        return self.dispatch()

    # --- calls ---------------------------------------------------------------------------------------------
    def enqueue(self, call_id: str, queue: str, priority: int = 0, video: bool = False) -> list:
        now = self.clock()
        spec = self.queues.get(queue)
        if spec is None:
            raise AcdError(f"no skill queue {queue!r}")
        old = self.entries.get(call_id)
        hops = old.hops + 1 if old else 0
        first = old.first_enqueued if old else now
        if spec.type in ("video", "video_click_to_dial") and not video:
            return self._leave_rejected(call_id, queue, "video_required")
        waiting = sum(1 for e in self.entries.values() if e.queue == queue)
        if waiting >= spec.max_calls:
            return self._overflow(Entry(call_id, queue, priority, now, 0, video, first, hops), "max_calls")
        if not any(a.state != "offline" and queue in a.queues for a in self.agents.values()):
            return self._overflow(Entry(call_id, queue, priority, now, 0, video, first, hops), "no_agents")
        self._seq += 1
        self.entries[call_id] = Entry(call_id, queue, priority, now, self._seq, video, first, hops)
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
        for other in list(e.ringing):        # ring_all: the others stop ringing
            out += self._withdraw(e, self.agents[other], "answered elsewhere")
        del self.entries[call_id]
        self._change(a, "answered", "answered")
        a.call_id = call_id
        a.talk_started = now
        a.answered += 1
        self.talking[call_id] = (agent_id, e.queue, now)
        self.outcomes[call_id] = "answered"
        wait = now - e.enqueued_at
        self.stats[e.queue].answered(now, wait)
        self._emit(Event(now, "answer", e.queue, call_id, agent_id, wait=wait))
        return out + self.dispatch()

    def offer_failed(self, call_id: str, agent_id: str, reason: str = "no_answer") -> list:
        """The agent's phone did not take the offer: no_answer (timeout) or declined (a final error)."""
        e = self.entries.get(call_id)
        if e is None or agent_id not in e.ringing:
            return []
        del e.ringing[agent_id]
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
        e = self.entries.pop(call_id, None)
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
        if item is None:
            return []
        agent_id, queue, at = item
        a = self.agents[agent_id]
        a.talk_time += now - at
        wrap_up = self.queues[queue].wrap_up if queue else 0.0
        if queue:
            self.stats[queue].completed(now, now - at)
        self._emit(Event(now, "complete", queue, call_id, agent_id, wait=now - at))
        if a.state == "talking":
            if wrap_up > 0:
                a.wrap_up_until = now + wrap_up
                self._change(a, "hangup", "wrap-up")
            else:
                self._change(a, "hangup_no_wrap", "call ended")
        return self.dispatch()

    def offer_lost(self, call_id: str, agent_id: str) -> list:
        """Pool mode: another node reserved the agent first; this offer never went out. The call goes on to
        the next agent; the agent counts as engaged elsewhere until that node frees it."""
        e = self.entries.get(call_id)
        a = self.agent(agent_id)
        a.elsewhere = True
        if e is not None and agent_id in e.ringing:
            del e.ringing[agent_id]
            if a.state == "ringing" and a.call_id == call_id:
                self._change(a, "withdrawn", "reserved by another node")
        return self.dispatch()

    def set_elsewhere(self, agent_id: str, engaged: bool) -> list:
        """Pool mode: the agent's calls at other nodes began or ended."""
        a = self.agent(agent_id)
        if a.elsewhere == engaged:
            return []
        a.elsewhere = engaged
        return [] if engaged else self.dispatch()

    def outbound(self, agent_id: str, call_id: str) -> list:
        """A signed-in agent placed a call: occupied (talking) until it ends, then wrap-up like any call."""
        now = self.clock()
        a = self.agent(agent_id)
        if a.state in ("offline", "ringing", "talking"):
            raise AgentStateError(a.state, "outbound", f"cannot call out while {a.state}")
        self._change(a, "outbound", "outbound call")
        a.call_id = call_id
        self.talking[call_id] = (agent_id, "", now)
        return self.dispatch()

    # --- time ----------------------------------------------------------------------------------------------
    def tick(self) -> list:
        """Ring timeouts, max waits and wrap-up ends that are due."""
        now = self.clock()
        out: list = []
        for a in self.agents.values():
            if a.state == "wrap_up" and a.wrap_up_until <= now:
                self._change(a, "wrap_up_done", "wrap-up over")
        for e in list(self.entries.values()):
            for agent_id, deadline in list(e.ringing.items()):
                if deadline <= now:
                    out.append(Withdraw(e.call_id, agent_id, "no_answer"))
                    out += self.offer_failed(e.call_id, agent_id, "no_answer")
            if (e.call_id in self.entries and not e.callback
                    and now - e.enqueued_at >= self.queues[e.queue].max_wait):
                out += self._overflow(e, "max_wait")
        return out + self.dispatch()

    def next_deadline(self) -> float | None:
        times = [a.wrap_up_until for a in self.agents.values() if a.state == "wrap_up"]
        for e in self.entries.values():
            times.extend(e.ringing.values())
            if not e.callback:
                times.append(e.enqueued_at + self.queues[e.queue].max_wait)
        return min(times) if times else None

    # --- matching ------------------------------------------------------------------------------------------
    def dispatch(self) -> list:
        """Offer waiting calls to idle agents: calls by priority then arrival, across all queues."""
        out: list = []
        waiting = sorted((e for e in self.entries.values() if not e.ringing), key=lambda e: (-e.priority, e.seq))
        if not waiting:
            return out
        idle = [a for a in self.agents.values() if a.state == "idle" and a.registered and not a.elsewhere]
        for e in waiting:
            if not idle:
                break
            spec = self.queues[e.queue]
            eligible = [a for a in idle if e.queue in a.queues]
            if not eligible:
                continue
            ranked = rank(spec.strategy, e.queue, eligible, self._strategy_state[e.queue], self.rng)
            chosen = ranked if spec.strategy == "ring_all" else ranked[:1]
            if spec.strategy == "ring_all":
                best = min(a.queues.get(e.queue, 0) for a in ranked)
                chosen = [a for a in ranked if a.queues.get(e.queue, 0) == best]
            for a in chosen:
                out.append(self._offer(e, a, spec))
                idle.remove(a)
        return out

    def _offer(self, e: Entry, a: Agent, spec: QueueSpec) -> Offer:
        now = self.clock()
        e.ringing[a.id] = now + spec.ring_timeout
        self._change(a, "offer", f"call {e.call_id}")
        a.call_id = e.call_id
        self._strategy_state[e.queue]["last_order"] = a.order
        self._emit(Event(now, "offer", e.queue, e.call_id, a.id))
        return Offer(e.call_id, a.id, a.softphone, a.auto_answer_after, spec.ring_timeout)

    def _withdraw(self, e: Entry, a: Agent, reason: str) -> list:
        e.ringing.pop(a.id, None)
        if a.state == "ringing" and a.call_id == e.call_id:
            self._change(a, "withdrawn", reason)
        return [Withdraw(e.call_id, a.id, reason)]

    def _withdraw_agent(self, a: Agent, reason: str) -> list:
        e = self.entries.get(a.call_id or "")
        return self._withdraw(e, a, reason) if e else []

    def _overflow(self, e: Entry, reason: str) -> list:
        now = self.clock()
        out: list = []
        self.entries.pop(e.call_id, None)
        for agent_id in list(e.ringing):
            out += self._withdraw(e, self.agents[agent_id], reason)
        spec = self.queues[e.queue]
        kind, target = spec.overflow
        self.stats[e.queue].overflowed(now)
        self._emit(Event(now, "overflow", e.queue, e.call_id, reason=reason, new=f"{kind}/{target}".rstrip("/")))
        if kind == "queue" and e.hops < self.MAX_HOPS:
            self.entries[e.call_id] = e        # carried to enqueue so hops and first arrival survive
            try:
                return out + self.enqueue(e.call_id, target, e.priority, e.video)
            finally:
                if self.entries.get(e.call_id) is e:
                    del self.entries[e.call_id]
        self.outcomes[e.call_id] = "overflowed"
        if kind == "queue":
            return out + [Leave(e.call_id, "hangup", "", "overflow_loop")]
        return out + [Leave(e.call_id, kind, target, reason)]

    def _leave_rejected(self, call_id: str, queue: str, reason: str) -> list:
        self.entries.pop(call_id, None)
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
        ahead = sum(1 for o in self.entries.values()
                    if o.queue == e.queue and (-o.priority, o.seq) < (-e.priority, e.seq))
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
        serving = sum(1 for a in self.agents.values() if e.queue in a.queues and a.state != "offline")
        if serving == 0:
            return None
        return pos * aht / serving

    # --- views ---------------------------------------------------------------------------------------------
    def queue_view(self, name: str) -> dict:
        now = self.clock()
        waits = [now - e.enqueued_at for e in self.entries.values() if e.queue == name]
        by_state = {s: 0 for s in ("offline", "idle", "ringing", "talking", "busy", "rest", "wrap_up")}
        for a in self.agents.values():
            if name in a.queues:
                by_state[a.state] += 1
        return {"name": name, "waiting": len(waits), "longest_wait": round(max(waits, default=0.0), 3),
                "agents": by_state, **self.stats[name].view(now)}

    def agent_view(self, agent_id: str) -> dict:
        a = self.agent(agent_id)
        return {"id": a.id, "softphone": a.softphone, "state": a.state, "reason": a.reason,
                "since": a.since, "registered": a.registered, "call_id": a.call_id,
                "queues": sorted(a.queues), "answered": a.answered, "elsewhere": a.elsewhere}
