"""A location store shared by the nodes of a pool: bindings in Redis (redis-py's asyncio client).

Data model, under a key prefix (default "ss:"):
  <prefix>aor:<aor>   a hash per address-of-record: fields "1".."n" hold the bindings in order, each stored as
                      "<expires_at> <json of Binding.to_dict()>" so Lua reads the expiry without decoding JSON
                      (cjson would round numbers to 14 digits)
  <prefix>expiry      a sorted set: each AOR scored by its earliest binding expiry, so expire() is a range query
  <prefix>count       the number of stored bindings, kept by the two scripts
replace() and expire() are Lua scripts, so each is atomic: two nodes sweeping at once never both get the same
expired binding, and concurrent writers to one AOR leave exactly one writer's bindings (last write wins).
The expire script builds AOR keys itself, so it suits a single Redis server (or a replicated one), not Cluster.
Connection failures raise `LocationUnavailable`; what to do then (reject, retry, fail over) is the caller's.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, AsyncIterator, Iterator
from urllib.parse import urlsplit

from .. import redis_client
from .location import Binding

if TYPE_CHECKING:
    from redis.asyncio import Redis

_REPLACE = """
local old = redis.call('HLEN', KEYS[1])
redis.call('DEL', KEYS[1])
for i = 3, #ARGV do redis.call('HSET', KEYS[1], tostring(i - 2), ARGV[i]) end
if #ARGV > 2 then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]) else redis.call('ZREM', KEYS[2], ARGV[1]) end
if #ARGV - 2 ~= old then redis.call('INCRBY', KEYS[3], #ARGV - 2 - old) end
return #ARGV - 2
"""

# KEYS: expiry zset, count; ARGV: now, "<prefix>aor:", batch size. Returns {AORs popped, {expired values}}.
_EXPIRE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local now = tonumber(ARGV[1])
local gone, removed = {}, 0
for _, aor in ipairs(due) do
  local key = ARGV[2] .. aor
  local n = redis.call('HLEN', key)
  local keep, low, lows = {}, nil, nil
  for i = 1, n do
    local v = redis.call('HGET', key, tostring(i))
    if v then
      local es = string.sub(v, 1, string.find(v, ' ', 1, true) - 1)
      local e = tonumber(es)
      if e <= now then gone[#gone + 1] = v else
        keep[#keep + 1] = v
        if low == nil or e < low then low, lows = e, es end
      end
    end
  end
  if #keep < n then
    redis.call('DEL', key)
    for i, v in ipairs(keep) do redis.call('HSET', key, tostring(i), v) end
    removed = removed + n - #keep
  end
  if low then redis.call('ZADD', KEYS[1], lows, aor) else redis.call('ZREM', KEYS[1], aor) end
end
if removed > 0 then redis.call('DECRBY', KEYS[2], removed) end
return {#due, gone}
"""


class LocationUnavailable(RuntimeError):
    """The Redis server cannot be reached (refused, reset, timed out, still loading)."""


def _encode(b: Binding) -> str:
    return f"{float(b.expires_at)!r} {json.dumps(b.to_dict(), separators=(',', ':'))}"


def _decode(value: str) -> Binding:
    return Binding.from_dict(json.loads(value.split(" ", 1)[1]))


class RedisLocationStore:
    def __init__(self, url: str = "redis://127.0.0.1:6379/0", prefix: str = "ss:", timeout: float = 5.0,
                 expire_batch: int = 500) -> None:
        self.url, self.prefix = url, prefix
        self._expiry, self._count, self._aor_prefix = prefix + "expiry", prefix + "count", prefix + "aor:"
        self._timeout, self._batch = timeout, expire_batch
        parts = urlsplit(url)
        self._where = f"{parts.hostname}:{parts.port or 6379}"   # for messages: never the password
        self._redis: Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closer: AsyncIterator[None] | None = None

    async def _client(self) -> Redis:
        """The client of the running loop. redis-py connections belong to one loop, so a store used from a new
        loop opens a new client there; each client is closed by close() or when its loop shuts down
        (asyncio.run finalizes async generators: `_closed_with_loop` is one)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._abandon()
            self._loop = loop
            self._redis = redis_client.connect(self.url, retries=2, backoff=(0.2, 0.02), decode_responses=True,
                                               socket_timeout=self._timeout, socket_connect_timeout=self._timeout)
            self._replace_script = self._redis.register_script(_REPLACE)
            self._expire_script = self._redis.register_script(_EXPIRE)
            self._closer = _closed_with_loop(self._redis)
            await self._closer.__anext__()
        return self._redis

    def _abandon(self) -> None:
        closer, loop, self._closer, self._redis, self._loop = self._closer, self._loop, None, None, None
        if closer is not None and loop is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(closer.aclose(), loop)

    @contextmanager
    def _guard(self, op: str) -> Iterator[None]:
        try:
            yield
        except (redis_client.Unreachable, redis_client.TimedOut, OSError) as exc:
            raise LocationUnavailable(f"location store redis at {self._where} unavailable ({op}): {exc}") from exc

    def _key(self, aor: str) -> str:
        return self._aor_prefix + aor

    async def lookup(self, aor: str, now: float) -> list[Binding]:
        with self._guard("lookup"):
            redis = await self._client()
            fields = await redis.hgetall(self._key(aor))
        bindings = (_decode(v) for _, v in sorted(fields.items(), key=lambda kv: int(kv[0])))
        return [b for b in bindings if b.expires_at > now]

    async def replace(self, aor: str, bindings: list[Binding], now: float) -> None:
        low = repr(float(min(b.expires_at for b in bindings))) if bindings else ""
        with self._guard("replace"):
            redis = await self._client()
            await self._replace_script(keys=[self._key(aor), self._expiry, self._count],
                                       args=[aor, low, *(_encode(b) for b in bindings)], client=redis)

    async def expire(self, now: float) -> list[Binding]:
        gone: list[Binding] = []
        while True:
            with self._guard("expire"):
                redis = await self._client()
                popped, values = await self._expire_script(
                    keys=[self._expiry, self._count], args=[repr(float(now)), self._aor_prefix, self._batch],
                    client=redis)
            gone.extend(_decode(v) for v in values)
            if popped < self._batch:
                return gone

    async def count(self) -> int:
        with self._guard("count"):
            redis = await self._client()
            return int(await redis.get(self._count) or 0)

    async def all(self) -> list[Binding]:
        out: list[Binding] = []
        with self._guard("all"):
            redis = await self._client()
            aors = list(dict.fromkeys(  # SCAN may repeat a member
                [aor async for aor, _ in redis.zscan_iter(self._expiry, count=500)]))
            for i in range(0, len(aors), 500):
                pipe = redis.pipeline(transaction=False)
                for aor in aors[i:i + 500]:
                    pipe.hgetall(self._key(aor))
                for fields in await pipe.execute():
                    out.extend(_decode(v) for _, v in sorted(fields.items(), key=lambda kv: int(kv[0])))
        return out

    async def close(self) -> None:
        if self._loop is asyncio.get_running_loop() and self._closer is not None:
            closer, self._closer, self._redis, self._loop = self._closer, None, None, None
            await closer.aclose()
        else:
            self._abandon()


async def _closed_with_loop(redis: Redis) -> AsyncIterator[None]:
    try:
        yield
    finally:
        with suppress(redis_client.Error, OSError):
            await (redis.aclose() if hasattr(redis, "aclose") else redis.close())   # aclose: redis-py >= 5.0.1
