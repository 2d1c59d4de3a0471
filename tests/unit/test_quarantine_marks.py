"""Crash quarantine: ``hi`` marked ahead with headroom (pure logic, with a small fake consumer).

The invariant the mark keeps: no message starts unless its offset lies below the ``hi`` of the
last successful commit of its partition, so a crash's suspect range always covers it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from sidepath.sinks.base import SourceRef
from sidepath.worker.engine.offsets import OffsetTracker
from sidepath.worker.engine.quarantine import Quarantine
from sidepath.worker.engine.quarantine_record import next_high, parse_record

TOPIC = "t"


@dataclass
class FakeConsumer:
    log_end: int
    commits: list[list[TopicPartition]] = field(default_factory=list)
    ends: dict[int, int] = field(default_factory=dict)      # per partition, where not ``log_end``

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        assert cached, "the mark must not ask the broker"
        return 0, self.ends.get(tp.partition, self.log_end)

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
    (10, 100, -1001, 11),       # log end not known: no headroom
    (10, 100, 5, 11),           # a stale log end never marks the message itself out
])
def test_next_high(offset, headroom, log_end, want):
    assert next_high(offset, headroom=headroom, log_end=log_end) == want


def test_one_marking_commit_covers_the_headroom():
    consumer = FakeConsumer(log_end=100_000)
    q = Quarantine(_engine(consumer, 1), max_crashes=2, mark_ahead=1000)
    _run(q, consumer, messages=5000, batch=20)
    assert len(consumer.commits) == 5 == q.marks            # about one per 1,000 messages, not one per batch
    assert consumer.committed_hi(0) == 5100          # marked past the batches ending at 19, 1039, 2059, ...


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
    assert [consumer.committed_hi(p) for p in range(4)] == [2200] * 4   # past 49, 599, 1149, 1699
    assert len(consumer.commits) == 4                       # one commit marks all four partitions


def test_a_clean_stop_clears_the_mark():
    consumer = FakeConsumer(log_end=100_000)
    q = Quarantine(_engine(consumer, 1), max_crashes=2, mark_ahead=500)
    _run(q, consumer, messages=100, batch=10)
    q.close()
    assert consumer.committed_hi(0) is None


def test_a_partition_with_half_its_headroom_used_is_marked_along():
    """Partition 1 runs 300 behind partition 0: when 0 passes its mark, 1 (more than half of its
    headroom used) is marked in the same commit instead of needing its own soon after."""
    consumer = FakeConsumer(log_end=100_000)
    q = Quarantine(_engine(consumer, 2), max_crashes=2, mark_ahead=1000)
    eng = q.engine
    for first in range(0, 3000, 100):
        taken = []
        for p, lag in ((0, 0), (1, 300)):
            for off in range(max(0, first - lag), max(0, first + 100 - lag)):
                eng.tracker.add((TOPIC, p), off)
                taken.append(FakeInflight(SourceRef(TOPIC, p, off)))
        assert q.before_start(taken)
        for inf in taken:
            assert inf.source.offset < (consumer.committed_hi(inf.source.partition) or 0)
    # p0 at 0, p1 at its first message (300 later), then both together: at 1100 (p1 at 899, its mark
    # at 1100 more than half used) and at 2200; marked alone, p1 would have needed 3 commits of its own
    assert [len(c) for c in consumer.commits] == [1, 1, 2, 2], consumer.commits


class FlakyConsumer(FakeConsumer):
    """Refuses the next ``fail`` commits (as during a rebalance)."""

    fail = 0

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        if self.fail:
            self.fail -= 1
            raise KafkaException(KafkaError(KafkaError.REBALANCE_IN_PROGRESS))
        super().commit(offsets=offsets, asynchronous=asynchronous)


def test_a_refused_marking_commit_is_retried_before_the_messages_start():
    consumer = FlakyConsumer(log_end=100_000)
    eng = _engine(consumer, 1)
    eng.metrics = SimpleNamespace(commit_failures=SimpleNamespace(inc=lambda: None))
    q = Quarantine(eng, max_crashes=2, mark_ahead=1000)
    taken = [FakeInflight(SourceRef(TOPIC, 0, off)) for off in range(10)]
    for inf in taken:
        eng.tracker.add((TOPIC, 0), inf.source.offset)
    consumer.fail = 1
    assert not q.before_start(taken)              # not durable: the engine parks them
    assert consumer.committed_hi(0) is None
    assert q.before_start(taken)                  # the retry (no new message passes the mark)
    assert consumer.committed_hi(0) == 1010       # ... commits the mark before they start


def test_an_idle_partition_at_the_log_end_is_not_marked_again():
    """Partition 1 stops at the log end (its mark stays there); partition 0 goes on: its marks do not
    rewrite partition 1's unchanged record each time."""
    consumer = FakeConsumer(log_end=100)
    q = Quarantine(_engine(consumer, 2), max_crashes=2, mark_ahead=1000)
    _run_from(q, consumer, first=0, count=100, partitions=2)        # both partitions up to the end
    consumer.ends[1] = 100
    consumer.log_end = 10_000                                       # new messages: partition 0 only
    eng = q.engine
    for first in range(100, 5000, 100):
        taken = [FakeInflight(SourceRef(TOPIC, 0, off)) for off in range(first, first + 100)]
        for inf in taken:
            eng.tracker.add((TOPIC, 0), inf.source.offset)
        assert q.before_start(taken)
    later = consumer.commits[1:]
    assert later and all([tp.partition for tp in c] == [0] for c in later), later


def test_parked_messages_start_when_their_record_commits_without_more_messages():
    """Parked messages count as in flight: at the in-flight cap the poll loop takes nothing more, so
    their retry must not wait for new messages (it did, and a worker stalled for good after a
    rebalance refused the commit: tests/integration/test_engine_delivery.py saw 40 never finish)."""
    consumer = FlakyConsumer(log_end=100_000)
    eng = _engine(consumer, 1)
    eng.metrics = SimpleNamespace(commit_failures=SimpleNamespace(inc=lambda: None))
    submitted: list[Any] = []
    eng.decode_stage = SimpleNamespace(inline=True, submit=submitted.extend)
    eng.inflight = {}
    q = Quarantine(eng, max_crashes=2, mark_ahead=1000)
    taken = [FakeInflight(SourceRef(TOPIC, 0, off)) for off in range(40)]
    for inf in taken:
        eng.tracker.add((TOPIC, 0), inf.source.offset)
        eng.inflight[inf.source] = inf
    consumer.fail = 1
    q.start(taken)
    assert submitted == [] and q.parked == taken        # refused: parked, not started
    q.retry_parked()                                     # the poll loop's next turn, nothing new taken
    assert submitted == taken and q.parked == []
    assert consumer.committed_hi(0) == 1040         # the last of them (39) + 1000 headroom, exclusive
