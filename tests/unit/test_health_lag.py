"""The lag refresh is off the poll loop: the poll loop's health tick only applies what the lag
reader read with its own client (pure logic: a small fake stands for the engine)."""
from __future__ import annotations

import time
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from sidepath.worker.engine.offsets import OffsetTracker
from sidepath.worker.ops.health import Health, LagReport, PartitionOffsets, PollSnapshot
from sidepath.worker.ops.metrics import build_metrics

TP = ("t", 0)
LABELS = {"topic": "t", "partition": "0", "group": "g"}


class NoBroker:
    """The engine's consumer, which only the poll loop may use: a health tick must ask it nothing."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the health tick called consumer.{name}() on the poll loop")


def _setup(stall_after_s: float = 60.0):
    registry = CollectorRegistry()
    health = Health(build_metrics(registry), group="g", ping_timeout_s=30, stall_after_s=stall_after_s)
    health.models_ready = True
    tracker = OffsetTracker()
    tracker.assign(TP, 5)
    view = SimpleNamespace(consumer=NoBroker(), tracker=tracker, inflight={}, pacer=None, start=None)
    health.publish(PollSnapshot(time.time(), (TP,)))
    return registry, health, view


def test_a_health_tick_on_the_poll_loop_asks_the_broker_nothing_and_applies_each_report_once():
    registry, health, view = _setup()
    health.tick(view)                   # no report yet: nothing to do, and no broker round trip
    assert registry.get_sample_value("sidepath_consumer_lag_messages", LABELS) is None
    seen = {TP: PartitionOffsets(5, 0, 12, 7), ("t", 1): PartitionOffsets(None, 0, 4, 4)}
    health.deliver(LagReport(time.time(), seen, total=11, topic="t"))
    health.tick(view)
    health.tick(view)
    assert health.reports_applied == 1
    assert registry.get_sample_value("sidepath_consumer_lag_messages", LABELS) == 7
    assert registry.get_sample_value("sidepath_committed_offset", LABELS) == 5
    assert registry.get_sample_value("sidepath_high_watermark_offset", LABELS) == 12
    # the group total covers every partition; the per-partition series only the partitions owned now
    assert registry.get_sample_value("sidepath_consumer_group_lag_messages", {"topic": "t", "group": "g"}) == 11
    assert registry.get_sample_value("sidepath_consumer_lag_messages", {**LABELS, "partition": "1"}) is None


def test_reports_without_progress_mark_a_stall_and_a_revoke_forgets_it():
    _registry, health, view = _setup(stall_after_s=60.0)
    t0 = time.time()
    for wall in (t0, t0 + 30, t0 + 61):     # committed offset stuck at 5 with lag 7
        health.deliver(LagReport(wall, {TP: PartitionOffsets(5, 0, 12, 7)}, total=7, topic="t"))
        health.tick(view)
    assert health.ready() == (False, "stalled: t[0]")
    health.forget([TP])
    assert health.ready() == (True, "ready")


def test_a_pod_without_partitions_drops_its_group_total():
    registry, health, view = _setup()
    health.deliver(LagReport(time.time(), {TP: PartitionOffsets(5, 0, 12, 7)}, total=7, topic="t"))
    health.tick(view)
    view.tracker.revoke(TP)
    health.deliver(LagReport(time.time()))
    health.tick(view)
    assert registry.get_sample_value("sidepath_consumer_group_lag_messages", {"topic": "t", "group": "g"}) is None


def test_the_stall_check_counts_lag_by_the_lag_rule():
    """A partition the group never committed, read from the end (auto.offset.reset = latest): lag 0 by
    the rule KEDA and the lag metric use, so waiting there is not a stall; with earliest it is."""
    _registry, health, view = _setup(stall_after_s=60.0)
    t0 = time.time()
    for wall in (t0, t0 + 61):
        health.deliver(LagReport(wall, {TP: PartitionOffsets(None, 3, 12, 0)}, total=0, topic="t"))
        health.tick(view)
    assert health.ready() == (True, "ready")
    for wall in (t0 + 62, t0 + 123):
        health.deliver(LagReport(wall, {TP: PartitionOffsets(None, 3, 12, 9)}, total=9, topic="t"))
        health.tick(view)
    assert health.ready() == (False, "stalled: t[0]")
