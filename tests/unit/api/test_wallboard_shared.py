"""The wallboard at site scale, as pure functions: answers built once per interval and shared, change notices at
most once per interval, and the agents panel as counts plus one filtered page (fake clock, no node)."""

from __future__ import annotations

import asyncio
import json
import random
from types import SimpleNamespace

import pytest

from acd import Acd, Agent, QueueSpec
from softswitch.api.event_fanout import MAX_BACKLOG, EventRouter
from softswitch.api.wallboard_agents import AgentQuery, NameOrder, QueryError, agent_page, parse_query
from softswitch.api.wallboard_cache import ChangeTicker, SharedAnswers
from softswitch.api.wallboard_data import call_lists, call_rows


def test_an_answer_is_built_once_per_interval_and_shared_by_key():
    answers, builds = SharedAnswers(every=1.0, keep=3), []

    def build(tag):
        return lambda: builds.append(tag) or tag.encode()
    assert answers.get("sup", 100.0, build("a")) == b"a"
    assert answers.get("sup", 100.9, build("b")) == b"a"          # within the interval: the same bytes
    assert answers.get("agent", 100.9, build("c")) == b"c"        # another scope: its own
    assert answers.get("sup", 101.0, build("d")) == b"d"          # the interval is over: built anew
    assert answers.get("sup", 50.0, build("e")) == b"e"           # the clock stepped back: built anew
    assert builds == ["a", "c", "d", "e"] and (answers.built, answers.served) == (4, 5)
    for k in range(10):                                           # many keys: only the newest few are kept
        answers.get(("q", k), 200.0, build(str(k)))
    assert len(answers._answers) == 3


def test_changes_are_told_at_most_once_per_interval():
    t = ChangeTicker(every=1.0)
    assert not t.due(10.0)                      # nothing changed
    for _ in range(1000):
        t.mark()
    assert t.due(10.0) and t.seq == 1
    t.mark()
    assert not t.due(10.5)                      # too soon: kept for later
    assert t.due(11.0) and t.seq == 2
    assert not t.due(20.0)


class _Config:
    """What the panel reads of a config: agents (id, account) and employees (account, name)."""

    def __init__(self, names: dict[str, str]) -> None:
        self.agents = tuple(SimpleNamespace(id=i, account=f"acct{i}") for i in names)
        self.employees = tuple(SimpleNamespace(account=f"acct{i}", name=n) for i, n in names.items())


def _site(n: int):
    now = [1000.0]
    agents = [Agent(str(1000 + i), str(70000 + i), {f"q{i % 3}": 0}) for i in range(n)]
    acd = Acd([QueueSpec(f"q{k}") for k in range(3)], agents, lambda: now[0])
    config = _Config({str(1000 + i): f"Agent {i:03d}" for i in range(n)})
    return acd, config, now


def test_counts_per_state_follow_every_change_without_a_walk():
    acd, config, now = _site(30)
    page = agent_page(acd, config, NameOrder(), AgentQuery())
    assert page["counts"] == {"total": 30, "signed_in": 0,
                              "by_state": {"offline": 30, "idle": 0, "ringing": 0, "talking": 0, "busy": 0,
                                           "rest": 0, "wrap_up": 0}}
    for i in range(5):
        acd.registration(str(1000 + i), True)
        acd.sign_in(str(1000 + i))
    acd.set_state("1001", "busy", "lunch")
    acd.remove_agent("1029")
    c = agent_page(acd, config, NameOrder(), AgentQuery())["counts"]
    assert (c["total"], c["signed_in"], c["by_state"]["idle"], c["by_state"]["busy"], c["by_state"]["offline"]) == \
        (29, 5, 4, 1, 24)


def test_a_page_of_agents_filtered_by_queue_state_and_search():
    acd, config, now = _site(300)
    order = NameOrder()
    first = agent_page(acd, config, order, AgentQuery(limit=50))
    assert first["total"] == 300 and len(first["agents"]) == 50
    assert [a["name"] for a in first["agents"][:2]] == ["Agent 000", "Agent 001"]
    assert first["agents"][0]["reason_text"] == "not signed in" and "call_id" not in first["agents"][0]
    last = agent_page(acd, config, order, AgentQuery(offset=280, limit=50))
    assert last["total"] == 300 and len(last["agents"]) == 20 and last["agents"][-1]["name"] == "Agent 299"
    for i in (3, 6, 7, 150):
        acd.registration(str(1000 + i), True)
        now[0] += 1
        acd.sign_in(str(1000 + i))
    q0 = agent_page(acd, config, order, AgentQuery(queue="q0", state="idle"))
    assert [a["id"] for a in q0["agents"]] == ["1003", "1006", "1150"] and q0["total"] == 3
    signed = agent_page(acd, config, order, AgentQuery(state="signed_in", sort="time"))
    assert [a["id"] for a in signed["agents"]] == ["1003", "1006", "1007", "1150"]      # longest in state first
    assert agent_page(acd, config, order, AgentQuery(queue="q1", state="offline"))["total"] == 99
    found = agent_page(acd, config, order, AgentQuery(search="agent 15"))
    assert found["total"] == 10 and found["agents"][0]["id"] == "1150"      # Agent 150..159
    assert [a["id"] for a in agent_page(acd, config, order, AgentQuery(search="70150"))["agents"]] == ["1150"]
    assert agent_page(acd, config, order, AgentQuery(search="nobody"))["agents"] == []


