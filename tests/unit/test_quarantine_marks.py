"""Crash quarantine: ``hi`` marked ahead with headroom (pure logic, with a small fake consumer).

The invariant the mark keeps: no message starts unless its offset lies below the ``hi`` of the
last successful commit of its partition, so a crash's suspect range always covers it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from sidepath.sinks.base import SourceRef
from sidepath.worker.engine.offsets import OffsetTracker
from sidepath.worker.engine.quarantine import Quarantine
from sidepath.worker.engine.quarantine_record import next_high, parse_record

TOPIC = "t"


@dataclass
class FakeConsumer:
    log_end: int
    commits: list[list[TopicPartition]] = field(default_factory=list)

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        assert cached, "the mark must not ask the broker"
        return 0, self.log_end

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert not asynchronous
        self.commits.append(offsets)

    def committed_hi(self, partition: int) -> int | None:
        for offsets in reversed(self.commits):
            for tp in offsets:
                if tp.partition == partition:
                    return parse_record(tp.metadata).hi
        return None


@dataclass
class FakeInflight:
    source: SourceRef

    @property
    def tp(self) -> tuple[str, int]:
        return self.source.topic, self.source.partition


def _engine(consumer: FakeConsumer, partitions: int) -> Any:
    tracker = OffsetTracker()
    for p in range(partitions):
        tracker.assign((TOPIC, p), committed=0)
    return SimpleNamespace(consumer=consumer, tracker=tracker, limits=SimpleNamespace(max_inflight_messages=64),
                           metrics=SimpleNamespace(commit_failures=None), decode_stage=SimpleNamespace(inline=True))


def _run(q: Quarantine, consumer: FakeConsumer, *, messages: int, batch: int, partitions: int = 1) -> None:
    """Start ``messages`` per partition in batches, checking the invariant before each start."""
    eng = q.engine
    for first in range(0, messages, batch):
        taken = []
        for p in range(partitions):
            for off in range(first, min(first + batch, messages)):
                eng.tracker.add((TOPIC, p), off)
                taken.append(FakeInflight(SourceRef(TOPIC, p, off)))
        assert q.before_start(taken)
        for inf in taken:
            hi = consumer.committed_hi(inf.source.partition)
            assert hi is not None and inf.source.offset < hi, (inf.source, hi)
            assert hi <= consumer.log_end


@pytest.mark.parametrize(("offset", "headroom", "log_end", "want"), [
    (10, 0, 1000, 11),          # no headroom: just past the message (the old behaviour)
    (10, 100, 1000, 111),
    (10, 100, 50, 50),          # never past the fetched log end
    (10, 100, -1001, 111),      # log end not known yet: the headroom alone
    (10, 100, 5, 11),           # a stale log end never marks the message itself out
])
def test_next_high(offset, headroom, log_end, want):
    assert next_high(offset, headroom=headroom, log_end=log_end) == want


def test_one_marking_commit_covers_the_headroom():
    consumer = FakeConsumer(log_end=100_000)
    q = Quarantine(_engine(consumer, 1), max_crashes=2, mark_ahead=1000)
    _run(q, consumer, messages=5000, batch=20)
    assert len(consumer.commits) == 5 == q.marks            # about one per 1,000 messages, not one per batch
    assert consumer.committed_hi(0) == 5005                 # marked at 0, 1001, 2002, 3003, 4004


def test_without_headroom_every_batch_commits():
    consumer = FakeConsumer(log_end=100_000)
    q = Quarantine(_engine(consumer, 1), max_crashes=2, mark_ahead=0)
    _run(q, consumer, messages=1000, batch=20)
    assert len(consumer.commits) == 50
    assert consumer.committed_hi(0) == 1000


def test_the_default_headroom_is_the_in_flight_cap():
    q = Quarantine(_engine(FakeConsumer(log_end=10), 1), max_crashes=2)
    assert q.mark_ahead == 64


def test_at_the_log_end_the_mark_stays_within_the_log():
    """A consumer at the tail: every mark stops at the fetched end, so the next owner's suspect
    range never waits for messages that do not exist yet."""
    consumer = FakeConsumer(log_end=0)
    q = Quarantine(_engine(consumer, 2), max_crashes=2, mark_ahead=1000)
    for step in range(10):
        consumer.log_end = (step + 1) * 30              # 30 new messages per fetch
        _run_from(q, consumer, first=step * 30, count=30, partitions=2)
    assert consumer.committed_hi(0) == consumer.committed_hi(1) == 300


def _run_from(q: Quarantine, consumer: FakeConsumer, *, first: int, count: int, partitions: int) -> None:
    taken = []
    for p in range(partitions):
        for off in range(first, first + count):
            q.engine.tracker.add((TOPIC, p), off)
            taken.append(FakeInflight(SourceRef(TOPIC, p, off)))
    assert q.before_start(taken)
    for inf in taken:
        hi = consumer.committed_hi(inf.source.partition)
        assert hi is not None and inf.source.offset < hi <= consumer.log_end


def test_the_mark_is_committed_for_every_partition_that_passes_it():
    consumer = FakeConsumer(log_end=100_000)
    q = Quarantine(_engine(consumer, 4), max_crashes=2, mark_ahead=500)
    _run(q, consumer, messages=2000, batch=50, partitions=4)
    assert [consumer.committed_hi(p) for p in range(4)] == [2004] * 4   # marked at 0, 501, 1002, 1503
    assert len(consumer.commits) == 4                       # the partitions pass their marks together


def test_a_clean_stop_clears_the_mark():
    consumer = FakeConsumer(log_end=100_000)
    q = Quarantine(_engine(consumer, 1), max_crashes=2, mark_ahead=500)
    _run(q, consumer, messages=100, batch=10)
    q.close()
    assert consumer.committed_hi(0) is None
