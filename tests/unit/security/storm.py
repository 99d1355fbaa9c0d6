"""A registration storm on a fake clock: phones doing REGISTER / 401 / REGISTER / 200 over UDP with RFC 3261
retransmissions, a node that serves its receive queue in order at a fixed cost per message, and the overload
policy sorting every datagram as the UDP listener does. Pure and deterministic; it measures what a storm
does to goodput without a real machine's noise."""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

from softswitch.security.overload import ADMIT, REJECT, OverloadPolicy

T1, T2, TIMEOUT = 0.5, 4.0, 32.0


@dataclass
class Costs:
    """Seconds of node time per message (defaults: a capacity of 500 registrations/s)."""
    challenge: float = 0.0006       # parse, 401
    register: float = 0.0014        # parse, digest check, binding
    absorbed: float = 0.0001        # parse of a retransmission the transaction layer answers again
    peek: float = 0.000015          # a late datagram sorted without the parser
    reject: float = 0.00004         # ... and answered 503

    @property
    def capacity(self) -> float:
        return 1.0 / (self.challenge + self.register)


def register(n: int, stage: int, branch: int | None = None) -> bytes:
    """Stage 1 or 2 (with credentials) of registration `n`; `branch`: the branch's stage (SIPp reuses the
    first's for the second)."""
    auth = 'Authorization: Digest username="u", nonce="x"\r\n' if stage == 2 else ""
    return (f"REGISTER sip:bench.test SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-{n}-{branch or stage}\r\n"
            f"From: <sip:u{n}@bench.test>;tag=f{n}\r\nTo: <sip:u{n}@bench.test>\r\nCall-ID: c{n}\r\n"
            f"CSeq: {stage} REGISTER\r\n{auth}Contact: <sip:u{n}@127.0.0.1:6000>\r\nUser-Agent: phone\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


@dataclass
class Result:
    ok_at: list[float] = field(default_factory=list)            # when each registration succeeded
    failed_at: list[tuple[float, float, str]] = field(default_factory=list)    # (started, when, why)
    started: dict[int, float] = field(default_factory=dict)
    retransmissions: int = 0

    def per_second(self, seconds: int) -> list[int]:
        out = [0] * seconds
        for t in self.ok_at:
            if int(t) < seconds:
                out[int(t)] += 1
        return out


def run(policy: OverloadPolicy, phases: list[tuple[float, float]], costs: Costs | None = None,
        lag=lambda t: 0.0, stall=lambda t: 0.0, one_branch: bool = False, lose=lambda t, k: False) -> Result:
    """`phases`: (seconds, registrations started per second), one after the other from t=0. Each registration is
    a new phone's (a new Call-ID and branches). `lag(t)`: how late the phones read an answer sent at t (a load
    generator short of CPU); `stall(t)`: seconds the node is off the CPU before it serves at t (a machine
    shared with other work); `one_branch`: both REGISTERs of a registration carry the same branch;
    `lose(t, k)`: whether the k-th answer, sent at t, is lost on its way."""
    c = costs or Costs()
    res = Result()
    events: list = []           # (time, seq, kind, payload)
    seq = 0

    def at(t: float, kind: str, payload) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, payload))

    t, n = 0.0, 0
    for seconds, rate in phases:
        end = t + seconds
        step = 1.0 / rate
        while t < end - 1e-9:
            at(t, "start", n)
            n += 1
            t += step
        t = end
    queue: deque = deque()          # (arrival, n, stage, bytes): the kernel's receive queue
    stage_of: dict[int, int] = {}   # registration -> stage the phone waits in (0: done)
    registered: set[int] = set()    # registrations whose second REGISTER the node completed (its answer)
    busy_until = 0.0
    serving = False

    answers = 0

    def answer(t: float, payload) -> None:
        nonlocal answers
        answers += 1
        if not lose(t, answers):
            at(t, "answer", payload)

    def send(now: float, n: int, stage: int) -> None:
        nonlocal serving
        queue.append((now, n, stage, register(n, stage, 1 if one_branch else None)))
        if not serving:
            serving = True
            at(max(now, busy_until), "serve", None)

    while events:
        now, _, kind, payload = heapq.heappop(events)
        if kind == "start":
            res.started[payload] = now
            stage_of[payload] = 1
            send(now, payload, 1)
            at(now + T1, "timer", (payload, 1, T1, now))
        elif kind == "timer":
            n, stage, interval, began = payload
            if stage_of.get(n) != stage:
                continue
            if now - began >= TIMEOUT:
                stage_of[n] = 0
                res.failed_at.append((res.started[n], now, "timeout"))
                continue
            res.retransmissions += 1
            send(now, n, stage)
            nxt = min(2 * interval, T2)
            at(now + nxt, "timer", (n, stage, nxt, began))
        elif kind == "answer":
            n, stage, status = payload
            if stage_of.get(n) != stage:
                continue                    # a late answer to a stage the phone has left
            if status == 503:
                stage_of[n] = 0
                res.failed_at.append((res.started[n], now, "503"))
            elif stage == 1:
                stage_of[n] = 2
                send(now, n, 2)
                at(now + T1, "timer", (n, 2, T1, now))
            else:
                stage_of[n] = 0
                res.ok_at.append(now)
        elif kind == "serve":
            if not queue:
                serving = False
                continue
            pause = stall(now)
            if pause > 0:
                at(now + pause, "serve", None)
                continue
            arrival, n, stage, data = queue.popleft()
            age = now - arrival
            cost = 0.0
            verdict = ADMIT
            if age > policy.queue_delay or policy.watching:
                verdict, reply = policy.take(data, age, now)
                if age > policy.queue_delay:
                    cost = c.reject if verdict == REJECT else c.peek
                if verdict == REJECT:
                    answer(now + cost + lag(now), (n, stage, 503))
            if verdict == ADMIT:
                if stage == 1:
                    cost += c.challenge
                elif n in registered:
                    cost += c.absorbed
                else:
                    cost += c.register
                    registered.add(n)
                answer(now + cost + lag(now), (n, stage, 401 if stage == 1 else 200))
            busy_until = now + cost
            at(busy_until, "serve", None)
    return res
