"""`sidepath drain`: copy a topic into a durable sink before its retention deletes it.

The same engine as the worker with the ``record`` model: every record becomes
one row keyed ``(record, postid, "partition:offset")`` -- idempotent, so running
twice copies each record once -- and the drain's own consumer group makes it
resumable.  Before copying it warns when the oldest unread record is close to
expiry (its timestamp + the topic's ``retention.ms``).
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from sidepath.sinks.base import SourceRef
from sidepath.worker.config import Config
from sidepath.worker.errors import FatalError
from sidepath.worker.kafka_config import admin_config, consumer_config
from sidepath.worker.request import Request, ids_from_raw

__all__ = ["parse_record", "expiry_report", "run_drain", "Expiry"]

log = logging.getLogger(__name__)


def parse_record(value: bytes | None, source: SourceRef) -> Request:
    """Any record is accepted: ids from its JSON when present, else its coordinates."""
    postid, uid, _seqid = ids_from_raw(value)
    where = f"{source.topic}/{source.partition}/{source.offset}"
    return Request(postid or where, uid, f"{source.partition}:{source.offset}", kind="record", ref="",
                   source=source)


@dataclass(frozen=True)
class Expiry:
    retention_s: float | None
    oldest_unread_age_s: float | None

    @property
    def left_s(self) -> float | None:
        if self.retention_s is None or self.oldest_unread_age_s is None:
            return None
        return self.retention_s - self.oldest_unread_age_s


def expiry_report(cfg: Config, topic: str, group: str) -> Expiry:
    """Retention from the topic config; the oldest record this group has not copied yet."""
    admin = AdminClient(admin_config(cfg))
    try:
        res = ConfigResource(ConfigResource.Type.TOPIC, topic)
        entries = admin.describe_configs([res])[res].result(timeout=10)
        retention_ms = float(entries["retention.ms"].value)
        md = admin.list_topics(topic, timeout=10).topics[topic]
        tps = [TopicPartition(topic, p) for p in md.partitions]
        fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])[group]
        committed = {tp.partition: tp.offset for tp in fut.result(timeout=10).topic_partitions}
    except KafkaException as exc:
        raise FatalError(f"cannot describe topic {topic!r} at {cfg.kafka.bootstrap_servers}: {exc.args[0]}") \
            from None
    probe = Consumer(consumer_config(cfg, **{"group.id": f"{group}.expiry-probe"}))
    oldest: float | None = None
    try:
        starts = []
        for tp in tps:
            lo, hi = probe.get_watermark_offsets(tp, timeout=10)
            start = max(lo, committed.get(tp.partition, -1))
            if start < hi:
                starts.append(TopicPartition(topic, tp.partition, start))
        if starts:
            probe.assign(starts)
            deadline, seen = time.monotonic() + 10, set()
            while len(seen) < len(starts) and time.monotonic() < deadline:
                m = probe.poll(0.5)
                if m is None or m.error() or m.partition() in seen:
                    continue
                seen.add(m.partition())
                probe.pause([TopicPartition(topic, m.partition())])
                ts_type, ts = m.timestamp()
                if ts_type and ts > 0:
                    oldest = ts if oldest is None else min(oldest, ts)
    finally:
        probe.close()
    age = None if oldest is None else max(0.0, time.time() - oldest / 1000)
    return Expiry(None if retention_ms < 0 else retention_ms / 1000, age)


def run_drain(cfg: Config, *, topic: str, sinks: list[str], group: str | None = None,
              warn_within_s: float = 6 * 3600) -> dict[str, Any]:
    from sidepath.worker.runner import run_worker

    group = group or f"{cfg.service.name}-drain-{topic}"
    exp = expiry_report(cfg, topic, group)
    if exp.left_s is not None and exp.left_s < warn_within_s:
        log.warning("oldest unread record of %s expires in %.1f h (retention %.1f h): drain now", topic,
                    max(0.0, exp.left_s) / 3600, (exp.retention_s or 0) / 3600)
    dcfg = copy.deepcopy(cfg)
    dcfg.kafka.topic, dcfg.kafka.group_id, dcfg.kafka.auto_offset_reset = topic, group, "earliest"
    dcfg.model.name, dcfg.model.options, dcfg.model.extra, dcfg.model.device = "record", {}, [], "cpu"
    dcfg.model.instances = 1
    dcfg.sinks.urls = list(sinks or cfg.sinks.urls)
    dcfg.metrics.port = 0
    stats = run_worker(dcfg, until_end=True, parse=parse_record)
    stats["expiry"] = {"retention_s": exp.retention_s, "oldest_unread_age_s": exp.oldest_unread_age_s}
    return stats
