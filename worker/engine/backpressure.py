"""Backpressure and pacing: when the poll loop stops taking messages, and pauses its partitions.

Over a cap on in-flight messages or bytes, the poll loop stops taking messages; if
that lasts ``pause_after_s`` (or a sink is being retried) every assigned partition is
paused, so that ``consume()`` can keep the group membership alive without fetching.
Below ``resume_fraction`` of the caps they resume.  The pacer (budgets, run
windows, yielding to the live flow: worker/engine/pacing.py) pauses them too.
Only the poll loop uses this.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer

from sidepath.worker.config import EngineConfig
from sidepath.worker.engine.pacing import Pacer
from sidepath.worker.ops.metrics import Metrics

__all__ = ["Backpressure"]

log = logging.getLogger(__name__)


class Backpressure:
    def __init__(self, limits: EngineConfig, metrics: Metrics, *, is_blocked: Callable[[], bool],
                 pacer: Pacer | None) -> None:
        self.limits, self.metrics, self.is_blocked, self.pacer = limits, metrics, is_blocked, pacer
        self.paused = False                 # the partitions are paused (backpressure or pacing)
        self.over = False                   # a cap is reached: take nothing until below it
        self._bp_paused = False             # paused because of backpressure
        self._over_since = 0.0

    def update(self, consumer: Consumer, n: int, b: int, limit_reached: bool) -> None:
        """``n`` messages and ``b`` bytes in flight; ``limit_reached``: --max-messages taken."""
        lim = self.limits
        self.metrics.inflight_messages.set(n)
        self.metrics.inflight_bytes.set(b)
        blocked = self.is_blocked()
        over = n >= lim.max_inflight_messages or b >= lim.max_inflight_bytes or blocked or limit_reached
        under = n <= lim.max_inflight_messages * lim.resume_fraction and \
            b <= lim.max_inflight_bytes * lim.resume_fraction and not blocked and not limit_reached
        now = time.monotonic()
        if over and not self.over:
            self._over_since = now
        self.over = over or (self._bp_paused and not under)
        if over and not self._bp_paused and (blocked or now - self._over_since >= lim.pause_after_s):
            self._bp_paused = True
            self.metrics.paused.set(1)
            log.debug("paused: %d messages, %d bytes in flight", n, b)
        elif self._bp_paused and under:
            self._bp_paused = False
            self.over = False
            self.metrics.paused.set(0)
        self._apply_pause(consumer)

    def _apply_pause(self, consumer: Consumer) -> None:
        """Pause the partitions while any reason holds -- backpressure or one of the pacer's --
        and resume them when none does."""
        want = self._bp_paused or (self.pacer is not None and self.pacer.hold() is not None)
        if want != self.paused:
            assignment = consumer.assignment()
            if want:
                consumer.pause(assignment)
            else:
                consumer.resume(assignment)
            self.paused = want
