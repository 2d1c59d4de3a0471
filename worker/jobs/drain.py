"""`sidepath drain`: copy a topic into a durable sink before its retention deletes it.

The same engine as the worker with the ``record`` model and ``--until-end``:
every record becomes one row keyed ``(record, postid, "<topic>:<partition>:<offset>")``.
The coordinates make the key unique per record (two records with the same
postid are two rows) and stable (a second run, or a run under another group,
writes the same rows again instead of adding rows); the drain's own consumer
group makes it resume where it stopped.  Before copying it warns when the
oldest unread record is close to expiry (its timestamp + the topic's
``retention.ms``) and when records were deleted before this group read them.
See docs/jobs.md.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]  # exported, not in __all__

from sidepath.core.errors import FatalError
from sidepath.core.masking import mask_url
from sidepath.sinks.base import SourceRef
from sidepath.worker.config import Config
from sidepath.worker.engine.request import Request, ids_from_raw
from sidepath.worker.jobs.lag import committed_offsets, human_duration, topic_partitions
from sidepath.worker.kafka_config import admin_config, consumer_config

__all__ = ["parse_record", "expiry_report", "run_drain", "Expiry", "record_seqid"]

log = logging.getLogger(__name__)


def record_seqid(source: SourceRef) -> str:
    """The seqid of a drained record's row: its coordinates (topic names cannot hold ':')."""
    return f"{source.topic}:{source.partition}:{source.offset}"


def parse_record(value: bytes | None, source: SourceRef) -> Request:
    """Any record is accepted: postid and uid from its JSON when present, the seqid from its coordinates."""
    postid, uid, _seqid = ids_from_raw(value)
    seqid = record_seqid(source)
    return Request(postid or seqid, uid, seqid, kind="record", ref="", source=source)


@dataclass(frozen=True)
class Expiry:
    """What retention means for the records this group has not copied yet."""

    retention_s: float | None            # None: the topic keeps records forever
    oldest_unread_age_s: float | None    # None: nothing unread (or no timestamps)
    oldest_unread: str | None = None     # "partition:offset" of that record
    unread: int = 0                      # records between the group's position and the end
    expired: int = 0                     # records deleted by retention before this group read them

    @property
    def left_s(self) -> float | None:
        if self.retention_s is None or self.oldest_unread_age_s is None:
            return None
        return self.retention_s - self.oldest_unread_age_s


def _retention_ms(cfg: Config, topic: str) -> float:
    admin = AdminClient(admin_config(cfg))
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        entries = admin.describe_configs([res])[res].result(timeout=10)
    except KafkaException as exc:
        raise FatalError(f"cannot describe topic {topic!r} at {cfg.kafka.bootstrap_servers}: {exc.args[0]}") \
            from None
    return float(entries["retention.ms"].value)


def expiry_report(cfg: Config, topic: str, group: str) -> Expiry:
    """Retention from the topic config; the oldest record this group has not copied yet, read from the broker."""
    probe = Consumer(consumer_config(cfg, **{"group.id": f"{group}.expiry-probe", "enable.auto.commit": False}))
    oldest: tuple[int, str] | None = None
    unread = expired = 0
    try:
        tps = topic_partitions(cfg, probe, topic)
        retention_ms = _retention_ms(cfg, topic)
        committed = {p: tp.offset for p, tp in committed_offsets(cfg, group, tps).items() if tp.offset >= 0}
        starts = []
        for tp in tps:
            lo, hi = probe.get_watermark_offsets(tp, timeout=10)
            done = committed.get(tp.partition)
            if done is not None and done < lo:      # retention got there first
                expired += lo - done
            start = max(lo, done if done is not None else lo)
            if start < hi:
                unread += hi - start
                starts.append(TopicPartition(topic, tp.partition, start))
        if starts:
            # the first unread record of each partition is its oldest unread one
            probe.assign(starts)
            deadline, seen = time.monotonic() + 10, set[int]()
            while len(seen) < len(starts) and time.monotonic() < deadline:
                m = probe.poll(0.5)
                part = None if m is None or m.error() else m.partition()
                if m is None or part is None or part in seen:
                    continue
                seen.add(part)
                probe.pause([TopicPartition(topic, part)])
                ts_type, ts = m.timestamp()
                if ts_type and ts > 0 and (oldest is None or ts < oldest[0]):
                    oldest = (ts, f"{part}:{m.offset()}")
    except KafkaException as exc:
        raise FatalError(f"cannot read {topic!r} at {cfg.kafka.bootstrap_servers}: {exc.args[0]}") from None
    finally:
        probe.close()
    age = None if oldest is None else max(0.0, time.time() - oldest[0] / 1000)
    return Expiry(None if retention_ms < 0 else retention_ms / 1000, age, oldest and oldest[1], unread, expired)


def warn_expiry(topic: str, exp: Expiry, warn_within_s: float) -> bool:
    """Log a warning when unread records are about to expire or already have; True when one was logged."""
    warned = False
    if exp.expired:
        log.warning("%d records of %s were deleted by retention before this drain's group read them; "
                    "drain more often than retention.ms", exp.expired, topic)
        warned = True
    left = exp.left_s
    if left is not None and left < warn_within_s:
        when = f"expires in about {human_duration(left)}" if left > 0 else "is past its retention and may go any moment"
        log.warning("oldest unread record of %s (partition:offset %s, %s old) %s (retention %s); "
                    "%d records unread: drain now", topic, exp.oldest_unread,
                    human_duration(exp.oldest_unread_age_s or 0), when, human_duration(exp.retention_s or 0),
                    exp.unread)
        warned = True
    return warned


def run_drain(cfg: Config, *, topic: str, sinks: list[str], group: str | None = None,
              warn_within_s: float = 6 * 3600) -> dict[str, Any]:
    """Copy ``topic`` up to the end offsets taken at start; the report as a dict."""
    from sidepath.worker.engine.runner import run_worker

    group = group or f"{cfg.service.name}-drain-{topic}"
    exp = expiry_report(cfg, topic, group)
    warn_expiry(topic, exp, warn_within_s)
    log.info("draining %s (%d records unread by group %s)", topic, exp.unread, group)
    dcfg = copy.deepcopy(cfg)
    dcfg.kafka.topic, dcfg.kafka.group_id, dcfg.kafka.auto_offset_reset = topic, group, "earliest"
    dcfg.model.name, dcfg.model.options, dcfg.model.extra, dcfg.model.device = "record", {}, [], "cpu"
    dcfg.model.instances = 1
    dcfg.sinks.urls = list(sinks or cfg.sinks.urls)
    dcfg.metrics.port = 0
    dcfg.engine.run_window = []       # a drain races retention: it never waits for a window (budgets apply)
    stats = run_worker(dcfg, until_end=True, parse=parse_record)
    report = {"topic": topic, "group": group, "sinks": [mask_url(u) for u in dcfg.sinks.urls],
              "copied": stats["done"] - stats["errors"], "errors": stats["errors"],
              "unfinished": stats["unfinished"], "expired": exp.expired, "expiry": asdict(exp),
              "fatal": stats.get("fatal")}
    log.info("drained %d records of %s (%d errors)", report["copied"], topic, report["errors"])
    return report
