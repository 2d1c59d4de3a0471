"""The lag reader: a thread that asks the broker for the group's lag, off the poll loop.

Every ``metrics.lag_interval_s`` it reads the partitions the poll loop last
published (``Health.snapshot``), then, with its own Kafka client, the group's
committed offsets and the watermarks of every partition of the topic, and hands a
``LagReport`` to ``Health.deliver``; the poll loop applies it (worker/ops/health.py).
Its client carries the group's id but never subscribes, so it never joins the
group (like ``sidepath lag``'s reader); the engine's consumer is the poll loop's alone.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from sidepath.core.logs import Throttle
from sidepath.worker.ops.health import Health, LagReport, PartitionOffsets
from sidepath.worker.ops.lag_figures import partition_lag

__all__ = ["LagReader", "read_lag"]

log = logging.getLogger(__name__)

#: each broker request of one refresh waits at most this long
_REQUEST_TIMEOUT_S = 2.0


def read_lag(client: Consumer, owned: tuple[tuple[str, int], ...], reset: str) -> LagReport | None:
    """One refresh: the lag of every partition of the topic that ``owned`` belongs to (the owned ones
    when the client cannot list them); None when the committed offsets cannot be read."""
    wall = time.time()
    if not owned:
        return LagReport(wall)
    topic = owned[0][0]
    tps = _all_partitions(client, topic) or [TopicPartition(t, p) for t, p in owned]
    try:
        committed = {(tp.topic, tp.partition): tp.offset for tp in client.committed(tps, timeout=_REQUEST_TIMEOUT_S)}
    except (KafkaException, RuntimeError) as exc:
        log.debug("lag refresh skipped: %s", exc)
        return None
    seen: dict[tuple[str, int], PartitionOffsets] = {}
    total: int | None = 0
    for tp in tps:
        k = (tp.topic, tp.partition)
        try:
            lo, hi = client.get_watermark_offsets(tp, timeout=_REQUEST_TIMEOUT_S)
        except (KafkaException, RuntimeError):
            total = None                  # one unknown partition: no total rather than a low one
            continue
        c = committed.get(k, -1)
        lag = partition_lag(c, lo, hi, reset)
        seen[k] = PartitionOffsets(c if c is not None and c >= 0 else None, lo, hi, lag)
        if total is not None:
            total += lag
    return LagReport(wall, seen, total, topic)


def _all_partitions(client: Consumer, topic: str) -> list[TopicPartition]:
    """Every partition of the topic, from the client's metadata; [] when it cannot say."""
    try:
        md = client.list_topics(topic, timeout=_REQUEST_TIMEOUT_S).topics.get(topic)
    except (KafkaException, RuntimeError):
        return []
    parts = sorted(md.partitions) if md is not None and md.error is None and md.partitions else []
    return [TopicPartition(topic, p) for p in parts]


class LagReader(threading.Thread):
    def __init__(self, health: Health, client: Callable[[], Consumer], *, interval_s: float,
                 reset: str) -> None:
        """``client`` builds the reader's own client (on its thread); ``reset``: where a partition without a
        committed offset starts (``earliest`` or ``latest``), for its lag."""
        super().__init__(name="lag-reader", daemon=True)
        self.health, self.client, self.reset = health, client, reset
        self.interval_s = max(interval_s, 0.05)     # 0 (the config allows it) must not spin
        self._stopping = threading.Event()
        self._warn = Throttle()

    def run(self) -> None:
        try:
            client = self.client()
        except Exception as exc:  # noqa: BLE001 - the engine's own consumer reports a bad config
            log.warning("no lag metrics: cannot build the lag reader's Kafka client (%s)", exc)
            return
        try:
            while not self._stopping.wait(self.interval_s):
                try:
                    self.refresh(client)
                except Exception:  # noqa: BLE001 - a bug here must not end the lag metrics for good
                    if self._warn.due("refresh"):
                        log.exception("lag refresh failed")
        finally:
            client.close()

    def refresh(self, client: Consumer) -> None:
        health = self.health
        if health.gpu_used is not None:
            health.metrics.gpu_memory_used.set(health.gpu_used())
        snap = health.snapshot
        if snap is None:
            return                        # the poll loop has not started
        report = read_lag(client, snap.assigned, self.reset)
        if report is not None:
            health.deliver(report)

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=2 * _REQUEST_TIMEOUT_S + 1)
