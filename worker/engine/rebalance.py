"""The consumer's rebalance callbacks: assign, revoke, lose partitions.

They run inside ``consume()``, on the poll loop.  On assign: read the committed
offsets (and the crash quarantine's record in their metadata), start tracking,
apply ``--start-at``/``--from-beginning`` and ``--until-end`` to partitions seen
for the first time.  On revoke: wait up to ``engine.revoke_budget_s`` for what
is in flight, commit what is done, forget the rest (the next owner redoes it).
On loss: forget without committing.
"""
from __future__ import annotations

import logging
import time
from typing import Literal, Protocol, TypeAlias

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from sidepath.worker.config import EngineConfig
from sidepath.worker.engine.commit import CommitStrategy
from sidepath.worker.engine.commit_schedule import CommitSchedule
from sidepath.worker.engine.inflight_table import InflightTable
from sidepath.worker.engine.offsets import TP, OffsetTracker
from sidepath.worker.engine.quarantine import Quarantine
from sidepath.worker.engine.until_end import EndOffsets
from sidepath.worker.ops.health import Health
from sidepath.worker.ops.metrics import Metrics

__all__ = ["Rebalance", "StartAt", "names"]

log = logging.getLogger(__name__)

#: "beginning", an epoch-ms timestamp, or None (committed offsets / auto.offset.reset)
StartAt: TypeAlias = Literal["beginning"] | int | None


class PollLoop(Protocol):
    """What the callbacks use of the poll loop's engine (which imports this module)."""

    consumer: Consumer
    tracker: OffsetTracker
    table: InflightTable
    commits: CommitSchedule
    committer: CommitStrategy
    quarantine: Quarantine
    health: Health | None
    metrics: Metrics
    group: str
    limits: EngineConfig
    fatal: BaseException | None

    @property
    def paused(self) -> bool: ...

    def drain_completions(self, timeout_s: float) -> None: ...

    def publish(self) -> None: ...


class Rebalance:
    def __init__(self, engine: PollLoop, *, start: StartAt, ends: EndOffsets | None) -> None:
        """``ends``: where each partition stops (``--until-end``), recorded at its first assignment."""
        self.engine, self.start, self.ends = engine, start, ends
        self.seen: set[TP] = set()          # partitions assigned at least once
        self.assigned_once = False
        self.closing = False                # shutting down: a revoke commits what is done without waiting
        self.count = 0                      # assignments and revokes (for the summary)

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        e = self.engine
        self.count += 1
        e.metrics.rebalances.labels("assign").inc()
        committed: dict[TP, int | None] = {}
        committed_tps: list[TopicPartition] = []
        try:
            committed_tps = consumer.committed([TopicPartition(p.topic, p.partition) for p in partitions], timeout=10)
            committed = {(p.topic, p.partition): (p.offset if p.offset >= 0 else None) for p in committed_tps}
        except KafkaException as exc:
            log.warning("could not read committed offsets on assignment: %s", exc)
        for p in partitions:
            key = (p.topic, p.partition)
            e.tracker.assign(key, committed.get(key))
        e.publish()
        fresh = [p for p in partitions if (p.topic, p.partition) not in self.seen]
        if self.start is not None and fresh:
            self._apply_start(consumer, fresh)
        if self.ends is not None:
            self.ends.record(consumer, fresh, start_given=self.start is not None, committed=committed)
        self.seen.update((p.topic, p.partition) for p in partitions)
        consumer.incremental_assign(partitions)
        if e.paused:
            consumer.pause(partitions)   # re-apply backpressure to new partitions
        self.assigned_once = True
        log.info("assigned %s", names(partitions))
        e.quarantine.assigned(committed_tps)

    def _apply_start(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.start is None:
            return
        if self.start == "beginning":
            for p in partitions:
                p.offset = OFFSET_BEGINNING
            return
        query = [TopicPartition(p.topic, p.partition, self.start) for p in partitions]
        found = {(t.topic, t.partition): t.offset for t in consumer.offsets_for_times(query, timeout=10)}
        for p in partitions:
            off = found.get((p.topic, p.partition), -1)
            if off is None or off < 0:   # no message at or after the time: start at the end
                _lo, off = consumer.get_watermark_offsets(p, timeout=10)
            p.offset = off

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        e = self.engine
        self.count += 1
        e.metrics.rebalances.labels("revoke").inc()
        keys = [(p.topic, p.partition) for p in partitions]
        # while shutting down the grace period has been spent already: commit what is done, no more waiting
        budget = 0.0 if self.closing else e.limits.revoke_budget_s
        deadline = time.monotonic() + budget
        q, tracker = e.quarantine, e.tracker
        while any(tracker.pending(k) - q.held_count(k) for k in keys) and time.monotonic() < deadline \
                and e.fatal is None:
            e.drain_completions(timeout_s=0.05)
        e.commits.commit(asynchronous=False, only=keys)
        q.revoked(keys)         # the suspect range (if any) stays in the metadata for the next owner
        # and what is done but not committed (held for a transaction): the next owner redoes them
        dropped = sum(tracker.revoke(k) for k in keys) + e.committer.drop(keys)
        self.forget(keys)
        e.publish()
        if dropped:
            log.warning("revoked %s with %d unfinished messages (the next owner redoes them)",
                        names(partitions), dropped)
        else:
            log.info("revoked %s", names(partitions))
        consumer.incremental_unassign(partitions)

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        e = self.engine
        e.metrics.rebalances.labels("lost").inc()
        keys = [(p.topic, p.partition) for p in partitions]
        dropped = sum(e.tracker.revoke(k) for k in keys) + e.committer.drop(keys)
        self.forget(keys)
        e.publish()
        log.warning("lost %s (%d unfinished messages dropped, nothing committed)", names(partitions), dropped)
        consumer.incremental_unassign(partitions)

    def forget(self, keys: list[TP]) -> None:
        """Nothing of these partitions is ours any more: their in-flight messages, metrics, records."""
        e = self.engine
        e.quarantine.forget(keys)
        if e.health is not None:
            e.health.forget(keys)
        for k in keys:
            e.metrics.forget_partition(k[0], k[1], e.group)
            e.table.drop(k)


def names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
