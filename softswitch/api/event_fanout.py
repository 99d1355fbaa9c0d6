"""The /api/events WebSockets' share of the ACD's events: routed by agent, and queue KPIs built once for all.

An agent's page gets the events of its own agent; supervisors get every event. The ACD publishes each event to
its subscribers one by one, so with one subscriber per open page an event would cost as many queue puts as
pages are open (at a 20,000-agent site, 20,000 per event). One router stands for all of them: each event goes to
the supervisors' queues and to the queues of the one agent it is about. The periodic queue KPIs are encoded
once per period and the same text is sent to every page.
"""

from __future__ import annotations

import asyncio
import json

from .wallboard_cache import SharedAnswers

MAX_BACKLOG = 1000          # a page that does not read its events loses the newest past this, as before


class EventRouter:
    """Looks like one of the ContactCenter's subscriber queues (qsize, put_nowait)."""

    def __init__(self) -> None:
        self.everything: set[asyncio.Queue] = set()
        self.by_agent: dict[str, set[asyncio.Queue]] = {}
        self.kpis = SharedAnswers(every=1.0, keep=4)

    def add(self, q: asyncio.Queue, agent_id: str | None, everything: bool) -> None:
        if everything:
            self.everything.add(q)
        elif agent_id:
            self.by_agent.setdefault(agent_id, set()).add(q)

    def discard(self, q: asyncio.Queue, agent_id: str | None) -> None:
        self.everything.discard(q)
        mine = self.by_agent.get(agent_id or "")
        if mine is not None:
            mine.discard(q)
            if not mine:
                del self.by_agent[agent_id]

    def qsize(self) -> int:
        return 0

    def put_nowait(self, event: dict) -> None:
        mine = self.by_agent.get(event.get("agent_id") or "", ())
        for targets in (self.everything, mine):
            for q in targets:
                if q.qsize() < MAX_BACKLOG:
                    q.put_nowait(event)

    def queues_message(self, acd, now: float) -> str:
        """The {"type": "queues"} message of the moment, built at most once a second for every page."""
        return self.kpis.get("queues", now, lambda: json.dumps(
            {"type": "queues", "at": now, "queues": [acd.queue_view(name) for name in acd.queues]}, default=str))
