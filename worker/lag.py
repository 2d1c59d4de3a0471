"""`sidepath lag`: a consumer group's partitions straight from the broker.

Committed offsets come from the group coordinator (the same source as Kafka's
own kafka-consumer-groups tool), end offsets from ListOffsets.  The engine
commits with metadata holding the commit time, so the table can also show
how long ago each partition last committed.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from sidepath.worker.config import Config
from sidepath.worker.errors import FatalError
from sidepath.worker.kafka_config import admin_config, consumer_config

__all__ = ["PartitionLag", "group_lag", "commit_metadata", "format_table"]


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int | None
    last_commit_age_s: float | None


def commit_metadata() -> str:
    """Stored with every commit: lets `sidepath lag` show the last commit's age."""
    return json.dumps({"t": round(time.time(), 3)}, separators=(",", ":"))


def _age(metadata: str | None) -> float | None:
    try:
        return max(0.0, time.time() - float(json.loads(metadata or "")["t"]))
    except (ValueError, KeyError, TypeError):
        return None


def group_lag(cfg: Config, group: str | None = None, topic: str | None = None) -> list[PartitionLag]:
    group = group or cfg.kafka.group_id
    topic = topic or cfg.kafka.topic
    admin = AdminClient(admin_config(cfg))
    try:
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
    except KafkaException as exc:
        raise FatalError(f"cannot reach Kafka at {cfg.kafka.bootstrap_servers}: {exc.args[0]}") from None
    if md is None or md.error is not None:
        raise FatalError(f"topic {topic!r} not found at {cfg.kafka.bootstrap_servers}")
    tps = [TopicPartition(topic, p) for p in sorted(md.partitions)]
    fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])[group]
    committed = {tp.partition: tp for tp in fut.result(timeout=10).topic_partitions}
    probe = Consumer(consumer_config(cfg, **{"group.id": f"{group}.lag-probe"}))
    try:
        rows = []
        for tp in tps:
            _lo, hi = probe.get_watermark_offsets(tp, timeout=10)
            c = committed.get(tp.partition)
            off = c.offset if c is not None and c.offset >= 0 else None
            rows.append(PartitionLag(topic, tp.partition, off, hi, None if off is None else max(0, hi - off),
                                     _age(getattr(c, "metadata", None)) if off is not None else None))
        return rows
    finally:
        probe.close()


def format_table(rows: list[PartitionLag], as_json: bool = False) -> str:
    if as_json:
        return json.dumps([asdict(r) for r in rows], indent=2)
    head = f"{'TOPIC':<30} {'PARTITION':>9} {'COMMITTED':>12} {'END':>12} {'LAG':>10} {'LAST COMMIT':>12}"
    lines = [head]
    for r in rows:
        age = "-" if r.last_commit_age_s is None else f"{r.last_commit_age_s:.0f}s ago"
        lines.append(f"{r.topic:<30} {r.partition:>9} {'-' if r.committed is None else r.committed:>12} "
                     f"{r.end:>12} {'-' if r.lag is None else r.lag:>10} {age:>12}")
    total = sum(r.lag or 0 for r in rows)
    lines.append(f"total lag: {total}")
    return "\n".join(lines)
