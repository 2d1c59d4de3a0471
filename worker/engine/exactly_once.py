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

A transaction abandoned mid-call (``TransactionOutcomeUnknown``) either landed
or not, atomically; once a fresh producer has fenced it, the group's committed
offsets say which, and only then is anything written again.

Only the poll loop calls this (like the offset tracker).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from sidepath.core.errors import TransientSinkError
from sidepath.sinks.base import Result
from sidepath.sinks.kafka_transaction import TransactionalResults, TransactionOutcomeUnknown
from sidepath.worker.engine.offsets import TP

__all__ = ["HeldResults"]

log = logging.getLogger(__name__)


class HeldResults:
    """Finished results per partition and offset, until the transaction that commits them."""

    def __init__(self, transactions: TransactionalResults,
                 committed: Callable[[list[TP]], dict[TP, int | None]]) -> None:
        self.transactions, self.committed = transactions, committed
        self._held: dict[TP, dict[int, list[Result]]] = {}
        self._unsure: dict[TP, int] | None = None     # offsets of an abandoned transaction
        self.messages = 0

    def hold(self, tp: TP, offset: int, results: list[Result]) -> None:
        self._held.setdefault(tp, {})[offset] = results
        self.messages += 1

    def drop(self, tps: list[TP]) -> int:
        """Forget the held results of revoked or lost partitions; returns how many messages."""
        n = sum(len(self._held.pop(tp, {})) for tp in tps)
        self.messages -= n
        if self._unsure is not None:
            self._unsure = {tp: o for tp, o in self._unsure.items() if tp not in tps} or None
        return n

    def _release(self, offsets: dict[TP, int]) -> None:
        """The results below ``offsets`` are committed: forget them."""
        for tp, target in offsets.items():
            held = self._held.get(tp, {})
            for off in [o for o in held if o < target]:
                del held[off]
                self.messages -= 1

    def _settle_unsure(self) -> bool:
        """After an abandoned transaction: True once it is known whether it landed."""
        if self._unsure is None:
            return True
        try:
            self.transactions.ensure_open()          # the new producer has fenced the stuck one
            now = self.committed(list(self._unsure))
        except (TransientSinkError, KafkaException) as exc:
            log.warning("cannot settle the abandoned transaction yet: %s", exc)
            return False
        landed = all((now.get(tp) or -1) >= off for tp, off in self._unsure.items())
        log.warning("the abandoned transaction %s", "did commit" if landed else "was aborted; redoing it")
        if landed:
            self._release(self._unsure)
        self._unsure = None
        return True

    def commit(self, offsets: dict[TP, int], group_metadata: Any, metadata: str = "") -> bool:
        """One transaction: the results below each offset, and the offsets.  False when it was
        aborted (everything stays held and is tried again at the next commit)."""
        if not self._settle_unsure():
            return False
        results: list[Result] = []
        for tp, target in offsets.items():
            held = self._held.get(tp, {})
            for off in sorted(o for o in held if o < target):    # in offset order, as consumed
                results.extend(held[off])
        tps = [TopicPartition(t, p, o, metadata=metadata) for (t, p), o in offsets.items()]
        try:
            self.transactions.commit(results, tps, group_metadata)
        except TransactionOutcomeUnknown as exc:
            log.warning("%s", exc)
            self._unsure = dict(offsets)
            return False
        except TransientSinkError as exc:
            log.warning("%s", exc)
            return False
        self._release(offsets)
        return True
