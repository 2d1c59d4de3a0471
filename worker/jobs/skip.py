"""`sidepath skip`: move a stopped group past a partition's offset, with a dead letter for each skipped message.

The operator's escape hatch when the crash quarantine (worker/engine/quarantine.py) does
not cover a case: the group's committed offset of one partition moves from where
it stands to ``offset + 1``; every message in between is read and written to the
dead-letter sink (stage ``skip``) first, so nothing disappears without a trace.
Only while the group has no active member: a live member would overwrite the
commit with its own (and Kafka refuses commits from outside a live group).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from sidepath.core.errors import ConfigError, FatalError
from sidepath.core.masking import mask_url
from sidepath.sinks.base import DeadLetter, DeadLetterSink, SourceRef
from sidepath.worker.config import Config
from sidepath.worker.jobs.lag import committed_offsets
from sidepath.worker.kafka_config import admin_config, consumer_config
from sidepath.worker.ops.lag_figures import commit_metadata

__all__ = ["SkipPlan", "plan_skip", "run_skip", "active_members"]

log = logging.getLogger(__name__)

REASON = "skipped by an operator (sidepath skip)"


@dataclass(frozen=True)
class SkipPlan:
    group: str
    topic: str
    partition: int
    first: int          # the committed offset now
    last: int           # the last offset skipped (inclusive)

    @property
    def count(self) -> int:
        return max(0, self.last - self.first + 1)

    def describe(self, dead_letter_url: str) -> str:
        return (f"skip offsets {self.first}..{self.last} of {self.topic}[{self.partition}] for group {self.group!r} "
                f"(up to {self.count} message(s)): each is written to the dead-letter sink "
                f"{mask_url(dead_letter_url)} (stage skip), then the group's offset moves to {self.last + 1}")


def active_members(cfg: Config, group: str) -> list[str]:
    """The client ids of the group's live members (static ones stay listed for session_timeout_ms)."""
    admin = AdminClient(admin_config(cfg))
    try:
        desc = admin.describe_consumer_groups([group], request_timeout=15)[group].result()
    except KafkaException as exc:
        raise FatalError(f"cannot describe group {group!r} at {cfg.kafka.bootstrap_servers}: {exc.args[0]}") from None
    return [f"{m.client_id}@{m.host}" for m in desc.members]


def plan_skip(cfg: Config, *, partition: int, offset: int, group: str, topic: str) -> SkipPlan | None:
    """What ``skip`` would do; None when the group is already past ``offset``."""
    probe = Consumer(consumer_config(cfg, **{"group.id": f"{group}.skip-probe"}))
    try:
        lo, hi = probe.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    except KafkaException as exc:
        raise FatalError(f"cannot read {topic}[{partition}] at {cfg.kafka.bootstrap_servers}: {exc.args[0]}") from None
    finally:
        probe.close()
    if offset < 0 or offset >= hi:
        raise ConfigError("--offset", offset, f"{topic}[{partition}] holds offsets {lo}..{hi - 1}; pick one of those")
    tp = committed_offsets(cfg, group, [TopicPartition(topic, partition)]).get(partition)
    first = tp.offset if tp is not None and tp.offset >= 0 else lo
    if first > offset:
        return None
    return SkipPlan(group, topic, partition, max(first, lo), offset)


def _read(cfg: Config, plan: SkipPlan, timeout_s: float = 60) -> list[DeadLetter]:
    reader = Consumer(consumer_config(cfg, **{"group.id": f"{plan.group}.skip-reader", "enable.partition.eof": True}))
    letters: list[DeadLetter] = []
    deadline = time.monotonic() + timeout_s
    try:
        reader.assign([TopicPartition(plan.topic, plan.partition, plan.first)])
        while time.monotonic() < deadline:
            msgs = reader.consume(500, 1.0)
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:    # compaction left fewer messages
                        return letters
                    raise FatalError(f"cannot read {plan.topic}[{plan.partition}]: {err.str()}")
                off = m.offset() or 0
                if off > plan.last:
                    return letters
                ts_type, ts = m.timestamp()
                headers: Any = m.headers() or ()            # a list of (str, bytes) from a consumer
                letters.append(DeadLetter(m.key(), m.value(), tuple(headers), ts if ts_type else None,
                                          SourceRef(plan.topic, plan.partition, off), plan.group, "skip",
                                          "Skipped", REASON, 0, ""))
                if off == plan.last:
                    return letters
        raise FatalError(f"reading {plan.topic}[{plan.partition}] offsets {plan.first}..{plan.last} took longer "
                         f"than {timeout_s:.0f} s; nothing was skipped")
    finally:
        reader.close()


def run_skip(cfg: Config, plan: SkipPlan, *, open_dlq: Callable[[str], DeadLetterSink] | None = None) -> int:
    """Dead-letter every message of the plan, then commit ``last + 1``; returns how many were skipped."""
    from sidepath.sinks import open_dead_letter_sink

    members = active_members(cfg, plan.group)
    if members:
        raise FatalError(f"group {plan.group!r} has {len(members)} active member(s) ({', '.join(members[:3])}); "
                         "stop its workers first (scale to 0; static members stay listed for "
                         "kafka.session_timeout_ms), then run skip again")
    letters = _read(cfg, plan)
    dlq = (open_dlq or open_dead_letter_sink)(cfg.sinks.dead_letter)
    try:
        for i in range(0, len(letters), 500):
            dlq.write_letters(letters[i:i + 500])
    finally:
        dlq.close()
    committer = Consumer(consumer_config(cfg, **{"group.id": plan.group}))
    try:
        committer.commit(offsets=[TopicPartition(plan.topic, plan.partition, plan.last + 1,
                                                 metadata=commit_metadata())], asynchronous=False)
    except KafkaException as exc:
        raise FatalError(f"the dead letters are written but the commit failed: {exc.args[0]}; run skip again "
                         "(the letters are keyed, a second run duplicates nothing in a keyed sink)") from None
    finally:
        committer.close()
    log.warning("skipped %d message(s) of %s[%d] (offsets %d..%d) for group %s", len(letters), plan.topic,
                plan.partition, plan.first, plan.last, plan.group)
    return len(letters)
