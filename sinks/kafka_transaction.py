"""Kafka transactions for exactly-once Kafka-to-Kafka (``sinks.exactly_once = true``).

One ``TransactionalResults`` per worker process owns a transactional producer.
``commit(results, offsets, group_metadata)`` writes the results to every result
topic and the source offsets to the consumer group in one transaction: both
become visible together (to ``read_committed`` readers) or not at all.  Which
results go into which transaction is the engine's business
(``worker/engine/exactly_once.py``); this module only makes one transaction work.

Failures: any error inside a transaction aborts it and raises
``TransientSinkError``; nothing of it is visible, so the engine simply tries
the same results again at the next commit.  A transaction call that does not
return within ``DEADLINE_S`` (librdkafka can wait indefinitely in
``send_offsets_to_transaction`` when the broker restarts under it; a fresh
producer works at once) is abandoned on its thread and the producer replaced:
``init_transactions`` with the same ``transactional.id`` ends the stuck
transaction one way or the other, and ``TransactionOutcomeUnknown`` tells the
engine to read the group's committed offsets to learn which.  After an abort the producer is
replaced by a fresh one with the same ``transactional.id`` (librdkafka's
idempotent state after a refused batch is not reusable: it answers
OUT_OF_ORDER_SEQUENCE_NUMBER), which also fences any older instance.
A result too large for a topic would make every retry fail, so it is found
before the transaction: as a sink in the sink writer, ``write`` only checks
sizes and returns such results as ``Rejected`` (they become error rows + dead
letters, as with the plain Kafka sink).  It writes nothing: the engine holds
results until their transaction.
"""
from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]  # exported, not in __all__

from sidepath.core.errors import ConfigError, FatalError, TransientSinkError
from sidepath.core.logs import librdkafka_logging
from sidepath.core.masking import mask_url
from sidepath.sinks.base import Rejected, Result
from sidepath.sinks.kafka import producer_config_of_url, result_message, settings_refused
from sidepath.sinks.kafka_delivery import Delivery, OutMessage, describe
from sidepath.sinks.registry import expand_url

__all__ = ["TransactionalResults", "TransactionOutcomeUnknown", "default_transactional_id"]

log = logging.getLogger(__name__)

#: room for the record batch header and record framing around one message
_BATCH_OVERHEAD = 512
_BROKER_DEFAULT_MAX = 1048588
#: a transaction takes milliseconds; one call blocked this long is stuck (see the module docstring)
DEADLINE_S = 10.0
_FENCED = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED)


class TransactionOutcomeUnknown(TransientSinkError):
    """A transaction was abandoned mid-call; the group's committed offsets say whether it landed."""


_instances = itertools.count(1)


def default_transactional_id(group: str) -> str:
    """Unique per live worker, stable across restarts of one container (same host name, pid and
    start order): a restarted worker's ``init_transactions`` then aborts what its predecessor left
    open at once instead of after ``transaction.timeout.ms``.  A second worker in one process
    (tests, embedding) gets ``-2``, and so on: two live producers with one id fence each other."""
    n = next(_instances)
    return f"sidepath-{group}-{socket.gethostname()}-{os.getpid()}" + (f"-{n}" if n > 1 else "")


