"""The broker-throttle metrics from librdkafka statistics: the last interval as it came, and a
throttled flag (and one log line each way) that does not flap between throttled answers."""
from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import CollectorRegistry

from sidepath.worker.ops.broker_stats import throttle_ms, throttle_stats_cb


def stats(*throttles: tuple[float, float]) -> str:
    """librdkafka statistics JSON with one broker per (avg, max) throttle window, in ms."""
    return json.dumps({"brokers": {f"b{i}": {"throttle": {"avg": a, "max": m}} for i, (a, m) in enumerate(throttles)}})


def test_throttle_is_the_highest_of_any_broker():
    assert throttle_ms(stats((10, 30), (20, 25))) == (20, 30)
    assert throttle_ms(stats()) == (0, 0)
    assert throttle_ms(json.dumps({"brokers": {"b": {}}})) == (0, 0)


def test_throttled_lasts_until_a_quiet_spell_and_is_said_once_each_way(caplog):
    now = [0.0]
    registry = CollectorRegistry()
    on_stats = throttle_stats_cb(registry, quiet_s=60, clock=lambda: now[0])

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    caplog.set_level(logging.INFO, logger="sidepath.worker.ops.broker_stats")
    # a throttled answer about every 12 s (one quota window), nothing in the intervals between
    for t in range(0, 60, 5):
        now[0] = float(t)
        on_stats(stats((3000, 3000)) if t % 12 < 5 else stats((0, 0)))
        assert sample("sidepath_broker_throttled") == 1, t
    assert sample("sidepath_broker_throttle_seconds", stat="max") in (0, 3.0)
    now[0] = 100.0                         # 50 s after the last throttled answer (at t = 50)
    on_stats(stats((0, 0)))
    assert sample("sidepath_broker_throttled") == 1
    now[0] = 200.0
    on_stats(stats((0, 0)))
    assert sample("sidepath_broker_throttled") == 0
    assert sample("sidepath_broker_throttle_seconds", stat="max") == 0
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("a broker quota throttles") and lines[1].startswith("no longer throttled")


@pytest.mark.parametrize("bad", ["not json", "[]"])
def test_unreadable_statistics_change_nothing(bad):
    registry = CollectorRegistry()
    on_stats = throttle_stats_cb(registry)
    on_stats(stats((5, 7)))
    on_stats(bad)
    assert registry.get_sample_value("sidepath_broker_throttle_seconds", {"stat": "max"}) == 0.007
