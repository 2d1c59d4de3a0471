"""When and what the poll loop commits.

What: per partition, the lowest offset not yet done, or, where nothing is pending,
the consumer's position (for ``--until-end`` never past the end offsets taken at
start): never past an unwritten result.  When: after ``engine.commit_every``
finished messages or ``engine.commit_interval_s`` seconds (asynchronously), and
synchronously on a revoke and at shutdown.  How is the commit strategy's
(``worker/engine/commit.py``).  Only the poll loop uses it, like the offset tracker.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from sidepath.core.errors import FatalError
from sidepath.worker.config import EngineConfig
from sidepath.worker.engine.commit import CommitStrategy
from sidepath.worker.engine.offsets import TP, OffsetTracker
from sidepath.worker.engine.until_end import EndOffsets
from sidepath.worker.ops.lag_figures import commit_metadata
from sidepath.worker.ops.metrics import Metrics

__all__ = ["CommitSchedule"]

log = logging.getLogger(__name__)


class CommitSchedule:
    def __init__(self, consumer: Consumer, tracker: OffsetTracker, strategy: CommitStrategy, *,
                 limits: EngineConfig, metrics: Metrics, ends: EndOffsets | None,
                 metadata: Callable[[TP, str], str], on_fatal: Callable[[BaseException], None]) -> None:
        """``ends``: the end offsets of an ``--until-end`` run (None otherwise); ``metadata``: a
        partition's commit metadata from the engine's (the crash quarantine adds its record)."""
        self.consumer, self.tracker, self.strategy = consumer, tracker, strategy
        self.limits, self.metrics, self.ends = limits, metrics, ends
        self.metadata, self.on_fatal = metadata, on_fatal
        self.commits = 0                    # that landed (for the summary)
        self._done_since = 0
        self._last = time.monotonic()

    def finished(self, n: int) -> None:
        """``n`` more messages are done (their results durable or, with exactly-once, ready)."""
        self._done_since += n

    def due(self) -> bool:
        return (self._done_since >= self.limits.commit_every
                or time.monotonic() - self._last >= self.limits.commit_interval_s)

    def positions(self, keys: list[TP]) -> dict[TP, int]:
        """The consumer's position of each partition; {} when the client cannot say."""
        try:
            pos = {(p.topic, p.partition): p.offset
                   for p in self.consumer.position([TopicPartition(t, q) for t, q in keys])}
        except KafkaException:
            return {}
        return self.ends.clamp(pos) if self.ends is not None else pos

    def commit(self, *, asynchronous: bool, only: list[TP] | None = None) -> None:
        """Commit what may be committed now (of ``only``'s partitions, when given)."""
        self._last = time.monotonic()
        tracker = self.tracker
        keys = only if only is not None else tracker.partitions()
        drained = [k for k in keys if tracker.pending(k) == 0]
        offsets = tracker.committable(self.positions(drained) if drained else None)
        if only is not None:
            offsets = {k: v for k, v in offsets.items() if k in only}
        if not offsets:
            return
        meta, metadata = commit_metadata(), self.metadata
        try:
            landed = self.strategy.commit(offsets, lambda tp: metadata(tp, meta), asynchronous=asynchronous)
        except FatalError as exc:
            self.on_fatal(exc)
            return
        if not landed:
            self.metrics.commit_failures.inc()
            return
        self.metrics.commits.inc()
        self.commits += 1
        for tp, o in offsets.items():
            tracker.mark_committed(tp, o)
        self._done_since = 0

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's commit callback (async commits; inside consume(), on the poll loop): count failures."""
        failed = [p for p in partitions if err is not None or p.error is not None]
        if failed:
            self.metrics.commit_failures.inc()
            log.warning("async commit failed (%s); committing again next round", err or failed[0].error)
        for p in failed:   # e.g. ILLEGAL_GENERATION during a rebalance: never leave it uncommitted
            self.tracker.commit_failed((p.topic, p.partition), p.offset)
