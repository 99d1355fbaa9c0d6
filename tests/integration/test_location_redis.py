"""softswitch.registrar.location_redis beyond the shared contract (tests/integration/test_location_store.py), on a real redis-server
(tools/redisserver.py): stores of several nodes sharing one server, concurrent sweeps, concurrent writers,
a server that goes away. No redis-server is a failure, not a skip (`make test` installs it as root)."""

from __future__ import annotations

import asyncio
import random

import pytest
import redis

from softswitch.registrar.location_redis import LocationUnavailable, RedisLocationStore
from tests.conftest import free_port
from tests.integration.test_location_store import b, redis_url  # noqa: F401  (redis_url: the session server, flushed)
from tools.redisserver import redis_server


def run(coro):
    return asyncio.run(coro)


def raw(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def test_two_stores_on_one_server_see_each_others_bindings(redis_url):
    async def main():
        n1, n2 = RedisLocationStore(redis_url), RedisLocationStore(redis_url)
        other = RedisLocationStore(redis_url, prefix="other:")
        x = b("sip:a@x", "sip:a@1", 500.0, node="n1")
        await n1.replace("sip:a@x", [x], 100.0)
        assert await n2.lookup("sip:a@x", 100.0) == [x]
        assert await n2.count() == 1 and await n2.all() == [x]
        y = b("sip:a@x", "sip:a@2", 600.0, node="n2")
        await n2.replace("sip:a@x", [x, y], 101.0)
        assert await n1.lookup("sip:a@x", 101.0) == [x, y] and await n1.count() == 2
        assert await other.lookup("sip:a@x", 101.0) == [] and await other.count() == 0   # prefixes isolate
        await n1.replace("sip:a@x", [], 102.0)
        assert await n2.lookup("sip:a@x", 102.0) == [] and await n2.count() == 0 and await n2.all() == []
        for s in (n1, n2, other):
            await s.close()
    run(main())


def test_concurrent_expire_returns_each_expired_binding_exactly_once(redis_url):
    now = 1_000.0
    rng = random.Random(7)
    expected_gone, expected_left = set(), {}
    stores = [RedisLocationStore(redis_url, expire_batch=batch) for batch in (7, 13, 500)]

    async def main():
        for i in range(400):
            aor = f"sip:u{i}@x"
            bindings = [b(aor, f"sip:u{i}@{j}", rng.choice([now - 50, now - 0.5, now, now + 0.5, now + 90]))
                        for j in range(rng.randint(1, 4))]
            for x in bindings:
                (expected_gone.add(x.contact) if x.expires_at <= now else
                 expected_left.setdefault(aor, []).append(x.contact))
            await stores[i % 3].replace(aor, bindings, now - 100)
        results = await asyncio.gather(*(s.expire(now) for s in stores for _ in range(3)))
        got = [x.contact for r in results for x in r]
        assert len(got) == len(set(got)), "a binding was expired twice"
        assert set(got) == expected_gone
        assert sum(1 for r in results if r) >= 1
        assert await stores[1].expire(now) == []
        assert await stores[0].count() == sum(map(len, expected_left.values()))
        assert sorted(x.contact for x in await stores[2].all()) == sorted(c for v in expected_left.values() for c in v)
        for aor, contacts in expected_left.items():
            assert [x.contact for x in await stores[1].lookup(aor, now)] == contacts
        for s in stores:
            await s.close()
    run(main())
    zset = dict(raw(redis_url).zrange("ss:expiry", 0, -1, withscores=True))
    assert set(zset) == set(expected_left)                      # re-scored: only AORs with bindings left
    assert all(score > now for score in zset.values())


def test_concurrent_writers_to_one_aor_last_write_wins_without_mixing(redis_url):
    aor, writers, rounds = "sip:hot@x", 8, 25
    written: dict[tuple, list] = {}
    seen: list[list[str]] = []

    def bindings(w: int, r: int) -> list:
        return [b(aor, f"sip:hot@w{w}r{r}b{k}", 1_000.0 + w * 100 + r + k) for k in range(1 + (w + r) % 4)]

    async def writer(store: RedisLocationStore, w: int) -> None:
        for r in range(rounds):
            written[(w, r)] = bindings(w, r)
            await store.replace(aor, written[(w, r)], 0.0)

    async def reader(store: RedisLocationStore) -> None:
        for _ in range(rounds * 2):
            seen.append([x.contact for x in await store.lookup(aor, 0.0)])
            await asyncio.sleep(0)

    async def main():
        stores = [RedisLocationStore(redis_url) for _ in range(4)]
        await asyncio.gather(*(writer(stores[w % 4], w) for w in range(writers)), *(reader(s) for s in stores))
        final = await stores[0].lookup(aor, 0.0)
        assert final in [written[(w, rounds - 1)] for w in range(writers)]   # the last call was some writer's last
        assert await stores[1].count() == len(final) and await stores[2].all() == final
        for s in stores:
            await s.close()
        return final

    final = run(main())
    whole = [[x.contact for x in v] for v in written.values()]
    assert all(s == [] or s in whole for s in seen), "a reader saw a mix of two writes"
    assert raw(redis_url).zscore("ss:expiry", aor) == min(x.expires_at for x in final)


def test_expiry_keeps_full_float_precision(redis_url):
    t = 1_727_200_000.1234567
    async def main():
        s = RedisLocationStore(redis_url)
        await s.replace("sip:a@x", [b("sip:a@x", "sip:a@1", t)], t - 60)
        assert await s.expire(t - 1e-6) == []
        assert [x.expires_at for x in await s.lookup("sip:a@x", t - 1e-6)] == [t]
        assert [x.expires_at for x in await s.expire(t)] == [t]
        await s.close()
    run(main())


def test_used_from_successive_loops_and_after_close(redis_url):
    s = RedisLocationStore(redis_url)
    run(s.replace("sip:a@x", [b("sip:a@x", "sip:a@1", 500.0)], 100.0))
    assert [x.contact for x in run(s.lookup("sip:a@x", 100.0))] == ["sip:a@1"]   # a second loop

    async def close_then_use():
        await s.close()
        return await s.count()
    assert run(close_then_use()) == 1
    run(s.close())


def test_location_unavailable_when_the_server_stops_midway():
    async def main():
        server = redis_server()
        url = server.__enter__()
        try:
            s = RedisLocationStore(url, timeout=2.0)
            await s.replace("sip:a@x", [b("sip:a@x", "sip:a@1", 500.0)], 100.0)
            assert await s.count() == 1
        finally:
            server.__exit__(None, None, None)
        port = url.rsplit(":", 1)[1].split("/")[0]
        for name, call in [("lookup", lambda: s.lookup("sip:a@x", 100.0)),
                           ("replace", lambda: s.replace("sip:a@x", [], 100.0)),
                           ("expire", lambda: s.expire(1_000.0)), ("count", s.count), ("all", s.all)]:
            with pytest.raises(LocationUnavailable) as info:
                await asyncio.wait_for(call(), 30)          # gives up (30 s only bounds a hang)
            assert f"127.0.0.1:{port}" in str(info.value) and name in str(info.value)
            assert isinstance(info.value.__cause__, (redis.ConnectionError, redis.TimeoutError, OSError))
        await s.close()
    run(main())


def test_location_unavailable_when_nothing_listens():
    s = RedisLocationStore(f"redis://127.0.0.1:{free_port()}/0", timeout=1.0)
    with pytest.raises(LocationUnavailable):
        run(s.lookup("sip:a@x", 0.0))
    assert issubclass(LocationUnavailable, RuntimeError)