def test_hostile_queries_are_refused_with_a_reason():
    queues = {"q0": None}
    assert parse_query({}, queues) == AgentQuery()
    assert parse_query({"q": "  Ann   LEE ", "limit": "200", "offset": "50"}, queues) == \
        AgentQuery(search="ann lee", limit=200, offset=50)
    for bad, says in (({"queue": "nope"}, "no skill queue"), ({"state": "asleep"}, "state must be"),
                      ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "-1"}, "limit"),
                      ({"offset": "1e9"}, "offset"), ({"offset": "9" * 5000}, "offset"),
                      ({"q": "x" * 65}, "longer"), ({"sort": "random"}, "sort"),
                      ({"limit": "²"}, "limit"), ({"offset": "٣"}, "offset"), ({"limit": ""}, "limit")):
        with pytest.raises(QueryError, match=says):
            parse_query(bad, queues)


def test_every_query_answers_as_a_walk_over_all_agents_would():
    acd, config, now = _site(240)
    rng = random.Random(7)
    for i in rng.sample(range(240), 120):
        agent_id = str(1000 + i)
        now[0] += 1
        acd.registration(agent_id, True)
        acd.sign_in(agent_id)
        now[0] += 1
        acd.set_state(agent_id, rng.choice(["busy", "rest", "idle"]), "")
    order = NameOrder()
    names = {str(1000 + i): f"Agent {i:03d}" for i in range(240)}
    everyone = sorted(acd.agents.values(), key=lambda a: names[a.id])
    for queue in ("", "q1"):
        for state in ("", "signed_in", "idle", "busy", "offline", "ringing"):
            for search in ("", "agent 1", "10"):
                for offset in (0, 30, 500):
                    for sort in ("name", "time"):
                        q = AgentQuery(queue, state, search, sort, offset, 40)
                        want = [a for a in everyone
                                if (not queue or queue in a.queues)
                                and (not state or (a.state != "offline" if state == "signed_in" else a.state == state))
                                and (not search or search in f"{names[a.id]} {a.id} {a.softphone}".lower())]
                        page = agent_page(acd, config, order, q)
                        assert page["total"] == len(want), q
                        if sort == "name":
                            assert [a["id"] for a in page["agents"]] == [a.id for a in want[offset:offset + 40]], q
                        else:
                            since = sorted(a.since for a in want)[offset:offset + 40]
                            assert [a["since"] for a in page["agents"]] == since, q


def test_events_go_to_their_agent_and_to_supervisors_only_and_kpis_are_encoded_once():
    router = EventRouter()
    sup, alice, alice2, bob = (asyncio.Queue() for _ in range(4))
    router.add(sup, None, everything=True)
    router.add(alice, "1001", everything=False)
    router.add(alice2, "1001", everything=False)
    router.add(bob, "1002", everything=False)
    router.put_nowait({"type": "state", "agent_id": "1001"})
    router.put_nowait({"type": "enqueue", "agent_id": ""})
    assert (sup.qsize(), alice.qsize(), alice2.qsize(), bob.qsize()) == (2, 1, 1, 0)
    router.discard(alice, "1001")
    router.discard(alice2, "1001")
    assert "1001" not in router.by_agent
    for _ in range(MAX_BACKLOG + 5):                 # a page that never reads: bounded
        router.put_nowait({"type": "state", "agent_id": "1002"})
    assert bob.qsize() == MAX_BACKLOG
    acd, _, now = _site(3)
    calls = []
    view = acd.queue_view
    acd.queue_view = lambda name: calls.append(name) or view(name)
    first = router.queues_message(acd, 100.0)
    assert router.queues_message(acd, 100.5) is first and len(calls) == 3      # one build for every page
    assert json.loads(first)["type"] == "queues" and len(json.loads(first)["queues"]) == 3


def _calls(acd, now, n_waiting: int, n_talking: int):
    """Call-control's calls as the board reads them: waiting ones in the ACD, talking ones with an agent leg."""
    calls = {}
    for k in range(n_waiting):
        now[0] += 0.01
        acd.enqueue(f"w{k}", "q0")
        calls[f"w{k}"] = SimpleNamespace(id=f"w{k}", queue="q0", started=now[0], ended=False, agent_leg=None,
                                         answered_at=0.0,
                                         customer=SimpleNamespace(dialog=SimpleNamespace(
                                             remote_uri=f'"Caller {k}" <sip:555{k:04d}@x>')))
    for k in range(n_talking):
        calls[f"t{k}"] = SimpleNamespace(id=f"t{k}", queue="q1", started=500.0 + k, answered_at=600.0 + k,
                                         ended=False, agent_leg=SimpleNamespace(agent_id=str(1000 + k)),
                                         customer=SimpleNamespace(dialog=None), supervisor=None)
    return SimpleNamespace(calls=calls)


def test_the_board_lists_the_longest_waits_and_talks_and_counts_the_rest():
    acd, _, now = _site(30)
    for i in range(0, 30, 3):                   # q0's agents signed in and busy: callers wait
        acd.registration(str(1000 + i), True)
        acd.sign_in(str(1000 + i))
        acd.set_state(str(1000 + i), "busy", "")
    cc = _calls(acd, now, 90, 250)           # a queue holds 100 at most
    waiting, active, totals = call_lists(cc, acd, now[0], 10)
    assert totals == {"waiting": 90, "active": 250}
    assert [r["id"] for r in waiting] == [f"w{k}" for k in range(10)]
    assert waiting[0]["caller"] == {"number": "5550000", "name": "Caller 0"} and waiting[0]["ringing"] == []
    assert [r["id"] for r in active] == [f"t{k}" for k in range(10)] and active[0]["talk"] == round(now[0] - 600, 3)
    every_waiting, every_active = call_rows(cc, acd, now[0])
    assert len(every_waiting) == 90 and len(every_active) == 250
