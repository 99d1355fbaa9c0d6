"""The wallboard's settings: threshold colours per KPI and each queue's service level goal, validated like the
rest of the file (every problem as file:line: key: message), with defaults worked out from the queue."""

from __future__ import annotations

import textwrap

import pytest

from softswitch.settings import ConfigError, parse_config
from tests.integration.test_settings import BASE


def cfg(extra: str, queue: str = "{name: q1}"):
    return parse_config(BASE.replace("{name: q1}", queue) + textwrap.dedent(extra), "cc.yaml")


def problems(extra: str, queue: str = "{name: q1}") -> list[tuple[str, int, str, str]]:
    with pytest.raises(ConfigError) as exc:
        cfg(extra, queue)
    return exc.value.problems


def test_defaults_follow_the_queue_service_level():
    c = cfg("", "{name: q1, service_level: 30s, service_level_goal: 90%}")
    q = c.queue("q1")
    assert q.service_level_goal == pytest.approx(0.9)
    t = c.wallboard.resolve(q)
    assert t["service_level"] == {"warn": pytest.approx(0.9), "alarm": pytest.approx(0.7), "higher_is_worse": False}
    assert t["longest_wait"]["warn"] == 30 and t["longest_wait"]["alarm"] == 60
    assert t["average_speed_of_answer"]["alarm"] == 30
    assert t["waiting"] == {"warn": 1, "alarm": 5, "higher_is_worse": True}
    # without the key the goal is 80%
    assert cfg("").queue("q1").service_level_goal == pytest.approx(0.8)


def test_tenant_and_queue_thresholds_override_in_that_order():
    c = cfg("""\
        wallboard:
          thresholds:
            waiting: {warn: 2, alarm: 4}
            abandon_rate: {warn: 3%}
            average_handle_time: {warn: 4m, alarm: 8m}
          queues:
            q1:
              thresholds: {waiting: {alarm: 10}, service_level: {warn: 95%, alarm: 85.5%}}
        """)
    t = c.wallboard.resolve(c.queue("q1"))
    assert t["waiting"]["warn"] == 2 and t["waiting"]["alarm"] == 10
    assert t["abandon_rate"]["warn"] == pytest.approx(0.03) and t["abandon_rate"]["alarm"] == pytest.approx(0.10)
    assert t["average_handle_time"]["warn"] == 240 and t["average_handle_time"]["alarm"] == 480
    assert t["service_level"]["warn"] == pytest.approx(0.95) and t["service_level"]["alarm"] == pytest.approx(0.855)


def test_one_side_given_keeps_the_pair_in_order():
    c = cfg("wallboard: {thresholds: {waiting: {warn: 9}, service_level: {alarm: 90%}}}")
    t = c.wallboard.resolve(c.queue("q1"))
    assert t["waiting"]["alarm"] == 9                 # the default 5 would be below warn
    assert t["service_level"]["warn"] == pytest.approx(0.9)


def test_every_problem_is_reported_with_line_and_key():
    found = problems("""\
        wallboard:
          thresholds:
            waiting: {warn: many}
            servce_level: {warn: 80%}
            abandon_rate: {warn: 0.05}
            longest_wait: {warn: 1m, alarm: 30s}
            service_level: {warn: 70%, alarm: 80%}
            average_handle_time: {warn: 5m, critical: 9m}
          queues:
            nope: {thresholds: {waiting: {warn: 1}}}
            q1: [1]
        """, "{name: q1, service_level_goal: 120%}")
    got = {(line, key): msg for _, line, key, msg in found}
    assert all(f == "cc.yaml" for f, *_ in found)
    start = BASE.count("\n")      # the wallboard section's first line is start + 1
    assert "must be between 1% and 100%" in got[(8, "skill_queues[0].service_level_goal")]
    assert "expected an integer" in got[(start + 3, "wallboard.thresholds.waiting.warn")]
    assert "did you mean 'service_level'" in got[(start + 4, "wallboard.thresholds.servce_level")]
    assert "expected a percentage like 80%" in got[(start + 5, "wallboard.thresholds.abandon_rate.warn")]
    assert "must not be below warn" in got[(start + 6, "wallboard.thresholds.longest_wait.alarm")]
    assert "must not be above warn" in got[(start + 7, "wallboard.thresholds.service_level.alarm")]
    assert "unknown key" in got[(start + 8, "wallboard.thresholds.average_handle_time.critical")]
    assert "no skill queue 'nope'" in got[(start + 10, "wallboard.queues.nope")]
    assert "expected a mapping" in got[(start + 11, "wallboard.queues.q1")]
    assert len(found) == 9, found


def test_wrong_shapes_are_refused():
    assert problems("wallboard: [1, 2]")[0][2:] == ("wallboard", "expected a mapping, got a list")
    assert problems("wallboard: {queues: [q1]}")[0][2] == "wallboard.queues"
    assert problems("wallboard: {thresholds: {waiting: 3}}")[0][2] == "wallboard.thresholds.waiting"
