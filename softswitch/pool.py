"""Pool mode: several nodes, one agent. Agent reservations and agent state changes shared through Redis.

Every node runs its own ACD for the calls it holds. Before a node offers a call to an agent it takes the
agent's reservation in Redis (a Lua script: only when nobody holds it; a fencing token from a counter), so
two nodes can never offer the same agent two calls. A reservation lives as long as its holder keeps
refreshing it: if a node dies, its reservations expire and the survivors take the agent again.

Agent state changes (sign-in, busy, rest, ringing, talking, wrap-up, idle) are published on a channel; the
other nodes mirror them in their own ACD ("engaged elsewhere" while the agent has a call at another node).
When Redis is unreachable the node keeps serving from what it knows, says so in the log and metrics
(`pool_redis_up` 0), and reservations are taken locally until Redis is back.
"""

from __future__ import annotations

import asyncio
import json
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from . import log

_RESERVE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2] .. '|' .. token, 'PX', ARGV[3])
return token
"""
_RELEASE = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, -string.len(ARGV[1]) - 1) == '|' .. ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_REFRESH = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, -string.len(ARGV[1]) - 1) == '|' .. ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class Pool:
    def __init__(self, url: str, node_id: str, loop: asyncio.AbstractEventLoop, prefix: str = "ss:",
                 ttl: float = 8.0) -> None:
        self.url, self.node_id, self.loop, self.prefix, self.ttl = url, node_id, loop, prefix, ttl
        self.redis = Redis.from_url(url, decode_responses=True, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.log = log.get("pool")
        self.up = True
        self.tokens: dict[str, int] = {}          # agent id -> our fencing token (reservations we hold)
        self.center = None                        # ContactCenter
        self.board = None                         # RedisQueueBoard: this node's heartbeat and sweeps
        self._tasks: list[asyncio.Task] = []
        self._applying = False
        self.stats = {"reserved": 0, "lost": 0, "released": 0, "published": 0, "applied": 0, "redis_errors": 0}

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # --- reservations ----------------------------------------------------------------------------------
    async def reserve(self, agent_id: str, call_id: str) -> bool:
        try:
            token = await self.redis.eval(_RESERVE, 2, self._k("resv", agent_id), self._k("token"),
                                          self.node_id, call_id, int(self.ttl * 1000))
        except (RedisError, OSError) as exc:
            self._down(exc)
            return True                           # keep serving: local decision while Redis is away
        self._up()
        if not token:
            self.stats["lost"] += 1
            return False
        self.tokens[agent_id] = int(token)
        self.stats["reserved"] += 1
        return True

    async def release(self, agent_id: str) -> None:
        token = self.tokens.pop(agent_id, None)
        if token is None:
            return
        try:
            await self.redis.eval(_RELEASE, 1, self._k("resv", agent_id), str(token))
            self.stats["released"] += 1
        except (RedisError, OSError) as exc:
            self._down(exc)

    async def holder(self, agent_id: str) -> str | None:
        v = await self.redis.get(self._k("resv", agent_id))
        return v.split("|")[0] if v else None

    # --- state sharing ----------------------------------------------------------------------------------
    def on_acd_event(self, ev) -> None:
        """Publish our agents' state changes (not the ones we are applying from another node)."""
        if ev.kind != "state" or self._applying:
            return
        msg = json.dumps({"node": self.node_id, "agent": ev.agent_id, "old": ev.old, "new": ev.new,
                          "reason": ev.reason, "at": ev.at})
        self.loop.create_task(self._publish(msg))
        if ev.new in ("idle", "busy", "rest", "offline") and ev.agent_id in self.tokens:
            self.loop.create_task(self.release(ev.agent_id))     # the call here is over: free the agent

    async def _publish(self, msg: str) -> None:
        try:
            data = json.loads(msg)
            # the last known state of each agent, for nodes that start later
            await self.redis.hset(self._k("agent", data["agent"]), mapping={
                "state": data["new"], "reason": data["reason"] or "", "node": data["node"], "at": data["at"]})
            await self.redis.publish(self._k("events"), msg)
            self.stats["published"] += 1
            self._up()
        except (RedisError, OSError) as exc:
            self._down(exc)

    def apply(self, msg: dict) -> None:
        """Mirror another node's change of one agent in our ACD."""
        if msg.get("node") == self.node_id or self.center is None:
            return
        acd = self.center.acd
        a = acd.agents.get(msg.get("agent", ""))
        if a is None:
            return
        new, reason = msg.get("new"), msg.get("reason", "")
        self._applying = True
        try:
            if new in ("ringing", "talking", "wrap_up"):
                self.center.run(acd.set_elsewhere, a.id, True)
            elif new in ("idle", "busy", "rest"):
                if a.state == "offline" and a.registered:
                    self.center.run(acd.sign_in, a.id)          # signed in at another node
                if new == "idle" and a.state in ("busy", "rest"):
                    self.center.run(acd.set_state, a.id, "idle", reason)
                elif new in ("busy", "rest") and a.state in ("idle", "busy", "rest", "wrap_up"):
                    self.center.run(acd.set_state, a.id, new, reason)
                self.center.run(acd.set_elsewhere, a.id, False)
            elif new == "offline" and a.state in ("idle", "busy", "rest", "wrap_up"):
                self.center.run(acd.sign_out, a.id)
                self.center.run(acd.set_elsewhere, a.id, False)
            self.stats["applied"] += 1
        except Exception as exc:          # a mirrored change the local table refuses: log, never crash
            self.log.warning("pool_apply_refused", agent_id=a.id, new=new, error=str(exc))
        finally:
            self._applying = False

    # --- background -------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.board is not None:
            self.loop.create_task(self._first_beat())
        self._tasks = [self.loop.create_task(self._listen()), self.loop.create_task(self._keepalive())]

    async def _first_beat(self) -> None:
        try:
            await self.board.heartbeat()
            await self.load_states()
        except (RedisError, OSError) as exc:
            self._down(exc)

    def agent_registered(self, agent_id: str) -> None:
        """Our registrar just saw this agent's phone: take the agent's pool-wide state."""
        self.loop.create_task(self._sync_agent(agent_id))

    async def _sync_agent(self, agent_id: str) -> None:
        try:
            h = await self.redis.hgetall(self._k("agent", agent_id))
        except (RedisError, OSError) as exc:
            self._down(exc)
            return
        if h and h.get("state") not in ("ringing", "talking", "wrap_up"):
            self._apply_stored(agent_id, h)

    async def load_states(self) -> int:
        """A node joining the pool takes the agents' current states from Redis."""
        n = 0
        if self.center is None:
            return n
        for agent_id in list(self.center.acd.agents):
            h = await self.redis.hgetall(self._k("agent", agent_id))
            if h:
                self._apply_stored(agent_id, h)
                n += 1
        return n

    def _apply_stored(self, agent_id: str, h: dict) -> None:
        """Apply an agent's last state as _publish stored it, like an event from its node."""
        self.apply({"node": h.get("node", ""), "agent": agent_id, "new": h.get("state"), "reason": h.get("reason", "")})

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for agent_id in list(self.tokens):
            await self.release(agent_id)
        try:
            await self.redis.aclose()
        except (RedisError, OSError):
            pass

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(self._k("events"))
                self._up()
                async for m in pubsub.listen():
                    if m.get("type") == "message":
                        try:
                            self.apply(json.loads(m["data"]))
                        except (ValueError, TypeError):
                            pass
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._down(exc)
                await asyncio.sleep(1.0)

    async def _keepalive(self, every: float = 2.0) -> None:
        """Refresh what we hold; free agents whose holder vanished (its reservation expired)."""
        while True:
            await asyncio.sleep(every)
            try:
                if self.board is not None and self.center is not None:
                    await self.board.heartbeat()
                    gone = await self.board.sweep(list(self.center.acd.queues))
                    if gone:
                        self.log.warning("pool_dead_node_entries_swept", entries=gone)
                for agent_id, token in list(self.tokens.items()):
                    await self.redis.eval(_REFRESH, 1, self._k("resv", agent_id), str(token),
                                          int(self.ttl * 1000))
                if self.center is not None:
                    for a in list(self.center.acd.agents.values()):
                        if a.elsewhere and await self.holder(a.id) is None:
                            self.log.warning("pool_reservation_expired", agent_id=a.id)
                            self.center.run(self.center.acd.set_elsewhere, a.id, False)
                self._up()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._down(exc)

    def _down(self, exc) -> None:
        self.stats["redis_errors"] += 1
        if self.up:
            self.up = False
            self.log.error("pool_redis_unreachable", url=self.url, error=str(exc))

    def _up(self) -> None:
        if not self.up:
            self.up = True
            self.log.warning("pool_redis_back", url=self.url)
