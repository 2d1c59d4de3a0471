"""Liveness, readiness, lag and stall detection.

Three threads, and what each touches:

- the HTTP checks (``ping``, ``ready``; the HTTP server's thread) read only what the
  poll loop publishes: an immutable ``PollSnapshot`` replaced (one reference store) at
  each poll and rebalance, and the ``stalled`` set (also replaced, never changed);
- the lag reader (``worker/ops/lag_reader.py``, its own thread and its own Kafka
  client) reads the published snapshot, asks the broker for the committed and end
  offsets, and hands a ``LagReport`` over (``deliver``: one reference store);
- the poll loop (``tick``: no broker round trip) applies the newest report: the lag
  metrics of the partitions it still owns, the age of their oldest unfinished
  message (its tracker and in-flight table), and the stall check.

So only the poll loop touches its consumer, tracker and in-flight messages, and a slow
broker delays the lag metrics, never the poll loop.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sidepath.sinks.base import SourceRef
from sidepath.worker.engine.inflight import Inflight
from sidepath.worker.engine.offsets import OffsetTracker
from sidepath.worker.ops.metrics import Metrics

__all__ = ["Health", "PollSnapshot", "LagReport", "PartitionOffsets"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollSnapshot:
    """What the poll loop last published for the HTTP checks and the lag reader."""

    last_poll: float                        # time.time() of the last poll
    assigned: tuple[tuple[str, int], ...]   # the partitions the offset tracker holds


@dataclass(frozen=True)
class PartitionOffsets:
    """One partition as the broker saw it: the group's committed offset (None: none) and its watermarks."""

    committed: int | None
    low: int
    high: int
    lag: int                                # partition_lag(): what KEDA counts


@dataclass(frozen=True)
class LagReport:
    """What one lag refresh read from the broker (``worker/ops/lag_reader.py``)."""

    wall: float                             # time.time() when it was read
    partitions: dict[tuple[str, int], PartitionOffsets] = field(default_factory=dict)
    total: int | None = None                # the group's lag over every partition of the topic; None: unknown
    topic: str = ""


class EngineView(Protocol):
    """What applying a report (on the poll loop) reads of the engine (the engine imports this
    module, so not the class itself)."""

    @property
    def inflight(self) -> dict[SourceRef, Inflight]: ...

    @property
    def pacer(self) -> Any: ...

    @property
    def tracker(self) -> OffsetTracker: ...


class Health:
    def __init__(self, metrics: Metrics, *, group: str, ping_timeout_s: float, stall_after_s: float,
                 runners: Sequence[Any] = ()) -> None:
        self.metrics, self.group = metrics, group
        self.ping_timeout_s, self.stall_after_s = ping_timeout_s, stall_after_s
        self.runners = list(runners)
        self.snapshot: PollSnapshot | None = None     # published by the poll loop (``publish``)
        self.models_ready = False
        # replaced, never changed in place: the HTTP thread reads it while the poll loop applies a report
        self.stalled: frozenset[tuple[str, int]] = frozenset()
        self._report: LagReport | None = None         # delivered by the lag reader
        self._applied: LagReport | None = None
        self.reports_applied = 0
        self._progress: dict[tuple[str, int], tuple[int | None, float]] = {}
        self.started = time.time()
        self.gpu_used: Any = None          # () -> bytes, set when the model runs on a GPU (read by the lag reader)

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

    # ---- the lag reader (its thread) ----------------------------------------------
    def deliver(self, report: LagReport) -> None:
        self._report = report             # one reference store: the poll loop applies it at its next tick

    # ---- called by the poll loop --------------------------------------------------
    def publish(self, snapshot: PollSnapshot) -> None:
        self.snapshot = snapshot          # one reference store: the HTTP thread sees the old or the new

    def tick(self, engine: EngineView) -> None:
        """Apply the lag reader's newest report, once (no broker round trip)."""
        report = self._report
        if report is None or report is self._applied:
            return
        self._applied = report
        self.reports_applied += 1
        self.apply(report, engine)

    def apply(self, report: LagReport, engine: EngineView) -> None:
        keys = engine.tracker.partitions()
        if not keys:
            self.metrics.group_lag.clear()    # a pod without partitions must not hold an old total up
            return
        # held by a run window or by yielding to the live flow: waiting on purpose, not stalled
        on_purpose = engine.pacer is not None and engine.pacer.idle_on_purpose()
        now = time.monotonic()
        for k in keys:                        # the per-partition series: the partitions this pod owns now
            seen = report.partitions.get(k)
            if seen is None:
                continue
            c, labels = seen.committed, (k[0], str(k[1]), self.group)
            self.metrics.high_watermark.labels(*labels).set(seen.high)
            if c is not None:
                self.metrics.committed.labels(*labels).set(c)
            self.metrics.lag.labels(*labels).set(seen.lag)
            low = engine.tracker.lowest_pending(k)
            inf = engine.inflight.get(SourceRef(k[0], k[1], low)) if low is not None else None
            self.metrics.oldest_unfinished_age.labels(*labels).set(now - inf.t0 if inf is not None else 0)
            if on_purpose:
                self._progress[k] = (c, report.wall)
                self.stalled = self.stalled - {k}
            else:
                self._stall_check(k, c, seen.lag, report.wall, labels)
        # the group's total over every partition of the topic (KEDA's view), so that a dashboard or
        # an HPA takes one series instead of summing per-pod ones
        if report.total is not None:
            self.metrics.group_lag.labels(report.topic or keys[0][0], self.group).set(report.total)

    def _stall_check(self, k: tuple[str, int], committed: int | None, lag: int, wall: float,
                     labels: tuple[str, str, str]) -> None:
        prev = self._progress.get(k)
        if prev is None or prev[0] != committed:
            self._progress[k] = (committed, wall)
            self.metrics.last_progress.labels(*labels).set(wall)
            self.stalled = self.stalled - {k}
            return
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
