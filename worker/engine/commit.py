"""How the poll loop commits: one strategy, plain or transactional.

The poll loop decides *what* may be committed (per partition, the lowest offset
not yet done: ``OffsetTracker.committable``) and *when* (timer, count, revoke,
shutdown).  The strategy decides *how*:

- ``PlainCommit``: a result is durable once the sink writer reports it, so a
  commit is just the offsets (with the crash quarantine's record in their metadata);
- ``TransactionalCommit`` (exactly-once, ``worker/engine/exactly_once.py``): a result
  is only *ready* when reported; it is held until a Kafka transaction writes it
  together with the offsets above it.

Only the poll loop calls a strategy (like the offset tracker).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from confluent_kafka import Consumer, KafkaException, TopicPartition

from sidepath.sinks.base import Result
from sidepath.sinks.kafka_transaction import TransactionalResults
from sidepath.worker.engine.exactly_once import HeldResults
from sidepath.worker.engine.inflight import Inflight
from sidepath.worker.engine.offsets import TP

__all__ = ["CommitStrategy", "PlainCommit", "TransactionalCommit", "committed_offsets"]

log = logging.getLogger(__name__)

#: a partition's commit metadata (the commit time, plus the crash quarantine's record)
Metadata = Callable[[TP], str]


class CommitStrategy(Protocol):
    #: whether the crash quarantine may commit on its own (not where offsets move only in transactions)
    allows_quarantine: bool

    @property
    def held_messages(self) -> int:
        """Messages finished but not yet durable (they count against the in-flight cap)."""

    def result_in(self, inf: Inflight, result: Result) -> None:
        """One model's result for ``inf`` has come in."""

    def message_done(self, tp: TP, offset: int, inf: Inflight) -> None:
        """Every model's result for ``inf`` is in (and its partition still ours)."""

    def commit(self, offsets: dict[TP, int], metadata: Metadata, *, asynchronous: bool) -> bool:
        """Commit ``offsets``; False when it did not land (tried again at the next commit).
        May raise FatalError."""

    def drop(self, tps: list[TP]) -> int:
        """Partitions revoked or lost: forget what is held for them; returns how many messages."""


def committed_offsets(consumer: Consumer, keys: list[TP]) -> dict[TP, int | None]:
    """The group's committed offsets (raises KafkaException when the broker cannot say)."""
    parts = consumer.committed([TopicPartition(t, p) for t, p in keys], timeout=10)
    return {(p.topic, p.partition): (p.offset if p.offset >= 0 else None) for p in parts}


class PlainCommit:
    """At least once: the sink writer has written a result before it is reported, so commit the offsets."""

    allows_quarantine = True
    held_messages = 0

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer

    def result_in(self, inf: Inflight, result: Result) -> None:
        pass

    def message_done(self, tp: TP, offset: int, inf: Inflight) -> None:
        pass

    def commit(self, offsets: dict[TP, int], metadata: Metadata, *, asynchronous: bool) -> bool:
        tps = [TopicPartition(t, p, o, metadata=metadata((t, p))) for (t, p), o in offsets.items()]
        try:
            if asynchronous:        # two calls: the client's type stubs overload on the literal
                self.consumer.commit(offsets=tps, asynchronous=True)
            else:
                self.consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            log.warning("commit failed (will retry): %s", exc.args[0])
            return False
        return True

    def drop(self, tps: list[TP]) -> int:
        return 0


class TransactionalCommit:
    """Exactly once: results are held per partition and written in the transaction that commits them."""

    allows_quarantine = False

    def __init__(self, consumer: Consumer, transactions: TransactionalResults) -> None:
        self.consumer = consumer
        self.held = HeldResults(transactions, lambda keys: committed_offsets(consumer, keys))

    @property
    def held_messages(self) -> int:
        return self.held.messages

    def result_in(self, inf: Inflight, result: Result) -> None:
        if inf.held is None:
            inf.held = []
        inf.held.append(result)

    def message_done(self, tp: TP, offset: int, inf: Inflight) -> None:
        self.held.hold(tp, offset, inf.held or [])

    def commit(self, offsets: dict[TP, int], metadata: Metadata, *, asynchronous: bool) -> bool:
        # a transaction is always synchronous; the crash quarantine is off, so one metadata fits all
        return self.held.commit(offsets, self.consumer.consumer_group_metadata(), metadata(next(iter(offsets))))

    def drop(self, tps: list[TP]) -> int:
        return self.held.drop(tps)
