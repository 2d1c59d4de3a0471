"""Liveness, readiness, lag and stall detection (refreshed from the poll loop).

The HTTP checks (``ping``, ``ready``; any thread) read only what the poll loop
publishes: an immutable ``PollSnapshot`` replaced (one reference store) at each
poll and rebalance.  The lag refresh runs on the poll loop itself (``tick``), so it
may read the engine's consumer, tracker and in-flight messages.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaException, TopicPartition

from sidepath.sinks.base import SourceRef
from sidepath.worker.engine.inflight import Inflight
from sidepath.worker.engine.offsets import OffsetTracker
from sidepath.worker.jobs.lag import partition_lag
from sidepath.worker.ops.metrics import Metrics

__all__ = ["Health", "PollSnapshot"]

log = logging.getLogger(__name__)

#: the most time one refresh spends on the end offsets of partitions this pod does not own
_TOTAL_BUDGET_S = 1.0


@dataclass(frozen=True)
class PollSnapshot:
    """What the poll loop last published for the HTTP checks."""

    last_poll: float                        # time.time() of the last poll
    assigned: tuple[tuple[str, int], ...]   # the partitions the offset tracker holds


class EngineView(Protocol):
    """What the lag refresh (on the poll loop) reads of the engine (the engine imports this
    module, so not the class itself)."""

    @property
    def consumer(self) -> Any: ...

    @property
    def inflight(self) -> dict[SourceRef, Inflight]: ...

    @property
    def pacer(self) -> Any: ...

    @property
    def start(self) -> Any: ...

    @property
    def tracker(self) -> OffsetTracker: ...


class Health:
    def __init__(self, metrics: Metrics, *, group: str, ping_timeout_s: float, stall_after_s: float,
                 lag_interval_s: float, runners: Sequence[Any] = (), offset_reset: str = "earliest") -> None:
        self.metrics, self.group = metrics, group
        self.offset_reset = offset_reset      # kafka.auto_offset_reset: where a never-committed partition starts
        self.ping_timeout_s, self.stall_after_s, self.lag_interval_s = ping_timeout_s, stall_after_s, lag_interval_s
        self.runners = list(runners)
        self.snapshot: PollSnapshot | None = None     # published by the poll loop (``publish``)
        self.models_ready = False
        # replaced, never changed in place: the HTTP thread reads it while the poll loop refreshes
        self.stalled: frozenset[tuple[str, int]] = frozenset()
        self._next_refresh = 0.0
        self._progress: dict[tuple[str, int], tuple[int | None, float]] = {}
        self.started = time.time()
        # the lag refresh's own client (client.id <client.id>-lag, never joins the group): a broker
        # quota on the worker's client.id holds every request on the consumer's connections back,
        # which would block the poll loop for seconds and leave the lag series stale; None = the consumer
        self.lag_client: Any = None
        self.gpu_used: Any = None          # () -> bytes, set when the model runs on a GPU

    # ---- HTTP checks (any thread): the published snapshot only --------------------
    def ping(self) -> tuple[bool, str]:
        now = time.time()
        snap = self.snapshot
        last = snap.last_poll if snap is not None else self.started
        if now - last > self.ping_timeout_s:
            return False, f"poll loop silent for {now - last:.0f} s"
        mono = time.monotonic()
        for r in self.runners:
            busy = getattr(r, "busy_since", None)
            if busy is not None and mono - busy > self.ping_timeout_s:
                return False, f"model {r.model.name} stuck in one call for {mono - busy:.0f} s"
        return True, "alive"

    def ready(self) -> tuple[bool, str]:
        if not self.models_ready:
            return False, "model loading"
        snap = self.snapshot
        if snap is None or not snap.assigned:
            return False, "no partitions assigned"
        stalled = self.stalled
        if stalled:
            return False, "stalled: " + ", ".join(f"{t}[{p}]" for t, p in sorted(stalled))
        return True, "ready"

    # ---- called by the poll loop --------------------------------------------------
    def publish(self, snapshot: PollSnapshot) -> None:
        self.snapshot = snapshot          # one reference store: the HTTP thread sees the old or the new

    def tick(self, engine: EngineView) -> None:
        now = time.monotonic()
        if now < self._next_refresh:
            return
        self._next_refresh = now + self.lag_interval_s
        self.refresh(engine)

    def refresh(self, engine: EngineView) -> None:
        if self.gpu_used is not None:
            self.metrics.gpu_memory_used.set(self.gpu_used())
        keys = engine.tracker.partitions()
        if not keys:
            self.metrics.group_lag.clear()    # a pod without partitions must not hold an old total up
            return
        # the group's total over every partition of the topic (KEDA's view), so that a dashboard or
        # an HPA takes one series instead of summing per-pod ones; the per-partition series below
        # stay for the partitions this pod owns
        client = self.lag_client if self.lag_client is not None else engine.consumer
        tps = _all_partitions(client, keys)
        try:
            committed = {(tp.topic, tp.partition): tp.offset for tp in client.committed(tps, timeout=2)}
        except (KafkaException, RuntimeError) as exc:
            log.debug("lag refresh skipped: %s", exc)
            return
        # --from-beginning starts a partition without a committed offset at its log start, like earliest
        reset = "earliest" if engine.start == "beginning" else self.offset_reset
        wall = time.time()
        owned = set(keys)
        total: int | None = 0
        # this runs on the poll loop: partitions other pods own get a bounded share of its time
        budget_end = time.monotonic() + _TOTAL_BUDGET_S
        # held by a run window or by yielding to the live flow: waiting on purpose, not stalled
        on_purpose = engine.pacer is not None and engine.pacer.idle_on_purpose()
        for tp in tps:
            k = (tp.topic, tp.partition)
            if k not in owned and (total is None or time.monotonic() > budget_end):
                total = None                  # no total this round rather than a partial one
                continue
            try:
                lo, hi = client.get_watermark_offsets(tp, timeout=2)
            except (KafkaException, RuntimeError):
                total = None                  # one unknown partition: no total rather than a low one
                continue
            c = committed.get(k, -1)
            lag = partition_lag(c, lo, hi, reset)
            if total is not None:
                total += lag
            if k not in owned:
                continue
            labels = (k[0], str(k[1]), self.group)
            self.metrics.high_watermark.labels(*labels).set(hi)
            if c is not None and c >= 0:
                self.metrics.committed.labels(*labels).set(c)
            self.metrics.lag.labels(*labels).set(lag)
            low = engine.tracker.lowest_pending(k)
            inf = engine.inflight.get(SourceRef(k[0], k[1], low)) if low is not None else None
            self.metrics.oldest_unfinished_age.labels(*labels).set(
                time.monotonic() - inf.t0 if inf is not None else 0)
            if on_purpose:
                self._progress[k] = (c if c is not None and c >= 0 else None, wall)
                self.stalled = self.stalled - {k}
            else:
                self._stall_check(k, c if c is not None and c >= 0 else None, hi, wall, labels)
        if total is not None:
            self.metrics.group_lag.labels(keys[0][0], self.group).set(total)

    def _stall_check(self, k: tuple[str, int], committed: int | None, hi: int, wall: float,
                     labels: tuple[str, str, str]) -> None:
        prev = self._progress.get(k)
        if prev is None or prev[0] != committed:
            self._progress[k] = (committed, wall)
            self.metrics.last_progress.labels(*labels).set(wall)
            self.stalled = self.stalled - {k}
            return
        lag = hi - (committed or 0)
        if lag > 0 and wall - prev[1] > self.stall_after_s:
            if k not in self.stalled:
                self.stalled = self.stalled | {k}
                self.metrics.stalls.inc()
                log.error("partition %s[%d] stalled: lag %d and no progress for %.0f s",
                          k[0], k[1], lag, wall - prev[1])
        else:
            self.stalled = self.stalled - {k}

    def forget(self, keys: Sequence[tuple[str, int]]) -> None:
        for k in keys:
            self._progress.pop(k, None)
            self.stalled = self.stalled - {k}


def _all_partitions(client: Any, owned: Sequence[tuple[str, int]]) -> list[TopicPartition]:
    """Every partition of the topic (from the client's metadata); the owned ones when it cannot say."""
    topic = owned[0][0]
    try:
        md = client.list_topics(topic, timeout=2).topics.get(topic)
    except (KafkaException, RuntimeError):
        md = None
    parts = sorted(md.partitions) if md is not None and md.error is None and md.partitions else []
    return [TopicPartition(topic, p) for p in parts] or [TopicPartition(t, p) for t, p in owned]