class TransactionalResults:
    """Results to every ``kafka://`` result topic, with the source offsets, in one transaction."""

    key = "sinks.urls"

    def __init__(self, urls: Sequence[str], *, transactional_id: str) -> None:
        expanded = [expand_url(u, key=self.key) for u in urls]
        self.url = ", ".join(mask_url(u) for u in urls)
        parsed = [producer_config_of_url(u, key=self.key) for u in expanded]
        base, _topic, self.timeout_s = parsed[0]
        self.topics = [t for _c, t, _s in parsed]
        self.transactional_id = transactional_id
        # the first URL's options (compression, security, transaction.timeout.ms) drive the one
        # producer; acks=all and idempotence are fixed there already
        txn_timeout_ms = int(base.get("transaction.timeout.ms", 60_000))
        self._config = {**base, "client.id": "sidepath-transactions", "transactional.id": transactional_id,
                        "transaction.timeout.ms": txn_timeout_ms,
                        # librdkafka: a message may not outlive its transaction
                        "message.timeout.ms": min(int(base.get("message.timeout.ms", 300_000)), txn_timeout_ms)}
        self.limits = self._topic_limits()
        self._producer: Producer | None = None
        self._fenced: FatalError | None = None     # set once another live process took the id
        self._open()

    # ---- set-up ------------------------------------------------------------------------
    def _topic_limits(self) -> dict[str, int]:
        """max.message.bytes per result topic, read from the broker (one refused message fails a
        whole transaction, so oversized results are refused before it instead)."""
        admin_conf = {k: v for k, v in self._config.items()
                      if k in ("bootstrap.servers",) or k.startswith(("security.", "sasl.", "ssl."))}
        admin = AdminClient({**librdkafka_logging(), **admin_conf})
        local_max = int(self._config.get("message.max.bytes", 1_000_000))   # librdkafka refuses larger
        limits = {}
        for topic in self.topics:
            res = ConfigResource(ConfigResource.Type.TOPIC, topic)
            try:
                entries = admin.describe_configs([res], request_timeout=self.timeout_s)[res].result(self.timeout_s)
                limits[topic] = min(local_max, int(entries["max.message.bytes"].value))
            except KafkaException as exc:
                err = exc.args[0]
                if err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
                    raise ConfigError(self.key, self.url, f"result topic {topic!r} does not exist; create it "
                                      "(exactly-once needs the topic before the first transaction)") from None
                raise FatalError(f"exactly-once sink {self.url}: cannot read topic {topic!r}: {err.str()}") from None
            except Exception:  # noqa: BLE001 - timeouts: fall back to the broker default
                limits[topic] = min(local_max, _BROKER_DEFAULT_MAX)
        return limits

    def _open(self) -> None:
        try:
            # failures only: see kafka_delivery.py for what a report per success costs
            producer = Producer({**librdkafka_logging(), **self._config, "delivery.report.only.error": True})
        except KafkaException as exc:
            raise settings_refused(self.key, self.url, exc) from None
        try:
            producer.init_transactions(min(self.timeout_s, DEADLINE_S))
        except KafkaException as exc:
            err = exc.args[0]
            if err.retriable() or err.code() in (KafkaError._TIMED_OUT, KafkaError._TRANSPORT,
                                                 KafkaError._ALL_BROKERS_DOWN):
                raise TransientSinkError(f"exactly-once sink {self.url}: no answer from the transaction "
                                         f"coordinator ({err.name()}); check that the brokers in the URL "
                                         "are up and reachable") from None
            raise FatalError(f"exactly-once sink {self.url}: the broker refused transactions ({err.str()}); "
                             "it needs transaction.state.log.replication.factor <= the number of brokers "
                             "and the TRANSACTIONAL_ID ACL for this transactional.id") from None
        self._producer = producer

    def _reopen(self) -> None:
        old, self._producer = self._producer, None
        if old is not None:
            try:
                old.purge()
                old.flush(0)
            except KafkaException as exc:        # a producer in a fatal state refuses even this
                log.debug("purging the old producer: %s", exc.args[0])
        self._open()

    # ---- as a sink in the sink writer: size checks only -----------------------------------
    def write(self, results: Sequence[Result]) -> Sequence[Rejected]:
        """Nothing is written here; results too large for a topic come back as ``Rejected``."""
        rejected = []
        for r in results:
            m = result_message(r)
            size = len(m.value or b"") + len(m.key or b"") + sum(len(k) + len(v) for k, v in m.headers)
            topic = next((t for t in self.topics if size + _BATCH_OVERHEAD > self.limits[t]), None)
            if topic is not None:
                rejected.append(Rejected(r, f"result of {size} bytes is too large for topic {topic!r} "
                                            f"(max.message.bytes={self.limits[topic]}); raise it or make the "
                                            "results smaller", "KafkaError.MSG_SIZE_TOO_LARGE"))
        return rejected

    # ---- the transaction ----------------------------------------------------------------
    def ensure_open(self) -> None:
        """A usable producer (after an abandoned transaction: one that has fenced it)."""
        if self._fenced is not None:
            raise self._fenced          # never open again: that would fence the other process in turn
        if self._producer is None:
            self._open()

    def commit(self, results: Sequence[Result], offsets: Sequence[TopicPartition], group_metadata: Any) -> None:
        """Write ``results`` and commit ``offsets`` for the group, atomically."""
        self.ensure_open()
        p = self._producer
        assert p is not None
        outcome: list[BaseException | None] = []
        t = threading.Thread(target=self._attempt, args=(p, results, offsets, group_metadata, outcome),
                             name="kafka-transaction", daemon=True)
        t.start()
        t.join(DEADLINE_S)
        if t.is_alive():
            self._producer = None       # left to its stuck thread, never touched again
            log.warning("exactly-once sink %s: a transaction call has not returned in %.0f s; replacing the "
                        "producer (its transactional.id fences the stuck one)", self.url, DEADLINE_S)
            raise TransactionOutcomeUnknown(f"exactly-once sink {self.url}: transaction abandoned after "
                                            f"{DEADLINE_S:.0f} s; its outcome is read from the committed offsets")
        exc = outcome[0]
        if isinstance(exc, KafkaException) and exc.args[0].code() in _FENCED:
            # not a stuck predecessor (that is what a restart or the deadline above fences): another
            # live process uses this transactional.id, and taking it back would fence it in turn
            self._producer = None
            self._fenced = FatalError(f"exactly-once sink {self.url}: another process uses transactional.id "
                                      f"{self.transactional_id!r} ({exc.args[0].str()}); give every worker its "
                                      "own sinks.transactional_id, or leave it empty for a unique default")
            raise self._fenced
        if isinstance(exc, KafkaException):
            self._abort(p)
            raise TransientSinkError(f"exactly-once sink {self.url}: transaction aborted "
                                     f"({describe(exc.args[0], self.topics[0])}); its results and offsets are "
                                     "tried again") from None
        if exc is not None:
            raise exc

    def _attempt(self, p: Producer, results: Sequence[Result], offsets: Sequence[TopicPartition],
                 group_metadata: Any, outcome: list[BaseException | None]) -> None:
        try:
            self._transaction(p, results, offsets, group_metadata)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome.append(exc)

    def _transaction(self, p: Producer, results: Sequence[Result], offsets: Sequence[TopicPartition],
                     group_metadata: Any) -> None:
        """One transaction on ``p``; raises KafkaException (handled on the caller's thread)."""
        deliveries: list[Delivery] = []
        p.begin_transaction()
        for r in results:
            m: OutMessage = result_message(r)
            for topic in self.topics:
                d = Delivery()
                deliveries.append(d)
                self._produce(p, topic, m, d)
        failed = next((d.error for d in deliveries if d.error is not None), None)
        if failed is not None:
            raise KafkaException(failed)
        if offsets:
            p.send_offsets_to_transaction(list(offsets), group_metadata, self.timeout_s)
        self._commit_transaction(p)

    @staticmethod
    def _produce(p: Producer, topic: str, m: OutMessage, d: Delivery) -> None:
        while True:
            try:
                p.produce(topic, m.value, m.key, headers=m.headers,  # type: ignore[arg-type]  # bytes values: a list is invariant
                          on_delivery=d.report)
                return
            except BufferError:             # local queue full: serve reports to drain it
                p.poll(0.1)

    def _commit_transaction(self, p: Producer) -> None:
        for _ in range(3):
            try:
                p.commit_transaction(self.timeout_s)
                return
            except KafkaException as exc:
                err = exc.args[0]
                if not err.retriable() or err.txn_requires_abort() or err.fatal():
                    raise
                log.warning("committing the transaction timed out (%s); trying again", err.str())
        p.commit_transaction(self.timeout_s)

    def _abort(self, p: Producer) -> None:
        """Abort, then start over with a fresh producer (see the module docstring)."""
        try:
            p.abort_transaction(min(self.timeout_s, DEADLINE_S))
        except KafkaException as exc:
            log.debug("abort_transaction: %s", exc.args[0])
        try:
            self._reopen()
        except (TransientSinkError, FatalError) as exc:
            log.warning("%s (opening again at the next commit)", exc)
            self._producer = None

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.timeout_s)
            self._producer = None
