"""Exactly-once Kafka-to-Kafka: which results go into which transaction.

Results finish out of order, but a consumer group commits one offset per
partition: "everything below this is done".  A transaction that carried a result
from above its committed offset would, after a crash, be followed by the
restarted worker producing that result again.  So finished results are held per
partition, and each transaction carries exactly the results of the offsets it
commits: for every partition, those below the lowest offset still unfinished
(``OffsetTracker.committable``).  The rest wait for a later transaction.

After a revoke or a lost partition, its held results are dropped: they were
never visible, and the new owner starts from the committed offset and redoes
them.  Dead letters are not part of the transaction: the sink writer writes
them before a message counts as finished, as in the default mode, so a crash can
repeat a dead letter but never lose one.

Only the poll loop calls this (like the offset tracker).
"""
from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import TopicPartition

from sidepath.sinks.base import Result
from sidepath.sinks.kafka_transaction import TransactionalResults
from sidepath.worker.errors import TransientSinkError
from sidepath.worker.offsets import TP

__all__ = ["HeldResults"]

log = logging.getLogger(__name__)


class HeldResults:
    """Finished results per partition and offset, until the transaction that commits them."""

    def __init__(self, transactions: TransactionalResults) -> None:
        self.transactions = transactions
        self._held: dict[TP, dict[int, list[Result]]] = {}
        self.messages = 0

    def hold(self, tp: TP, offset: int, results: list[Result]) -> None:
        self._held.setdefault(tp, {})[offset] = results
        self.messages += 1

    def drop(self, tps: list[TP]) -> int:
        """Forget the held results of revoked or lost partitions; returns how many messages."""
        n = sum(len(self._held.pop(tp, {})) for tp in tps)
        self.messages -= n
        return n

    def commit(self, offsets: dict[TP, int], group_metadata: Any, metadata: str = "") -> bool:
        """One transaction: the results below each offset, and the offsets.  False when it was
        aborted (everything stays held and is tried again at the next commit)."""
        taken: list[tuple[TP, int]] = []
        results: list[Result] = []
        for tp, target in offsets.items():
            held = self._held.get(tp, {})
            for off in sorted(o for o in held if o < target):    # in offset order, as consumed
                taken.append((tp, off))
                results.extend(held[off])
        tps = [TopicPartition(t, p, o, metadata=metadata) for (t, p), o in offsets.items()]
        try:
            self.transactions.commit(results, tps, group_metadata)
        except TransientSinkError as exc:
            log.warning("%s", exc)
            return False
        for tp, off in taken:
            del self._held[tp][off]
        self.messages -= len(taken)
        return True
