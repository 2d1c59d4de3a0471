"""`sidepath lag`: a consumer group's partitions straight from the broker.

Committed offsets come from the group coordinator (the same source as Kafka's
own kafka-consumer-groups tool), end offsets from ListOffsets.  The engine
commits with metadata holding the commit time, so the table can also show
how long ago each partition last committed.

Lag is always a number (``partition_lag``, shared with the worker's metric): a
partition without a committed offset counts as the group will read it, KEDA's
``offsetResetPolicy`` rule -- with ``earliest`` everything from the log start
offset to the end, with ``latest`` nothing.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from sidepath.core.errors import FatalError
from sidepath.worker.config import Config
from sidepath.worker.kafka_config import consumer_config
from sidepath.worker.ops.lag_figures import commit_age, partition_lag

__all__ = ["PartitionLag", "group_lag", "format_table", "human_duration",
           "topic_partitions", "committed_offsets"]


@dataclass(frozen=True)
class PartitionLag:
    """One partition as Kafka's kafka-consumer-groups --describe shows it, plus the last commit's age."""

    group: str
    topic: str
    partition: int
    committed: int | None          # None: the group never committed this partition
    end: int                       # the log end offset (high watermark)
    lag: int                       # partition_lag: a number even when never committed
    last_commit_age_s: float | None
    log_start: int = 0             # the log start offset (retention moves it)


# the group coordinator answers these while a (fresh or restarted) broker loads its offsets
_COORDINATOR_BUSY = {KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
                     KafkaError.NOT_COORDINATOR}


def topic_partitions(cfg: Config, probe: Consumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions.  Asked through a consumer: its metadata request never creates the
    topic, whereas an admin client's would on a broker with auto.create.topics.enable."""
    try:
        md = probe.list_topics(topic, timeout=10).topics.get(topic)
    except KafkaException as exc:
        raise FatalError(f"cannot reach Kafka at {cfg.kafka.bootstrap_servers}: {exc.args[0]}") from None
    if md is None or md.error is not None or not md.partitions:
        raise FatalError(f"topic {topic!r} not found at {cfg.kafka.bootstrap_servers}; check --topic or kafka.topic")
    return [TopicPartition(topic, p) for p in sorted(md.partitions)]


def committed_offsets(cfg: Config, group: str, tps: list[TopicPartition],
                      timeout_s: float = 30) -> dict[int, TopicPartition]:
    """The group's committed offsets (with their metadata) from the group coordinator.

    Read through a consumer that carries the group's id but never subscribes, so it never joins
    the group: the admin client's list_consumer_group_offsets crashed the process (librdkafka
    2.16) when a restarting broker answered "not coordinator".
    """
    reader = Consumer(consumer_config(cfg, **{"group.id": group}))
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                return {tp.partition: tp for tp in reader.committed(tps, timeout=10)}
            except KafkaException as exc:
                err = exc.args[0]
                busy = isinstance(err, KafkaError) and (err.code() in _COORDINATOR_BUSY or err.retriable())
                if not busy or time.monotonic() > deadline:
                    raise FatalError(f"cannot read the offsets of group {group!r} at "
                                     f"{cfg.kafka.bootstrap_servers}: {err}") from None
                time.sleep(0.5)
    finally:
        reader.close()


def group_lag(cfg: Config, group: str | None = None, topic: str | None = None) -> list[PartitionLag]:
    group = group or cfg.kafka.group_id
    topic = topic or cfg.kafka.topic
    probe = Consumer(consumer_config(cfg, **{"group.id": f"{group}.lag-probe"}))
    try:
        tps = topic_partitions(cfg, probe, topic)
        committed = committed_offsets(cfg, group, tps)
        rows = []
        for tp in tps:
            lo, hi = probe.get_watermark_offsets(tp, timeout=10)
            c = committed.get(tp.partition)
            off = c.offset if c is not None and c.offset >= 0 else None
            rows.append(PartitionLag(group, topic, tp.partition, off, hi,
                                     partition_lag(off, lo, hi, cfg.kafka.auto_offset_reset),
                                     None if off is None else commit_age(getattr(c, "metadata", None)), lo))
        return rows
    except KafkaException as exc:
        raise FatalError(f"cannot read the end offsets of {topic!r} at {cfg.kafka.bootstrap_servers}: "
                         f"{exc.args[0]}") from None
    finally:
        probe.close()


def human_duration(seconds: float) -> str:
    """3 d 4 h, 2 h 5 min, 1 h, 12 min, 40 s."""
    s = int(max(0.0, seconds))
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60)):
        if s >= size:
            rest = s % size // sub_size
            return f"{s // size} {unit}" + (f" {rest} {sub}" if rest else "")
    return f"{s // 60} min" if s >= 60 else f"{s} s"


def format_table(rows: list[PartitionLag], as_json: bool = False) -> str:
    if as_json:
        return json.dumps([asdict(r) for r in rows], indent=2)

    def cell(v: object) -> str:
        return "-" if v is None else str(v)

    head = ("GROUP", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "LAST COMMIT")
    body = [(r.group, r.topic, str(r.partition), cell(r.committed), str(r.end), str(r.lag),
             "-" if r.last_commit_age_s is None else f"{human_duration(r.last_commit_age_s)} ago") for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(x.ljust(w) if i < 2 else x.rjust(w) for i, (x, w) in enumerate(zip(line, widths)))
             for line in (head, *body)]
    never = sum(r.committed is None for r in rows)
    lines.append(f"total lag: {sum(r.lag for r in rows)}"
                 + (f" ({never} partition(s) never committed: counted from where the group starts, "
                    "auto.offset.reset)" if never else ""))
    return "\n".join(lines)
