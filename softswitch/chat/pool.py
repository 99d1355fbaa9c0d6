"""Pool mode for web chats: a visitor on one node served by an agent whose chat panel is on another.

An agent's chats are decided by one router only, the one of the node their panel is connected to, so the
concurrency caps hold pool-wide without locks. A chat that no agent of the visitor's node can take at once waits
pool-wide instead: a member of the sorted set ss:chat:waiting:QUEUE (scored by when it opened), and a wake-up on
ss:chat:wake. A node whose agents have room in that queue, and no chat of its own waiting there, takes the oldest
with ZPOPMIN (atomic: exactly one node gets each); its own chat it routes again, another node's it adopts.

Then the two nodes talk over pub/sub, each on its channel ss:chat:node:ID, messages in order through one
sender: the serving node says `claimed`; the visitor's node answers with the `handover` (who, from where, what
was said while waiting) and from then relays the visitor's checked frames (`visitor`, `gone`) one way and the
frames for the visitor (`frame`, `close`) the other. The serving node keeps the transcript and writes the record.

Limits: a node that dies takes its side of the chats with it (the other side ends them only when its visitor or
agent does); a chat transferred or handed back stays with the node that serves it.
"""

from __future__ import annotations

import asyncio
import json

from .. import log, redis_client

PULL_EVERY = 0.5             # seconds between looks at the pool-wide queues (a wake-up looks at once)


class RelayConn:
    """The visitor of an adopted chat, as ChatHub sees it: frames go to the visitor's node."""

    def __init__(self, pool: ChatPool, node: str, chat: str) -> None:
        self.pool, self.node, self.chat, self.closed = pool, node, chat, False

    def send(self, frame: dict) -> None:
        if not self.closed:
            self.pool.relay(self.node, {"chat": self.chat, "frame": frame})

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed:
            self.closed = True
            self.pool.relay(self.node, {"chat": self.chat, "close": [code, reason]})


class ChatPool:
    def __init__(self, url: str, node_id: str, hub, prefix: str = "ss:chat:") -> None:
        self.node_id, self.hub, self.prefix = node_id, hub, prefix
        self.redis = redis_client.connect(url, decode_responses=True, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.log = log.get("chat_pool")
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        self.stats = {"offered": 0, "adopted": 0, "reclaimed": 0, "relayed": 0, "redis_errors": 0}
        hub.pool = self

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._send()), loop.create_task(self._listen()),
                      loop.create_task(self._pull())]

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.redis.aclose()

    # --- the visitor's node -------------------------------------------------------------------------------------
    def offer(self, s) -> None:
        self.hub.router.withdraw(s.id)
        s.pooled = json.dumps({"chat": s.id, "node": self.node_id, "queue": s.queue})
        self.stats["offered"] += 1
        self.outbox.put_nowait(("zadd", self._k("waiting", s.queue), s.pooled, s.opened))
        self.outbox.put_nowait(("publish", self._k("wake"), s.queue, None))

    def unoffer(self, s) -> None:
        self.outbox.put_nowait(("zrem", self._k("waiting", s.queue), s.pooled, None))

    def relay(self, node: str, msg: dict) -> None:
        self.stats["relayed"] += 1
        self.outbox.put_nowait(("publish", self._k("node", node), json.dumps(msg), None))

    async def _send(self) -> None:
        """One sender, so what a node says to another arrives in the order it was said."""
        while True:
            op, key, value, score = await self.outbox.get()
            try:
                if op == "publish":
                    await self.redis.publish(key, value)
                elif op == "zadd":
                    await self.redis.zadd(key, {value: score})
                else:
                    await self.redis.zrem(key, value)
            except redis_client.Error as exc:
                self.stats["redis_errors"] += 1
                self.log.warning("chat_pool_redis", op=op, error=str(exc))

    # --- incoming -------------------------------------------------------------------------------------------------
    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(self._k("node", self.node_id), self._k("wake"))
                async for m in pubsub.listen():
                    if m.get("type") != "message":
                        continue
                    if m["channel"] == self._k("wake"):
                        self.wake.set()
                        continue
                    try:
                        self.on_message(json.loads(m["data"]))
                    except Exception:
                        self.log.exception("chat_pool_message_failed")
            except asyncio.CancelledError:
                raise
            except (redis_client.Error, OSError) as exc:
                self.stats["redis_errors"] += 1
                self.log.warning("chat_pool_listen", error=str(exc))
                await asyncio.sleep(1.0)

    def on_message(self, msg: dict) -> None:
        hub, chat = self.hub, str(msg.get("chat", ""))
        if "claimed" in msg:
            node = str(msg["claimed"])
            s = hub.sessions.get(chat)
            if s is None or s.pooled is None:       # the visitor left meanwhile
                self.relay(node, {"chat": chat, "gone": "visitor left"})
            else:
                self.relay(node, {"chat": chat, "handover": hub.handed(s, node)})
        elif "handover" in msg:
            hub.handover(chat, msg["handover"])
        elif "visitor" in msg:
            hub.remote_visitor(chat, msg["visitor"])
        elif "gone" in msg:
            hub.remote_gone(chat, str(msg["gone"]))
        elif "frame" in msg:
            hub.from_remote(chat, msg["frame"])
        elif "close" in msg:
            hub.remote_close(chat)

    # --- taking chats that wait pool-wide ------------------------------------------------------------------------------
    async def _pull(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), PULL_EVERY)
            except asyncio.TimeoutError:
                pass
            self.wake.clear()
            router = self.hub.router
            for q in list(router.queues):
                room = router.free(q)
                if room <= 0 or router.queues[q].waiting:
                    continue
                try:
                    got = await self.redis.zpopmin(self._k("waiting", q), room)
                except redis_client.Error as exc:
                    self.stats["redis_errors"] += 1
                    self.log.warning("chat_pool_pull", error=str(exc))
                    continue
                for member, _ in got:
                    try:
                        self.take(json.loads(member))
                    except Exception:
                        self.log.exception("chat_pool_take_failed")

    def take(self, item: dict) -> None:
        chat, node, queue = str(item["chat"]), str(item["node"]), str(item["queue"])
        if node == self.node_id:
            s = self.hub.sessions.get(chat)
            if s is not None and s.pooled is not None:
                self.stats["reclaimed"] += 1
                self.hub.reclaim(s)
            return
        self.stats["adopted"] += 1
        self.relay(node, {"chat": chat, "claimed": self.node_id})      # before anything the chat sends
        self.hub.adopt(chat, queue, node, RelayConn(self, node, chat))
