"""The ACD running inside a node: feeds it registrations, time and call events, and publishes its events.

The ACD itself (acd/) is pure; this module gives it the wall clock, one re-armed timer for its deadlines,
the softphone bindings from the registrar, and a reconciler that repairs states that drifted from reality.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque

from acd import Acd, Agent, AgentStateError, Event, QueueSpec

from .. import log

# The steps every queued call takes, logged at debug only: the queue log and the CDR hold each of them, and
# a line per step was a tenth of a call's CPU. Declines, abandons, overflows, sign-ins and breaks stay at info.
ROUTINE_KINDS = frozenset({"enqueue", "offer", "answer", "complete"})
ROUTINE_STATES = frozenset({("idle", "ringing"), ("ringing", "talking"), ("talking", "wrap_up"),
                            ("talking", "idle"), ("wrap_up", "idle")})


def queue_spec(q) -> QueueSpec:
    """The ACD's view of a configured skill queue."""
    return QueueSpec(q.name, q.type, q.strategy, q.max_wait, q.max_calls, q.ring_timeout, q.wrap_up,
                     (q.overflow.kind, q.overflow.target), q.service_level, q.short_abandon,
                     q.service_level_goal)


def agent_queues(a) -> dict[str, int]:
    """A configured agent's skill queues with their penalties."""
    return {name: a.penalties.get(name, 0) for name in a.queues}


def acd_from_config(cfg, clock=time.time, on_event=None) -> Acd:
    queues = [queue_spec(q) for q in cfg.queues]
    agents = [Agent(a.id, a.softphone, agent_queues(a), a.auto_answer_after, order=i)
              for i, a in enumerate(cfg.agents)]
    return Acd(queues, agents, clock, rng=random.Random(), on_event=on_event)


