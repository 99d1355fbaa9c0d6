"""One contract for every location store implementation: memory, SQLite and Redis (a real redis-server)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings, strategies as st

import tempfile

from softswitch.registrar.location import Binding, MemoryLocationStore
from softswitch.registrar.location_redis import RedisLocationStore
from softswitch.registrar.location_sqlite import SqliteLocationStore
from tools.redisserver import RedisNotFound, find_redis_server, redis_server

STORES = {"memory": MemoryLocationStore,
          "sqlite": lambda: SqliteLocationStore(tempfile.mkdtemp(prefix="loc-") + "/b.db", now=0.0),
          "redis": lambda url: RedisLocationStore(url, prefix="contract:")}   # takes the redis_url fixture

_REDIS_URL = pytest.StashKey[str]()


def session_redis_url(config: pytest.Config) -> str:
    """One real redis-server (tools/redisserver.py) for the whole test session, shared by every module that
    asks, stopped when the session ends. No redis-server is a failure, not a skip (`make test` installs it)."""
    url = config.stash.get(_REDIS_URL, None)
    if url is None:
        missing = None
        try:
            find_redis_server()
        except RedisNotFound as exc:
            missing = str(exc)
        if missing:
            pytest.fail(missing, pytrace=False)
        server = redis_server()
        url = server.__enter__()
        config.add_cleanup(lambda: server.__exit__(None, None, None))
        config.stash[_REDIS_URL] = url
    return url


@pytest.fixture
def redis_url(request) -> str:
    """The session's Redis server, its database flushed."""
    import redis
    url = session_redis_url(request.config)
    with redis.Redis.from_url(url) as r:
        r.flushdb()
    return url


@pytest.fixture(params=sorted(STORES))
def store(request):
    if request.param == "redis":
        return STORES["redis"](request.getfixturevalue("redis_url"))
    return STORES[request.param]()


def b(aor: str, contact: str, expires_at: float, **kw) -> Binding:
    return Binding(aor=aor, user=aor.split(":")[1].split("@")[0], contact=contact, key=contact,
                   expires_at=expires_at, call_id="c", cseq=1, **kw)


def run(coro):
    return asyncio.run(coro)


def test_replace_and_lookup_round_trip_all_fields(store):
    full = b("sip:70001@cc.test", "sip:70001@10.0.0.1:5060", 200.0, q=0.5, instance="<urn:uuid:1>", reg_id="1",
             path=["<sip:edge;lr>"], source=("tcp", "10.0.0.1", 40000), user_agent="Phone/1.0", node="n2",
             registered_at=90.0, params=";+sip.instance=\"<urn:uuid:1>\"")
    run(store.replace("sip:70001@cc.test", [full], 100.0))
    assert run(store.lookup("sip:70001@cc.test", 100.0)) == [full]
    assert run(store.lookup("sip:70002@cc.test", 100.0)) == []


def test_lookup_hides_expired_and_expire_returns_them_once(store):
    run(store.replace("sip:a@x", [b("sip:a@x", "sip:a@1", 150.0), b("sip:a@x", "sip:a@2", 300.0)], 100.0))
    run(store.replace("sip:b@x", [b("sip:b@x", "sip:b@1", 120.0)], 100.0))
    assert [x.contact for x in run(store.lookup("sip:a@x", 200.0))] == ["sip:a@2"]
    gone = run(store.expire(200.0))
    assert sorted(x.contact for x in gone) == ["sip:a@1", "sip:b@1"]
    assert run(store.expire(200.0)) == []
    assert run(store.count()) == 1
    assert [x.contact for x in run(store.all())] == ["sip:a@2"]


def test_replace_with_nothing_removes_the_aor(store):
    run(store.replace("sip:a@x", [b("sip:a@x", "sip:a@1", 150.0)], 100.0))
    run(store.replace("sip:a@x", [], 101.0))
    assert run(store.lookup("sip:a@x", 101.0)) == [] and run(store.count()) == 0


def test_binding_dict_round_trip():
    x = b("sip:a@x", "sip:a@1", 1.0, path=["<sip:p;lr>"], source=("udp", "1.2.3.4", 5))
    assert Binding.from_dict(x.to_dict()) == x


