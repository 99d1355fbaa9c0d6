"""The pool's queue figures are summed from the ACD's events: the average handle time is talk time per
completed call, not the wait before the answer."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from acd.engine import Event
from softswitch.b2bua.contact_center import ContactCenter
from softswitch.pool.queue_board import MemoryQueueBoard


def test_pool_view_averages_talk_and_wait_from_the_right_figures():
    center = SimpleNamespace(board=MemoryQueueBoard("n1"), log=None)
    events = [Event(100.0, "enqueue", "sales", "c1"),
              Event(104.0, "answer", "sales", "c1", "a1", wait=4.0),
              Event(164.0, "complete", "sales", "c1", "a1", wait=4.0, talk=60.0),
              Event(110.0, "enqueue", "sales", "c2"),
              Event(112.0, "answer", "sales", "c2", "a2", wait=2.0),
              Event(132.0, "complete", "sales", "c2", "a2", wait=2.0, talk=20.0)]

    async def run() -> dict:
        for ev in events:
            await ContactCenter._board(center, ev)
        return await ContactCenter.pool_view(center, "sales")

    view = asyncio.run(run())
    assert view["answered"] == 2 and view["average_speed_of_answer"] == 3.0
    assert view["average_handle_time"] == 40.0
