"""Pool mode: several nodes, one agent. Agent reservations and agent state changes shared through Redis.

Every node runs its own ACD for the calls it holds. Before a node offers a call to an agent it takes the
agent's reservation in Redis (a Lua script: only when nobody else holds it; a fencing token from a counter),
so two nodes can never offer the same agent two calls. A node's own earlier reservation of the agent is
released and replaced in the same step (its ACD offers the agent only when its last call there is over, and
the release of that call may not have run yet). Every node keeps a short-lived liveness key (LIVE_TTL,
refreshed every LIVE_EVERY): a reservation whose holder's key is gone belongs to a dead node and is taken over
with a new token (the dead holder's token is fenced), and the nodes that saw the agent engaged at the dead
node free it at once - well within two seconds of the kill. Reservations also expire (ttl) as a backstop.

Agent state changes (sign-in, busy, rest, ringing, talking, wrap-up, idle) are published on a channel; the
other nodes mirror them in their own ACD ("engaged elsewhere" while the agent has a call at another node).
When Redis is unreachable the node keeps serving from what it knows, says so in the log and metrics
(`pool_redis_up` 0), and reservations are taken locally until Redis is back.
"""

from __future__ import annotations

import asyncio
import json
import time

from .. import log, redis_client

# KEYS: the reservation, the token counter. ARGV: node, call, ttl ms, liveness key prefix, liveness ttl ms.
# Returns {token, the dead holder it fenced or ''} or {0, the live holder}.
_RESERVE = """
redis.call('SET', ARGV[4] .. ARGV[1], '1', 'PX', ARGV[5])
local v = redis.call('GET', KEYS[1])
local fenced = ''
if v then
  local holder = string.match(v, '^([^|]*)|') or ''
  if holder ~= ARGV[1] then
    if redis.call('EXISTS', ARGV[4] .. holder) == 1 then return {0, holder} end
    fenced = holder
  end
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2] .. '|' .. token, 'PX', ARGV[3])
return {token, fenced}
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


LIVE_TTL = 1.2      # a node silent this long is dead: its reservations are taken over
LIVE_EVERY = 0.25   # how often a node says it lives and looks whether the holders it waits for do
BATCH = 1000       # keys per pipelined round trip to Redis


class Pool:
    def __init__(self, url: str, node_id: str, loop: asyncio.AbstractEventLoop, prefix: str = "ss:",
                 ttl: float = 8.0) -> None:
        self.url, self.node_id, self.loop, self.prefix, self.ttl = url, node_id, loop, prefix, ttl
        self.redis = redis_client.connect(url, decode_responses=True, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.log = log.get("pool")
        self.up = True
        self.tokens: dict[str, int] = {}          # agent id -> our fencing token (reservations we hold)
        self.engaged_at: dict[str, str] = {}      # agent id -> the node it is engaged at (waited for here)
        self.center = None                        # ContactCenter
        self.board = None                         # RedisQueueBoard: this node's heartbeat and sweeps
        self._tasks: list[asyncio.Task] = []
        self._applying = False
        self.stats = {"reserved": 0, "lost": 0, "released": 0, "published": 0, "applied": 0, "redis_errors": 0,
                      "taken_over": 0, "freed_dead": 0}

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # --- reservations ----------------------------------------------------------------------------------
    async def reserve(self, agent_id: str, call_id: str) -> bool:
        try:
            token, other = await self.redis.eval(_RESERVE, 2, self._k("resv", agent_id), self._k("token"),
                                                 self.node_id, call_id, int(self.ttl * 1000), self._k("live", ""),
                                                 int(LIVE_TTL * 1000))
        except (redis_client.Error, OSError) as exc:
            self._down(exc)
            return True                           # keep serving: local decision while Redis is away
        self._up()
        if not token:
            self.stats["lost"] += 1
            self.engaged_at[agent_id] = other     # watched: freed here as soon as that node is dead
            return False
        if other:
            self.stats["taken_over"] += 1
            self.log.warning("pool_reservation_taken_over", agent_id=agent_id, dead_node=other, token=token)
        self.tokens[agent_id] = int(token)
        self.engaged_at.pop(agent_id, None)
        self.stats["reserved"] += 1
        return True

    async def release(self, agent_id: str, token: int | None = None) -> None:
        """Free our reservation of the agent: the one we hold now, or only `token` if given (a release
        decided earlier must not free a reservation made since)."""
        if token is None:
            token = self.tokens.get(agent_id)
        if token is None:
            return
        if self.tokens.get(agent_id) == token:
            del self.tokens[agent_id]
        try:
            await self.redis.eval(_RELEASE, 1, self._k("resv", agent_id), str(token))
            self.stats["released"] += 1
        except (redis_client.Error, OSError) as exc:
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
            # the call here is over: free the agent (that reservation only; a new offer may come first)
            self.loop.create_task(self.release(ev.agent_id, self.tokens[ev.agent_id]))

    async def _publish(self, msg: str) -> None:
        try:
            data = json.loads(msg)
            # the last known state of each agent, for nodes that start later
            await self.redis.hset(self._k("agent", data["agent"]), mapping={
                "state": data["new"], "reason": data["reason"] or "", "node": data["node"], "at": data["at"]})
            await self.redis.publish(self._k("events"), msg)
            self.stats["published"] += 1
            self._up()
        except (redis_client.Error, OSError) as exc:
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
                self.engaged_at[a.id] = msg.get("node", "")
            else:
                self.engaged_at.pop(a.id, None)
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
        self._tasks = [self.loop.create_task(self._listen()), self.loop.create_task(self._keepalive()),
                       self.loop.create_task(self._liveness())]

    async def _first_beat(self) -> None:
        try:
            await self.board.heartbeat()
            await self.load_states()
        except (redis_client.Error, OSError) as exc:
            self._down(exc)

    def agent_registered(self, agent_id: str) -> None:
        """Our registrar just saw this agent's phone: take the agent's pool-wide state."""
        self.loop.create_task(self._sync_agent(agent_id))

    async def _sync_agent(self, agent_id: str) -> None:
        try:
            h = await self.redis.hgetall(self._k("agent", agent_id))
        except (redis_client.Error, OSError) as exc:
            self._down(exc)
            return
        if h and h.get("state") not in ("ringing", "talking", "wrap_up"):
            self._apply_stored(agent_id, h)

    async def load_states(self) -> int:
        """A node joining the pool takes the agents' current states from Redis."""
        n = 0
        if self.center is None:
            return n
        stored = await self._pipelined(list(self.center.acd.agents),
                                       lambda pipe, agent_id: pipe.hgetall(self._k("agent", agent_id)))
        for agent_id, h in stored:
            if h:
                self._apply_stored(agent_id, h)
                n += 1
        return n

    async def _pipelined(self, items: list, queue) -> list[tuple]:
        """`queue(pipe, item)` for each item, BATCH commands per round trip to Redis (a 20,000-agent tenant:
        20 round trips, not 20,000); (item, its reply) pairs in order."""
        out: list[tuple] = []
        for i in range(0, len(items), BATCH):
            chunk = items[i:i + BATCH]
            pipe = self.redis.pipeline(transaction=False)
            for item in chunk:
                queue(pipe, item)
            out.extend(zip(chunk, await pipe.execute()))
        return out

    def _apply_stored(self, agent_id: str, h: dict) -> None:
        """Apply an agent's last state as _publish stored it, like an event from its node."""
        self.apply({"node": h.get("node", ""), "agent": agent_id, "new": h.get("state"), "reason": h.get("reason", "")})

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        try:
            await self.redis.delete(self._k("live", self.node_id))   # stopped: our agents are free at once
        except (redis_client.Error, OSError):
            pass
        for agent_id in list(self.tokens):
            await self.release(agent_id)
        try:
            await self.redis.aclose()
        except (redis_client.Error, OSError):
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
            except (redis_client.Error, OSError) as exc:
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
                await self._refresh_held()
                if self.center is not None:
                    await self._free_unheld()
                self._up()
            except asyncio.CancelledError:
                raise
            except (redis_client.Error, OSError) as exc:
                self._down(exc)

    async def _refresh_held(self) -> None:
        """Extend every reservation we hold: one round trip per batch, not one per agent."""
        ttl_ms = int(self.ttl * 1000)
        await self._pipelined(list(self.tokens.items()), lambda pipe, held: pipe.eval(
            _REFRESH, 1, self._k("resv", held[0]), str(held[1]), ttl_ms))

    async def _free_unheld(self) -> None:
        """The agents engaged elsewhere (the roster's index, never every agent) whose reservation is gone are
        free here again."""
        held = await self._pipelined(list(self.center.acd.roster.elsewhere),
                                     lambda pipe, agent_id: pipe.get(self._k("resv", agent_id)))
        for agent_id, v in held:
            a = self.center.acd.agents.get(agent_id)
            if not v and a is not None and a.elsewhere:
                self.log.warning("pool_reservation_expired", agent_id=agent_id)
                self.center.run(self.center.acd.set_elsewhere, agent_id, False)

    async def _liveness(self) -> None:
        """Say we live; free here the agents engaged at a node that no longer does."""
        while True:
            try:
                await self.redis.set(self._k("live", self.node_id), "1", px=int(LIVE_TTL * 1000))
                await self.free_dead_holders()
                self._up()
            except asyncio.CancelledError:
                raise
            except (redis_client.Error, OSError) as exc:
                self._down(exc)
            await asyncio.sleep(LIVE_EVERY)

    async def free_dead_holders(self) -> list[str]:
        """The agents engaged at nodes whose liveness key is gone are free again here (their next offer
        takes the dead node's reservation over). Returns the agents freed."""
        nodes = {n for n in self.engaged_at.values() if n and n != self.node_id}
        if not nodes or self.center is None:
            return []
        dead = {n for n in sorted(nodes) if not await self.redis.exists(self._k("live", n))}
        freed = [(a, n) for a, n in self.engaged_at.items() if n in dead]
        for agent_id, node in freed:
            del self.engaged_at[agent_id]
            a = self.center.acd.agents.get(agent_id)
            if a is not None and a.elsewhere:
                self.log.warning("pool_holder_dead", agent_id=agent_id, node=node)
                self.center.run(self.center.acd.set_elsewhere, agent_id, False)
        self.stats["freed_dead"] += len(freed)
        return [a for a, _ in freed]

    def _down(self, exc) -> None:
        self.stats["redis_errors"] += 1
        if self.up:
            self.up = False
            self.log.error("pool_redis_unreachable", url=self.url, error=str(exc))

    def _up(self) -> None:
        if not self.up:
            self.up = True
            self.log.warning("pool_redis_back", url=self.url)
