"""The poll loop's commit strategies, the hooks bound to the engine, and the health snapshot
(pure logic: the consumer and the transactional producer are stand-ins; the broker tests are
tests/integration/test_engine_delivery.py and test_exactly_once.py)."""
from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaException
from prometheus_client import CollectorRegistry

from sidepath.sinks.base import Result, SourceRef
from sidepath.worker.engine.commit import PlainCommit, TransactionalCommit
from sidepath.worker.engine.hooks import EngineHooks
from sidepath.worker.engine.inflight import Inflight
from sidepath.worker.ops.health import Health, PollSnapshot
from sidepath.worker.ops.metrics import build_metrics
from tests.unit.test_exactly_once import Recorder


class FakeConsumer:
    """Records commits; raises when told to."""

    def __init__(self) -> None:
        self.commits: list[tuple[list[tuple[str, int, int, str]], bool]] = []
        self.fail = False

    def commit(self, *, offsets, asynchronous):
        if self.fail:
            raise KafkaException("broker away")
        self.commits.append(([(t.topic, t.partition, t.offset, t.metadata) for t in offsets], asynchronous))

    def consumer_group_metadata(self):
        return "group-metadata"


def _inflight(tp, off) -> Inflight:
    return Inflight(SourceRef(tp[0], tp[1], off), 0, None, b"", (), None)


def _result(tp, off) -> Result:
    return Result(f"{tp[1]}:{off}", "u", "1", "m", "1")


def test_plain_commit_sends_each_partitions_own_metadata_and_reports_a_failed_commit():
    consumer = FakeConsumer()
    plain = PlainCommit(consumer)
    assert plain.allows_quarantine and plain.held_messages == 0
    assert plain.commit({("t", 0): 5, ("t", 1): 7}, lambda tp: f"meta-{tp[1]}", asynchronous=True)
    assert consumer.commits == [([("t", 0, 5, "meta-0"), ("t", 1, 7, "meta-1")], True)]
    consumer.fail = True
    assert not plain.commit({("t", 0): 6}, lambda tp: "", asynchronous=False)
    assert plain.drop([("t", 0)]) == 0


def test_transactional_commit_holds_results_until_the_transaction_that_commits_them():
    rec = Recorder()
    tx = TransactionalCommit(FakeConsumer(), rec)
    assert not tx.allows_quarantine
    tp = ("t", 0)
    for off in (0, 1, 2):
        inf = _inflight(tp, off)
        tx.result_in(inf, _result(tp, off))
        tx.message_done(tp, off, inf)
    assert tx.held_messages == 3
    assert tx.commit({tp: 2}, lambda k: "m", asynchronous=True)
    assert rec.transactions == [(["0:0", "0:1"], {tp: 2})]
    assert tx.held_messages == 1
    assert tx.drop([tp]) == 1 and tx.held_messages == 0


class FakeEngine:
    def __init__(self) -> None:
        self.fatal: list[BaseException] = []
        self.commits: list[object] = []

    def report_fatal(self, exc: BaseException) -> None:
        self.fatal.append(exc)

    def on_commit(self, err, partitions) -> None:
        self.commits.append(err)


def test_hooks_keep_a_fatal_error_until_bind_and_bind_only_once():
    hooks = EngineHooks()
    hooks.on_commit(None, [])                 # before bind: nothing to tell
    first = RuntimeError("model warm-up failed")
    hooks.report_fatal(first)
    hooks.report_fatal(RuntimeError("second"))
    engine = FakeEngine()
    hooks.bind(engine)                         # type: ignore[arg-type]
    assert engine.fatal == [first]
    later = RuntimeError("client fatal")
    hooks.report_fatal(later)
    hooks.on_commit("err", [])
    assert engine.fatal == [first, later] and engine.commits == ["err"]
    with pytest.raises(RuntimeError, match="twice"):
        hooks.bind(engine)                     # type: ignore[arg-type]


def test_health_checks_read_only_the_published_snapshot():
    health = Health(build_metrics(CollectorRegistry()), group="g", ping_timeout_s=30, stall_after_s=60)
    health.models_ready = True
    assert health.ready() == (False, "no partitions assigned")
    health.publish(PollSnapshot(last_poll=0.0, assigned=(("t", 0),)))
    assert health.ready() == (True, "ready")
    ok, why = health.ping()
    assert not ok and "poll loop silent" in why      # the published poll time is long past
    health.publish(PollSnapshot(last_poll=time.time(), assigned=()))
    assert health.ping()[0] and health.ready() == (False, "no partitions assigned")
