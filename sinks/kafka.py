"""Kafka sinks: results (key = postid) and dead letters, through an idempotent producer.

URL: ``kafka://host:port[,host:port...]/topic`` with options in the query string::

    timeout_s=30                 how long write() waits for every acknowledgement
    message.timeout.ms=300000    how long librdkafka keeps retrying one message
    compression.type=zstd        any other dotted name is a librdkafka producer setting
    security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512   with kafka://user:${KAFKA_PASSWORD}@...

acks=all and enable.idempotence=true are fixed: a retry inside the producer
never duplicates or reorders a message.  Keys are the postid, so every result
of one post lands in one partition in order; the partitioner is murmur2, the
Java client's, so Java and Python producers agree on the partition.

``write`` returns when the broker has acknowledged every message.  When some
are not acknowledged within timeout_s (broker away) it raises
TransientSinkError and leaves them queued in librdkafka, which keeps retrying
them under the idempotent producer's sequence numbers for message.timeout.ms
(5 min).  The engine retries the same batch: acknowledged messages are not
sent again and queued ones are waited for, not produced again, so an outage
shorter than that writes each result once.  A message the broker can never
take (too large for the topic) is returned as Rejected.  Consumers still treat
the topic as keyed: a redelivery after a worker crash writes the same key
again (last one wins).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from confluent_kafka import KafkaError, KafkaException

from sidepath.core.errors import ConfigError, FatalError, SinkError, TransientSinkError
from sidepath.core.masking import mask_url
from sidepath.sinks.base import DeadLetter, Rejected, Result
from sidepath.sinks.kafka_delivery import BatchProducer, Delivery, OutMessage, describe, verdict
from sidepath.sinks.url import SinkOptions, split_query

__all__ = ["KafkaSink", "KafkaDeadLetterSink", "result_message", "producer_config_of_url", "settings_refused"]

log = logging.getLogger(__name__)

_TOPIC = re.compile(r"^[A-Za-z0-9._\-]{1,249}$")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_]+):\d{1,5}$")
_FIXED = {"acks": "all", "enable.idempotence": "true"}
_NOT_IN_QUERY = ("bootstrap.servers", "transactional.id", "sasl.username", "sasl.password")


def producer_config_of_url(url: str, *, key: str) -> tuple[dict[str, Any], str, float]:
    """(librdkafka producer settings, topic, timeout_s) from a kafka:// URL."""
    shown = mask_url(url)
    base, pairs = split_query(url)
    parts = urlsplit(base)
    netloc = parts.netloc
    creds, _, hosts = netloc.rpartition("@")
    servers = [h.strip() for h in hosts.split(",") if h.strip()]
    if not servers or not all(_HOST_PORT.match(h) for h in servers):
        raise ConfigError(key, shown, "use kafka://host:port[,host:port]/topic, e.g. kafka://127.0.0.1:9092/results")
    topic = unquote(parts.path.lstrip("/"))
    if not _TOPIC.match(topic):
        raise ConfigError(key, shown, f"topic {topic!r} is not a valid Kafka topic name; "
                                      "use kafka://host:port/topic with letters, digits, '.', '_' or '-'")
    opts = SinkOptions(url, pairs, key=key)
    timeout_s = opts.number("timeout_s", 30.0, minimum=1.0)
    rest = opts.take_rest()
    for name, value in rest.items():
        if name in _FIXED and value.lower() != _FIXED[name]:
            raise ConfigError(key, shown, f"{name}={value} is not allowed: the sink always uses "
                                          "acks=all with enable.idempotence=true; remove the option")
        if name in _NOT_IN_QUERY:
            raise ConfigError(key, shown, f"option {name!r} does not go in the query string; "
                                          "hosts and credentials go in kafka://user:${PASSWORD}@host:port/topic")
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(servers),
        "client.id": "sidepath-sink",
        "linger.ms": 5,
        "compression.type": "lz4",
        "partitioner": "murmur2_random",
        # back within 2 s of a broker's return, not librdkafka's 10 s
        "reconnect.backoff.max.ms": 2000,
        # librdkafka keeps retrying a message this long under its idempotent sequence number
        "message.timeout.ms": 300_000,
        **rest,
        **_FIXED,
    }
    if creds:
        user, _, password = creds.partition(":")
        if not str(config.get("security.protocol", "")).upper().startswith("SASL") \
                or "sasl.mechanism" not in config:
            raise ConfigError(key, shown, "credentials in a kafka URL need security.protocol=SASL_SSL "
                                          "(or SASL_PLAINTEXT) and sasl.mechanism=... in the query string")
        config["sasl.username"], config["sasl.password"] = unquote(user), unquote(password)
    return config, topic, timeout_s


def settings_refused(key: str, shown_url: str, exc: KafkaException) -> ConfigError:
    """librdkafka refused an option of the URL's query string: one line naming it."""
    return ConfigError(key, shown_url, f"librdkafka refused the settings ({exc.args[0].str()}); "
                                       "fix or remove the option it names")