def test_sqlite_store_survives_a_restart_and_drops_expired(tmp_path):
    path = str(tmp_path / "b.db")
    s1 = SqliteLocationStore(path, now=100.0)
    run(s1.replace("sip:a@x", [b("sip:a@x", "sip:a@1", 150.0), b("sip:a@x", "sip:a@2", 500.0)], 100.0))
    run(s1.replace("sip:b@x", [b("sip:b@x", "sip:b@1", 120.0)], 100.0))
    run(s1.replace("sip:c@x", [b("sip:c@x", "sip:c@1", 900.0)], 100.0))
    run(s1.replace("sip:c@x", [], 101.0))
    s1.close()
    s2 = SqliteLocationStore(path, now=200.0)
    assert [x.contact for x in run(s2.lookup("sip:a@x", 200.0))] == ["sip:a@2"]
    assert run(s2.lookup("sip:b@x", 200.0)) == [] and run(s2.lookup("sip:c@x", 200.0)) == []
    assert run(s2.count()) == 1
    s2.close()


def test_sqlite_store_keeps_every_field_and_the_latest_refresh_across_a_restart(tmp_path):
    """A refresh that only moves the expiry (new Call-ID and CSeq) reuses the binding's encoded rest: what is
    read back after a restart is still the binding as it was last stored, every field of it."""
    path = str(tmp_path / "b.db")
    full = b("sip:70001@cc.test", "sip:70001@10.0.0.1:5060", 200.0, q=0.5, instance="<urn:uuid:1>", reg_id="1",
             path=["<sip:edge;lr>"], source=("tcp", "10.0.0.1", 40000), user_agent='Phone "1.0" \u00e9 \udcff',
             node="n2", registered_at=90.0, params=";+sip.instance=\"<urn:uuid:1>\"")
    s1 = SqliteLocationStore(path, now=100.0)
    run(s1.replace(full.aor, [full], 100.0))
    s1.flush()
    refreshed = Binding(**{**full.to_dict(), "expires_at": 4000.5, "call_id": 'c"2\u00e9', "cseq": 7})
    moved = Binding(**{**full.to_dict(), "key": "k2", "contact": "sip:70001@10.0.0.2", "expires_at": 300.0})
    run(s1.replace(full.aor, [refreshed, moved], 150.0))
    run(s1.replace("sip:gone@cc.test", [b("sip:gone@cc.test", "sip:gone@1", 900.0)], 150.0))
    s1.flush()
    run(s1.replace("sip:gone@cc.test", [], 160.0))
    s1.close()
    s2 = SqliteLocationStore(path, now=250.0)
    assert run(s2.lookup(full.aor, 250.0)) == [refreshed, moved]
    assert run(s2.lookup("sip:gone@cc.test", 250.0)) == []
    s2.close()


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.one_of(
    st.tuples(st.just("replace"), st.integers(0, 4), st.lists(st.integers(1, 60), max_size=3)),
    st.tuples(st.just("expire"), st.integers(0, 30), st.just([]))), max_size=30))
def test_memory_store_expiry_finds_what_a_scan_of_every_binding_finds(steps):
    """The heap of due AORs expires exactly the bindings a sweep over all of them would, in any order of
    registrations, refreshes (later or earlier expiry), removals and sweeps."""
    store, model, now = MemoryLocationStore(), {}, 100.0
    for op, n, ttls in steps:
        if op == "replace":
            aor = f"sip:u{n}@x"
            bindings = [b(aor, f"sip:u{n}@{i}", now + t) for i, t in enumerate(ttls)]
            run(store.replace(aor, bindings, now))
            model[aor] = bindings
        else:
            now += n
            expected = sorted(x.contact for v in model.values() for x in v if x.expires_at <= now)
            model = {a: [x for x in v if x.expires_at > now] for a, v in model.items()}
            model = {a: v for a, v in model.items() if v}
            assert sorted(x.contact for x in run(store.expire(now))) == expected
        assert run(store.count()) == sum(len(v) for v in model.values())
