"""Produce with an idempotent producer and learn which messages the broker refused.

``BatchProducer.submit(message)`` hands one message to librdkafka and returns a
``Delivery`` whose ``error`` fills in if delivery fails.  librdkafka reports
failures only (``delivery.report.only.error``): a report for every success
would be a Python callback per message inside ``flush()``, each one taking
the GIL back from the busy poll loop, and waiting for it stretched the sink's
flushes (docs/benchmarks.md).  ``wait(timeout_s)`` flushes until the
producer's queue is empty: then every message it was handed has either been
acknowledged (acks=all) or has its error.  A message still queued when time
runs out stays inside librdkafka, which keeps retrying it under the idempotent
producer's sequence numbers: when the broker comes back it is written once,
never twice.  That is why the sinks, retrying a batch, wait on the ``Delivery``
of a message still queued instead of producing it again.

``verdict(error)`` sorts a failed report:

    reject     this message can never be written (too large for the topic, a
               record the broker refuses); librdkafka sends messages in batches
               and the broker refuses a whole batch for one oversized member,
               so the caller retries each refused message alone first
    fatal      the producer or its credentials are unusable (authorisation,
               unknown topic, a fatal idempotence error)
    transient  everything else: the broker is away, leaders move, time ran out
"""
from __future__ import annotations

import logging
from typing import Any, Literal, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Producer

from sidepath.core.logs import Throttle, librdkafka_logging

__all__ = ["OutMessage", "Delivery", "BatchProducer", "verdict", "describe", "Verdict"]

log = logging.getLogger(__name__)

Verdict = Literal["reject", "fatal", "transient"]

_REJECT = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_RECORD,
           KafkaError.INVALID_MSG_SIZE, KafkaError.INVALID_TIMESTAMP, KafkaError.POLICY_VIOLATION}
_FATAL = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED,
          KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._AUTHENTICATION,
          KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._INVALID_ARG,
          KafkaError._FATAL, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
          KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT}


class OutMessage(NamedTuple):
    """One message to produce.  ``headers`` is the list librdkafka takes (it refuses a tuple);
    a result's headers list is shared by every result of its model, so it is never mutated."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    def identity(self) -> tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]:
        """What makes two messages the same message (a retry of one batch rebuilds them)."""
        return self.key, self.value, tuple(self.headers)


class Delivery:
    """The fate of one produced message: ``error`` is set if it failed; it is delivered once
    the producer's queue has emptied without an error for it."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: KafkaError | None = None

    def report(self, error: KafkaError | None, _msg: Any = None) -> None:
        self.error = error


def verdict(error: KafkaError) -> Verdict:
    if error.fatal() or error.code() in _FATAL:
        return "fatal"
    if error.code() in _REJECT:
        return "reject"
    return "transient"


def describe(error: KafkaError, topic: str) -> str:
    """One line a user can act on."""
    code, text = error.code(), f"{error.name()}: {error.str()}"
    if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
        return f"topic {topic!r} does not exist ({text}); create it or enable auto-creation on the broker"
    if code in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED):
        return f"not allowed to write to topic {topic!r} ({text}); grant WRITE (and IDEMPOTENT_WRITE) ACLs"
    if code in (KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._AUTHENTICATION):
        return f"Kafka refused the credentials ({text}); check the user and the password variable"
    if code in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE):
        return f"message too large for topic {topic!r} ({text}); raise the topic's max.message.bytes " \
               "or make the results smaller"
    return text


class BatchProducer:
    """An idempotent producer for one topic, driven from one thread."""

    def __init__(self, config: dict[str, Any], topic: str) -> None:
        self.topic = topic
        self._fatal: KafkaError | None = None
        self._repeats = Throttle()
        self._producer = Producer({**librdkafka_logging(), **config, "delivery.report.only.error": True,
                                   "error_cb": self._on_error})

    @property
    def fatal_error(self) -> KafkaError | None:
        return self._fatal

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error
            log.error("Kafka producer for %s failed for good: %s", self.topic, error.str())
            return
        # broker away: librdkafka reconnects by itself and reports every attempt; say it once in a while
        if self._repeats.due(error.code()):
            log.warning("Kafka producer for %s: %s", self.topic, error.str())
        else:
            log.debug("Kafka producer for %s: %s", self.topic, error.str())

    def submit(self, m: OutMessage) -> Delivery:
        d = Delivery()
        while True:
            try:
                self._producer.produce(self.topic, m.value, m.key, headers=m.headers,  # type: ignore[arg-type]  # bytes values: a list is invariant
                                       on_delivery=d.report)
                return d
            except BufferError:                # local queue full: serve reports to drain it
                self._producer.poll(0.1)
            except KafkaException as exc:      # refused before sending (too large, unknown topic ...)
                d.report(exc.args[0])
                return d

    def wait(self, timeout_s: float) -> bool:
        """Flush (serving error reports) until nothing is queued; False when time ran out first."""
        return self._producer.flush(timeout_s) == 0

    def close(self, timeout_s: float) -> int:
        """Flush what is queued; return how many messages were never acknowledged."""
        left = self._producer.flush(timeout_s)
        if left:
            log.warning("Kafka producer for %s closed with %d unacknowledged message(s)", self.topic, left)
        return int(left)
