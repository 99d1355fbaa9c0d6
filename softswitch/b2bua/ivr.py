"""IVR flows from the config: play announcements, collect a DTMF choice, then a queue, another flow or hang-up.

Runs one small task per call. Announcements are timed by the length of their WAV file (the media engine
plays them on the call); digits come from SIP INFO (dtmf-relay) or RFC 4733 events delivered to `digit`.
"""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

from ..log import get as get_logger


def wav_seconds(path: Path) -> float:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate() or 8000)
    except (OSError, wave.Error, EOFError):
        return 0.0


class IvrSession:
    def __init__(self, runner: "IvrRunner", call, flow: str) -> None:
        self.runner = runner
        self.call = call
        self.flow = flow
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.task = runner.loop.create_task(self._run())

    def digit(self, d: str) -> None:
        self.digits.put_nowait(d)

    def cancel(self) -> None:
        if not self.task.done():
            self.task.cancel()

    async def _run(self) -> None:
        cc, log = self.runner.cc, self.runner.log
        flow, hops = self.flow, 0
        try:
            while hops < 10:
                hops += 1
                steps = self.runner.flows.get(flow, ())
                log.info("ivr_flow", call_id=self.call.id, flow=flow)
                nxt = None
                for step in steps:
                    if step.kind == "play":
                        for f in step.files:
                            await self.runner.play(self.call, f)
                    elif step.kind == "menu":
                        nxt = await self._menu(step)
                        if nxt is not None:
                            break
                    elif step.kind == "queue":
                        nxt = f"queue/{step.target}"
                        break
                    elif step.kind == "goto":
                        nxt = f"ivr/{step.target}"
                        break
                    elif step.kind == "hangup":
                        nxt = "hangup"
                        break
                if nxt is None or nxt == "hangup":
                    cc.end_call(self.call, f"IVR {flow} finished")
                    return
                kind, _, name = nxt.partition("/")
                if kind == "queue":
                    self.call.ivr = None
                    cc.enqueue(self.call, name)
                    return
                flow = name
            cc.end_call(self.call, "IVR loop")
        except asyncio.CancelledError:
            pass

    async def _menu(self, step) -> str | None:
        choices = dict(step.choices)
        for _ in range(step.retries + 1):
            try:
                d = await asyncio.wait_for(self.digits.get(), step.timeout)
            except asyncio.TimeoutError:
                continue
            if d in choices:
                self.runner.log.info("ivr_choice", call_id=self.call.id, digit=d, target=choices[d])
                return choices[d]
        return None        # no valid choice: the flow goes on with its next step


class IvrRunner:
    def __init__(self, cc, flows: dict, base_dir: Path, loop) -> None:
        self.cc = cc
        self.flows = flows
        self.base_dir = base_dir
        self.loop = loop
        self.log = get_logger("ivr")
        self.player = None           # the media engine's announcement player, when there is one

    def start(self, call, flow: str) -> None:
        call.ivr = IvrSession(self, call, flow)

    async def play(self, call, name: str) -> None:
        path = Path(name) if Path(name).is_absolute() else self.base_dir / name
        if self.player is not None:
            await self.player(call, path)
            return
        seconds = wav_seconds(path)
        if seconds == 0.0:
            self.log.warning("prompt_missing", call_id=call.id, file=str(path))
        await asyncio.sleep(seconds)