class ContactCenter:
    def __init__(self, cfg, loop: asyncio.AbstractEventLoop) -> None:
        self.cfg = cfg
        self.loop = loop
        self.log = log.get("acd")
        self.debug = log.debug_enabled()
        self.acd = acd_from_config(cfg, on_event=self._on_event)
        self.calls = None                       # CallControl, set by the node
        self.records = None                     # RecordStore: a queue-log line for every ACD event
        self.timing: dict[str, list] = {}       # call id -> [wait, talk] for its CDR (see call_timing)
        self.pool = None                        # pool mode: shares agent states with the other nodes
        self.board = None                       # QueueBoard: waiting calls and counters (pool-wide on Redis)
        self.bindings: dict[str, list] = {}     # softphone -> live bindings
        self.events: deque[Event] = deque(maxlen=10000)
        self.subscribers: set[asyncio.Queue] = set()
        self.corrections = 0
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None
        self._cursor = 0                        # where the reconciler's next slice of agents starts
        self._reconciler: asyncio.Task | None = None
        self.reachable = lambda bindings: bindings     # the node's PhoneWatch leaves out unreachable bindings
        self.away: dict[str, bool] = {}         # agent -> was idle: held busy while no phone is reachable
        self._flow_closed: set[str] = set()     # softphones whose connection just closed (their bindings go)
        self.silent: set[str] = set()           # softphones with bindings, none of which has answered yet
        self._lines: list | None = None         # queue-log lines of the ACD step being run, committed together

    # --- inputs --------------------------------------------------------------------------------------------
    def on_bindings(self, user: str, before: list, after: list) -> None:
        self.bindings[user] = self.reachable(after)        # offers go only to bindings that answer
        agent = self.acd.by_softphone.get(user)
        if agent is not None and self._phone_presence(agent, bool(after), bool(self.bindings[user])):
            return
        if agent is not None and agent.registered != bool(after):
            self.run(self.acd.registration, agent.id, bool(after))
            if after and self.pool is not None:
                self.pool.agent_registered(agent.id)

    def run(self, fn, *args):
        """Call an ACD input and carry out what it asks (offers, withdrawals, calls leaving). The step's
        queue-log lines go to the records as one transaction, before anything it asks is done."""
        outer = self._lines is None
        if outer:
            self._lines = []
        try:
            actions = fn(*args)
        finally:
            if outer:
                lines, self._lines = self._lines, None
                if lines and self.records is not None:
                    self.records.add_queue_events(lines)
        if self.calls is not None and actions:
            self.calls.apply(actions)
        self._rearm()
        return actions

    def _rearm(self) -> None:
        """One loop timer at the ACD's next deadline; left alone when that has not moved (most inputs)."""
        deadline = self.acd.next_deadline()
        if deadline == self._armed_for and (self._timer is not None or deadline is None):
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed_for = deadline
        if deadline is not None:
            self._timer = self.loop.call_later(max(0.0, deadline - time.time()) + 0.005, self._tick)

    def call_timing(self, call_id: str) -> tuple[float | None, float | None]:
        """The CDR's wait and talk, the same figures as the call's queue-log rows: wait is the sum of the
        waits of its answer, abandon and overflow rows, talk the talk of its complete row; None when the call
        never entered a skill queue or was never answered by an agent. Forgotten once asked."""
        wait, talk = self.timing.pop(call_id, (None, None))
        return wait, talk

    def _tick(self) -> None:
        self._timer = None
        self._armed_for = None
        try:
            self.run(self.acd.tick)
        except Exception:
            self.log.exception("acd_tick_failed")
            self._rearm()

    def _on_event(self, ev: Event) -> None:
        self.events.append(ev)
        if ev.kind == "state" and ev.agent_id in self.away:
            self._away_state(ev)
        if self.pool is not None:
            self.pool.on_acd_event(ev)
        if self.board is not None and ev.queue:
            self.loop.create_task(self._board(ev))
        if self.records is not None:
            line = ({"at": ev.at, "queue": ev.queue, "call_id": ev.call_id, "agent_id": ev.agent_id, "event": ev.kind,
                     "old": ev.old, "new": ev.new, "reason": ev.reason, "wait": ev.wait, "talk": ev.talk}, self._opened(ev))
            if self._lines is not None:
                self._lines.append(line)
            else:
                self.records.add_queue_event(*line)
            if ev.kind in ("answer", "abandon", "overflow", "complete"):
                t = self.timing.setdefault(ev.call_id, [0.0, None])
                if ev.kind == "complete":
                    t[1] = ev.talk      # its wait repeats the answer's, already counted
                else:
                    t[0] += ev.wait     # a call that overflowed waited in each queue in turn
        routine = ev.kind in ROUTINE_KINDS or (ev.kind == "state" and (ev.old, ev.new) in ROUTINE_STATES)
        if routine and not self.debug and not self.subscribers:
            return
        values = ev.as_dict()
        if not routine or self.debug:
            fields = {k: v for k, v in values.items() if v not in ("", 0.0) and k != "at"}
            (self.log.debug if routine else self.log.info)("acd_" + ev.kind, **fields)
        if self.subscribers:
            payload = {"type": ev.kind, **values}
            for q in list(self.subscribers):
                if q.qsize() < 1000:
                    q.put_nowait(payload)

    def _opened(self, ev: Event) -> dict | None:
        """Who called whom, for the journal of calls in progress (a crash's interrupted CDR)."""
        call = self.calls.calls.get(ev.call_id) if ev.kind == "enqueue" and self.calls is not None else None
        if call is None:
            return None
        dialog = call.customer.dialog
        return {"caller": dialog.remote_uri if dialog else "", "called": call.number, "started_at": call.started}

    async def _board(self, ev: Event) -> None:
        b = self.board
        try:
            if ev.kind == "enqueue":
                await b.add(ev.queue, ev.call_id, ev.at)
                await b.count(ev.queue, "entered")
            elif ev.kind in ("answer", "abandon", "overflow", "reject"):
                await b.remove(ev.queue, ev.call_id)
                counter = {"answer": "answered", "abandon": "abandoned", "overflow": "overflowed",
                           "reject": "overflowed"}[ev.kind]
                await b.count(ev.queue, counter)
                if ev.kind == "answer":
                    await b.count(ev.queue, "wait_total", ev.wait)
            elif ev.kind == "complete":
                await b.count(ev.queue, "completed")
                await b.count(ev.queue, "talk_total", ev.talk)
        except Exception as exc:          # the board is a view: a failure must not disturb calls
            self.log.warning("queue_board_failed", call_id=ev.call_id, error=str(exc))

    async def pool_view(self, name: str) -> dict:
        """The queue across the pool: waiting calls of every node and the summed counters."""
        n, longest = await self.board.waiting(name, time.time())
        c = await self.board.counters(name)
        return {"waiting": n, "longest_wait": round(longest, 3), "entered": int(c["entered"]),
                "answered": int(c["answered"]), "abandoned": int(c["abandoned"]),
                "overflowed": int(c["overflowed"]),
                "average_speed_of_answer": round(c["wait_total"] / c["answered"], 3) if c["answered"] else None,
                "average_handle_time": round(c["talk_total"] / c["completed"], 3) if c["completed"] else None}

    # --- agent commands (API) ------------------------------------------------------------------------------
    def sign_in(self, agent_id: str) -> dict:
        self._check_phone(agent_id)
        self.run(self.acd.sign_in, agent_id)
        return self.acd.agent_view(agent_id)

    def sign_out(self, agent_id: str) -> dict:
        self.run(self.acd.sign_out, agent_id)
        return self.acd.agent_view(agent_id)

    def set_state(self, agent_id: str, state: str, reason: str = "") -> dict:
        self.run(self.acd.set_state, agent_id, state, reason)
        return self.acd.agent_view(agent_id)

    # --- phones that come and go ---------------------------------------------------------------------------
    def flow_lost(self, user: str) -> None:
        """The softphone's connection closed; its bindings are being removed (the agent is held, not signed
        out: the phone may come back, e.g. the agent page reloaded)."""
        self._flow_closed.add(user)

    def _phone_presence(self, agent, any_binding: bool, reachable: bool) -> bool:
        """Hold a signed-in agent busy (phone_unreachable) while none of their phones is reachable, and let
        them go back when one is; True when that is all there is to do."""
        flow_closed = agent.softphone in self._flow_closed
        self._flow_closed.discard(agent.softphone)
        if any_binding and not reachable:
            self.silent.add(agent.softphone)
        else:
            self.silent.discard(agent.softphone)
        if reachable:
            if agent.id in self.away:
                self._phone_back(agent)
            return False
        if agent.state == "offline":
            if any_binding and agent.registered:       # only silent bindings: as good as none for a sign-in
                self.run(self.acd.registration, agent.id, False)
            return any_binding
        if not (any_binding or flow_closed):
            return False        # the phone unregistered or its registration expired: signed out as before
        if agent.id not in self.away:
            self.away[agent.id] = agent.state in ("idle", "wrap_up", "ringing", "talking")
            self.log.info("phone_unreachable", agent_id=agent.id, softphone=agent.softphone, state=agent.state)
            self._hold(agent.id)
        return True

    def hold_until_reachable(self, agent_id: str, was_idle: bool) -> None:
        """An agent signed in again after a restart whose kept binding has not answered yet: held busy
        (phone_unreachable) until it does, then back to idle if that is what they were."""
        agent = self.acd.agents[agent_id]
        self.away[agent_id] = was_idle
        self.log.info("phone_unreachable", agent_id=agent_id, softphone=agent.softphone, state=agent.state)
        self._hold(agent_id)

    def _hold(self, agent_id: str) -> None:
        a = self.acd.agents.get(agent_id)
        if a is None or agent_id not in self.away:
            return
        if a.state in ("idle", "busy", "rest", "wrap_up") and (a.state, a.reason) != ("busy", "phone_unreachable"):
            if a.state in ("busy", "rest"):
                self.away[agent_id] = False          # they had stepped away already: they stay away
            self.run(self.acd.set_state, agent_id, "busy", "phone_unreachable")
        # ringing or talking: the offer or the call ends by itself; _away_state holds the agent then

    def _away_state(self, ev: Event) -> None:
        """A held agent changed state: signed out (forget them), or an offer or call ended (hold again)."""
        if ev.new == "offline":
            self.away.pop(ev.agent_id, None)
        elif ev.new in ("idle", "wrap_up") or (ev.new == "busy" and ev.reason in ("no_answer", "declined")):
            self.loop.call_soon(self._hold, ev.agent_id)     # not from inside the ACD's own change

    def _phone_back(self, agent) -> None:
        was_idle = self.away.pop(agent.id)
        self.log.info("phone_reachable", agent_id=agent.id, softphone=agent.softphone)
        if not agent.registered:
            self.run(self.acd.registration, agent.id, True)
        if was_idle and (agent.state, agent.reason) == ("busy", "phone_unreachable"):
            self.run(self.acd.set_state, agent.id, "idle", "phone_reachable")

    def _check_phone(self, agent_id: str) -> None:
        """Sign-in needs a phone that answers (a binding kept from a past run or gone silent does not do)."""
        a = self.acd.agent(agent_id)
        if self.bindings.get(a.softphone) or (self.pool is not None and a.registered):
            return
        raise AgentStateError(a.state, "sign_in", f"phone_unreachable: sign-in needs a registered softphone "
                                                  f"that answers; {a.softphone} has none")

    # --- reconciler ----------------------------------------------------------------------------------------
    def start(self) -> None:
        self._reconciler = self.loop.create_task(self._reconcile_loop())

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._reconciler is not None:
            self._reconciler.cancel()

    async def _reconcile_loop(self, every: float = 5.0) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                self.reconcile()
            except Exception:
                self.log.exception("reconcile_failed")

    def reconcile(self, slice_size: int = 1000) -> int:
        """Compare agent states with registrations and live calls; repair and log every difference.

        Agents on a call are all checked; registrations are checked for the next `slice_size` agents in turn,
        so one pass costs the same on any tenant and every agent comes round within agents/slice_size passes."""
        fixed = 0
        now = time.time()
        acd = self.acd
        live = self.calls.live_agent_calls() if self.calls is not None else {}
        engaged = {agent_id for agent_id, _, _ in acd.talking.values()}
        engaged.update(a for e in acd.entries.values() for a in e.ringing)
        ids = list(acd.agents)
        start = self._cursor % len(ids) if ids else 0
        turn = ids[start:start + slice_size] + ids[:max(0, start + slice_size - len(ids))]
        self._cursor = start + len(turn)
        for agent_id in turn:
            a = acd.agents[agent_id]
            has_binding = any(b.expires_at > now for b in self.bindings.get(a.softphone, ()))
            if a.registered != has_binding and a.id not in self.away:
                self.log.warning("reconcile_registration", agent_id=a.id, was=a.registered, now=has_binding)
                self.run(acd.registration, a.id, has_binding)
                fixed += 1
        for agent_id in engaged | {a for a, cids in live.items() if cids}:
            a = acd.agents.get(agent_id)
            if a is None:
                continue
            if a.state in ("ringing", "talking") and a.call_id and a.call_id not in live.get(a.id, ()):
                self.log.warning("reconcile_stuck_call", agent_id=a.id, state=a.state, call_id=a.call_id)
                cid = a.call_id
                if a.state == "ringing":
                    self.run(acd.offer_failed, cid, a.id, "declined")
                else:
                    self.run(acd.call_ended, cid)
                fixed += 1
        self.corrections += fixed
        return fixed


__all__ = ["ContactCenter", "AgentStateError", "acd_from_config"]
