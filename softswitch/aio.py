"""Run a coroutine to completion without a Task when it never suspends (the in-memory stores never do).

Creating a Task per SIP request costs more than the registrar's own work; `drive` steps the coroutine once
and only hands it to a Task when it really waits on a future (a networked store in pool mode).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine

Done = Callable[[Any, BaseException | None], None]


def drive(coro: Coroutine, done: Done) -> None:
    try:
        fut = coro.send(None)
    except StopIteration as stop:
        done(stop.value, None)
        return
    except Exception as exc:
        done(None, exc)
        return
    asyncio.get_event_loop().create_task(_rest(coro, fut, done))


async def _rest(coro: Coroutine, fut: Any, done: Done) -> None:
    while True:
        # An asyncio coroutine yields the future it waits on and is resumed with send(None) once that future
        # is done; Future.__await__ then returns its result or raises its exception inside the coroutine.
        if fut is None:
            await asyncio.sleep(0)
        else:
            try:
                await asyncio.wait([fut])
            except Exception:  # pragma: no cover - wait() itself does not raise for a failed future
                pass
        try:
            fut = coro.send(None)
        except StopIteration as stop:
            done(stop.value, None)
            return
        except Exception as exc:
            done(None, exc)
            return


def finish_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still pending on a stopped node's loop and let them unwind, as asyncio.run does before
    it closes its loop: a task left pending is destroyed with a warning, and its finally blocks never run."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
