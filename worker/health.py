"""Liveness, readiness, lag and stall detection (refreshed from the poll loop)."""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaException, TopicPartition

from sidepath.worker.metrics import Metrics

if TYPE_CHECKING:
    from sidepath.worker.engine import Engine

__all__ = ["Health"]

log = logging.getLogger(__name__)


class Health:
    def __init__(self, metrics: Metrics, *, group: str, ping_timeout_s: float, stall_after_s: float,
                 lag_interval_s: float, runners: Sequence[Any] = ()) -> None:
        self.metrics, self.group = metrics, group
        self.ping_timeout_s, self.stall_after_s, self.lag_interval_s = ping_timeout_s, stall_after_s, lag_interval_s
        self.runners = list(runners)
        self.engine: Engine | None = None
        self.models_ready = False
        self.stalled: set[tuple[str, int]] = set()
        self._next_refresh = 0.0
        self._progress: dict[tuple[str, int], tuple[int | None, float]] = {}
        self.started = time.time()
        self.gpu_used: Any = None          # () -> bytes, set when the model runs on a GPU

    # ---- HTTP checks (any thread) ------------------------------------------------
    def ping(self) -> tuple[bool, str]:
        now = time.time()
        last = self.engine.last_poll if self.engine else self.started
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
        if self.engine is None or not self.engine.tracker.partitions():
            return False, "no partitions assigned"
        if self.stalled:
            return False, "stalled: " + ", ".join(f"{t}[{p}]" for t, p in sorted(self.stalled))
        return True, "ready"

    # ---- refreshed by the poll loop --------------------------------------------
    def tick(self, engine: Engine) -> None:
        now = time.monotonic()
        if now < self._next_refresh:
            return
        self._next_refresh = now + self.lag_interval_s
        self.refresh(engine)

    def refresh(self, engine: Engine) -> None:
        if self.gpu_used is not None:
            self.metrics.gpu_memory_used.set(self.gpu_used())
        keys = engine.tracker.partitions()
        if not keys:
            return
        tps = [TopicPartition(t, p) for t, p in keys]
        try:
            committed = {(tp.topic, tp.partition): tp.offset for tp in engine.consumer.committed(tps, timeout=2)}
        except (KafkaException, RuntimeError) as exc:
            log.debug("lag refresh skipped: %s", exc)
            return
        wall = time.time()
        # held by a run window or by yielding to the live flow: waiting on purpose, not stalled
        on_purpose = engine.pacer is not None and engine.pacer.idle_on_purpose()
        for k, tp in zip(keys, tps):
            try:
                _lo, hi = engine.consumer.get_watermark_offsets(tp, timeout=2)
            except (KafkaException, RuntimeError):
                continue
            labels = (k[0], str(k[1]), self.group)
            self.metrics.high_watermark.labels(*labels).set(hi)
            c = committed.get(k, -1)
            if c is None or c < 0:
                self.metrics.lag.labels(*labels).set(math.nan)
            else:
                self.metrics.committed.labels(*labels).set(c)
                self.metrics.lag.labels(*labels).set(max(0, hi - c))
            low = engine.tracker.lowest_pending(k)
            inf = engine.inflight.get((k[0], k[1], low)) if low is not None else None
            self.metrics.oldest_unfinished_age.labels(*labels).set(
                time.monotonic() - inf.t0 if inf is not None else 0)
            if on_purpose:
                self._progress[k] = (c if c is not None and c >= 0 else None, wall)
                self.stalled.discard(k)
            else:
                self._stall_check(k, c if c is not None and c >= 0 else None, hi, wall, labels)

    def _stall_check(self, k: tuple[str, int], committed: int | None, hi: int, wall: float,
                     labels: tuple[str, str, str]) -> None:
        prev = self._progress.get(k)
        if prev is None or prev[0] != committed:
            self._progress[k] = (committed, wall)
            self.metrics.last_progress.labels(*labels).set(wall)
            self.stalled.discard(k)
            return
        lag = hi - (committed or 0)
        if lag > 0 and wall - prev[1] > self.stall_after_s:
            if k not in self.stalled:
                self.stalled.add(k)
                self.metrics.stalls.inc()
                log.error("partition %s[%d] stalled: lag %d and no progress for %.0f s",
                          k[0], k[1], lag, wall - prev[1])
        else:
            self.stalled.discard(k)

    def forget(self, keys: Sequence[tuple[str, int]]) -> None:
        for k in keys:
            self._progress.pop(k, None)
            self.stalled.discard(k)