class _KafkaWriter:
    """What both Kafka sinks share: the producer and the deliveries of a batch being retried."""

    kind = "sink"
    key = "sinks.urls"

    def __init__(self, url: str) -> None:
        self.url = mask_url(url)
        config, self.topic, self.timeout_s = producer_config_of_url(url, key=self.key)
        try:
            self.producer = BatchProducer(config, self.topic)
        except KafkaException as exc:
            raise settings_refused(self.key, self.url, exc) from None
        # message -> Delivery, of the attempt that last raised TransientSinkError: a retry of the
        # same batch must wait for those still queued in librdkafka, not produce them twice
        self._unsettled: dict[tuple[Any, ...], Delivery] = {}      # OutMessage.identity() -> its Delivery

    def _check_fatal(self) -> None:
        err = self.producer.fatal_error
        if err is not None:
            raise FatalError(f"{self.kind} {self.url}: {describe(err, self.topic)}")

    def _submit(self, m: OutMessage, previous: dict[tuple[Any, ...], Delivery]) -> Delivery:
        d = previous.get(m.identity()) if previous else None
        if d is None or d.error is not None:
            d = self.producer.submit(m)      # new, or failed last time: produce (again)
        return d

    def _deliver(self, messages: Sequence[OutMessage]) -> list[KafkaError | None]:
        """Send and wait; retry refused messages alone; raise for fatal and transient failures."""
        self._check_fatal()
        previous, self._unsettled = self._unsettled, {}
        deliveries = [self._submit(m, previous) for m in messages]
        settled = self.producer.wait(self.timeout_s)
        if settled and len(deliveries) > 1:
            for i, d in enumerate(deliveries):
                if d.error is not None and verdict(d.error) == "reject":
                    deliveries[i] = self.producer.submit(messages[i])
                    settled = self.producer.wait(self.timeout_s)
        self._check_fatal()
        errors = [d.error for d in deliveries]
        for e in errors:
            if e is not None and verdict(e) == "fatal":
                raise FatalError(f"{self.kind} {self.url}: {describe(e, self.topic)}")
        failed = [e for e in errors if e is not None and verdict(e) == "transient"]
        if not settled or failed:
            # without an error, a message is either acknowledged or still queued (when not settled)
            self._unsettled = {m.identity(): d for m, d in zip(messages, deliveries) if d.error is None}
            if failed:
                raise TransientSinkError(f"{self.kind} {self.url}: {len(failed)} of {len(messages)} message(s) "
                                         f"not acknowledged: {describe(failed[0], self.topic)}")
            raise TransientSinkError(f"{self.kind} {self.url}: {len(messages)} message(s) sent, some not "
                                     f"acknowledged within {self.timeout_s:g} s (kept queued, the retry waits "
                                     "for them)")
        return errors

    def close(self) -> None:
        self.producer.close(self.timeout_s)


_HEADERS: dict[tuple[str, str], list[tuple[str, bytes]]] = {}    # (model, version) -> a result's headers


def result_message(r: Result) -> OutMessage:
    """A result as a Kafka message: JSON value, postid key, model and model_version headers."""
    headers = _HEADERS.get((r.model, r.model_version))
    if headers is None:     # built once per model: librdkafka only reads the list
        headers = _HEADERS.setdefault((r.model, r.model_version), [
            ("model", r.model.encode()), ("model_version", r.model_version.encode()),
            ("content-type", b"application/json")])
    return OutMessage(r.postid.encode(), r.to_json(), headers)


class KafkaSink(_KafkaWriter):
    """Results as JSON values keyed by postid, with model and model_version headers."""

    def write(self, results: Sequence[Result]) -> Sequence[Rejected]:
        errors = self._deliver([result_message(r) for r in results])
        rejected = [Rejected(r, describe(e, self.topic), f"KafkaError.{e.name()}")
                    for r, e in zip(results, errors) if e is not None]
        for rej in rejected:
            log.warning("sink %s rejected %s: %s", self.url, rej.result.key, rej.error)
        return rejected


class KafkaDeadLetterSink(_KafkaWriter):
    """Dead letters: the original key, value and headers plus headers naming the failure."""

    kind = "dead-letter sink"
    key = "sinks.dead_letter"

    @staticmethod
    def _message(d: DeadLetter, *, keep_value: bool = True) -> OutMessage:
        extra = []
        if d.timestamp_ms is not None:
            extra.append(("sidepath.dlq.timestamp_ms", str(d.timestamp_ms).encode()))
        if not keep_value and d.value is not None:
            extra.append(("sidepath.dlq.value_dropped_bytes", str(len(d.value)).encode()))
        return OutMessage(d.key, d.value if keep_value else None, d.info_headers(extra))

    def write_letters(self, letters: Sequence[DeadLetter]) -> None:
        errors = self._deliver([self._message(d) for d in letters])
        too_big = [d for d, e in zip(letters, errors) if e is not None]
        if too_big:
            # the failure itself must be kept even when the original value cannot be
            log.warning("dead-letter sink %s: %d original value(s) too large for the topic; "
                        "kept key and headers only", self.url, len(too_big))
            errors = self._deliver([self._message(d, keep_value=False) for d in too_big])
            bad = next((e for e in errors if e is not None), None)
            if bad is not None:
                raise SinkError(f"dead-letter sink {self.url}: {describe(bad, self.topic)}")
