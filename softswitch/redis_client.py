"""redis-py, loaded when the node first connects to Redis (pool mode, a Redis location store, shared chats).

A node without any of them never loads it: a sixth of a second of every start, for a client it does not use.
The modules that talk to Redis catch its errors as `redis_client.Error` (and `Unreachable`, `TimedOut`),
read when an exception is being matched: before the first client exists they name an
exception nothing raises, and no Redis call can fail before there is a client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis


class _NotLoaded(Exception):
    """Stands for redis-py's exceptions until it is loaded."""


Error: type[BaseException] = _NotLoaded            # redis.exceptions.RedisError
Unreachable: type[BaseException] = _NotLoaded      # redis.exceptions.ConnectionError
TimedOut: type[BaseException] = _NotLoaded         # redis.exceptions.TimeoutError


def connect(url: str, *, retries: int = 0, backoff: tuple[float, float] = (0.2, 0.02), **options: Any) -> Redis:
    """`Redis.from_url(url, **options)` of redis-py's asyncio client; `retries`: attempts after a connection
    error or timeout, with exponential backoff (cap, base) between them."""
    global Error, Unreachable, TimedOut
    import redis.asyncio
    import redis.exceptions
    Error, Unreachable, TimedOut = (redis.exceptions.RedisError, redis.exceptions.ConnectionError,
                                            redis.exceptions.TimeoutError)
    if retries:
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff
        options["retry"] = Retry(ExponentialBackoff(cap=backoff[0], base=backoff[1]), retries)
    return redis.asyncio.Redis.from_url(url, **options)
