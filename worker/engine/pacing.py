"""Pacing: the reasons a worker holds back on purpose, on top of backpressure.

Three reasons, any of which holds consumption (they compose: the poll loop pauses its partitions
while any reason, backpressure included, holds, and resumes when none does):

- ``budget``: ``engine.max_messages_per_s`` / ``engine.max_bytes_per_s`` are token buckets.  A
  message is charged when it is taken; the bucket may go into debt (a message's size is known only
  after it is fetched), and the worker holds until the bucket has refilled half a second's worth,
  so partitions are paused and resumed about twice a second at most.  The bucket saves up to two
  seconds' worth, so the time a resumed partition needs to fetch again is not lost budget.
- ``window``: ``engine.run_window`` -- outside every window nothing is taken.
- ``yield``: the live (review) pipeline's consumer group is behind (``live.*``); a background
  probe (``LiveLagProbe``) reads its lag every few seconds and publishes a flag.

See docs/operations.md, "Living next to the review pipeline".
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from sidepath.core.run_window import RunWindow, parse_run_window
from sidepath.worker.config import Config

__all__ = ["TokenBucket", "RunWindow", "parse_run_window", "Pacer", "PacingMetrics", "build_pacing_metrics",
           "LiveLagProbe", "pacer_from_config"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class TokenBucket:
    """``rate`` units per second, at most ``burst_s`` seconds of them saved up; may go into debt.
    ``resume_level`` (``resume_s`` worth): where a holder waiting for tokens may go on."""

    def __init__(self, rate: float, *, burst_s: float = 2.0, resume_s: float = 0.5,
                 clock: Clock = time.monotonic) -> None:
        self.rate = float(rate)
        self.capacity = max(1.0, self.rate * burst_s)
        self.resume_level = max(1.0, self.rate * resume_s)
        self.clock = clock
        self.tokens = self.resume_level          # no start-up burst
        self._stamp = clock()

    def level(self) -> float:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        return self.tokens

    def charge(self, n: float) -> None:
        self.level()
        self.tokens -= n


@dataclass
class PacingMetrics:
    yielding: Gauge
    outside_window: Gauge
    budget_held: Gauge
    live_lag: Gauge


def build_pacing_metrics(registry: CollectorRegistry) -> PacingMetrics:
    return PacingMetrics(
        yielding=Gauge("sidepath_yielding", "1 while this worker holds consumption because the live pipeline's "
                       "consumer group (live.group_id) is behind.", registry=registry),
        outside_window=Gauge("sidepath_outside_run_window", "1 while this worker holds consumption because "
                             "the clock is outside every engine.run_window.", registry=registry),
        budget_held=Gauge("sidepath_budget_held", "1 while this worker holds consumption to keep within "
                          "engine.max_messages_per_s / engine.max_bytes_per_s.", registry=registry),
        live_lag=Gauge("sidepath_live_group_lag_messages", "Lag of the live pipeline's consumer group "
                       "(live.group_id on live.topic) as last probed; NaN when unknown.", registry=registry),
    )


class Pacer:
    """Answers the poll loop's two questions: how many messages may I take now, and must I hold?

    Called from one thread (the poll loop or the backfill loop); the live probe only sets a flag.
    """

    def __init__(self, *, messages_per_s: float = 0, bytes_per_s: float = 0,
                 windows: Sequence[RunWindow] = (), live: LiveLagProbe | None = None,
                 metrics: PacingMetrics | None = None, wall: Clock = time.time,
                 mono: Clock = time.monotonic) -> None:
        self.messages = TokenBucket(messages_per_s, clock=mono) if messages_per_s > 0 else None
        self.bytes = TokenBucket(bytes_per_s, clock=mono) if bytes_per_s > 0 else None
        self.windows, self.live, self.metrics, self.wall = list(windows), live, metrics, wall
        self._budget_held = False
        self._mean_size = 0.0                    # bytes per message seen (moving average): sizes a take
        self.reason: str | None = None           # the reason holding now, for logs and tests
        self._said: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.messages or self.bytes or self.windows or self.live)

    def room(self, n: int) -> int:
        """At most ``n`` messages, fewer when a budget has less room (never below 1): a take never
        overdraws a bucket by more than about one message, so the pace stays even."""
        if self.messages is not None:
            n = min(n, math.floor(self.messages.level()))
        if self.bytes is not None:
            n = min(n, math.floor(self.bytes.level() / self._mean_size) if self._mean_size else 1)
        return max(1, n)

    def charge(self, messages: int, nbytes: int) -> None:
        if self.messages is not None and messages:
            self.messages.charge(messages)
        if self.bytes is not None and nbytes:
            self.bytes.charge(nbytes)
            size = nbytes / max(1, messages)
            self._mean_size = size if not self._mean_size else 0.8 * self._mean_size + 0.2 * size

    def in_window(self) -> bool:
        if not self.windows:
            return True
        now = self.wall()
        return any(w.is_open(now) for w in self.windows)

    def _over_budget(self) -> bool:
        buckets = [b for b in (self.messages, self.bytes) if b is not None]
        if not buckets:
            return False
        if self._budget_held:      # hysteresis: hold until every bucket has refilled to its resume level
            self._budget_held = any(b.level() < b.resume_level for b in buckets)
        else:
            self._budget_held = (self.messages is not None and self.messages.level() < 1) or \
                (self.bytes is not None and self.bytes.level() <= 0)
        return self._budget_held

    def hold(self) -> str | None:
        """The reason to hold consumption now (``yield`` | ``window`` | ``budget``), or None."""
        yielding = self.live is not None and self.live.behind.is_set()
        outside = not self.in_window()
        budget = self._over_budget()
        reason = "yield" if yielding else "window" if outside else "budget" if budget else None
        if self.metrics is not None:
            self.metrics.yielding.set(int(yielding))
            self.metrics.outside_window.set(int(outside))
            self.metrics.budget_held.set(int(budget))
        if reason != self.reason:
            self._log_change(self.reason, reason)
        self.reason = reason
        return reason

    def idle_on_purpose(self) -> bool:
        """True while a window or the live flow (not the budget) keeps this worker from progressing:
        the stall check must not call that stuck."""
        return self.reason in ("yield", "window")

    def _log_change(self, old: str | None, new: str | None) -> None:
        # said once per change; the budget's many short holds are not news
        if new == "yield":
            lag = self.live.lag if self.live is not None else None
            log.warning("yielding to the live pipeline: group %s is %s messages behind (over live.max_lag=%d); "
                        "consuming nothing until it is at or below live.resume_lag=%d",
                        self.live.group if self.live else "?", lag, self.live.max_lag if self.live else 0,
                        self.live.resume_lag if self.live else 0)
        elif new == "window":
            log.info("outside every run window (%s): consuming nothing until one opens",
                     "; ".join(w.text for w in self.windows))
        elif old == "yield":
            log.info("the live pipeline caught up (group %s lag %s): consuming again",
                     self.live.group if self.live else "?", self.live.lag if self.live else None)
        elif old == "window":
            log.info("run window open: consuming again")

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


class LiveLagProbe:
    """A background thread reading the live group's total lag every ``interval_s``; sets ``behind``
    above ``max_lag`` and clears it at or below ``resume_lag`` (hysteresis).  Its own Kafka client:
    nothing of it runs on the poll loop."""

    def __init__(self, read_lag: Callable[[], int | None], *, group: str, max_lag: int, resume_lag: int,
                 interval_s: float, metrics: PacingMetrics | None = None) -> None:
        self.read_lag, self.group = read_lag, group
        self.max_lag, self.resume_lag, self.interval_s, self.metrics = max_lag, resume_lag, interval_s, metrics
        self.behind = threading.Event()
        self.lag: int | None = None
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._loop, name="live-lag-probe", daemon=True)

    def start(self, first_within_s: float = 10.0) -> LiveLagProbe:
        """Start probing; wait (bounded) for the first reading, so a worker that starts while the
        live flow is behind takes nothing at all."""
        self._first = threading.Event()
        self._thread.start()
        self._first.wait(first_within_s)
        return self

    def probe_once(self) -> None:
        try:
            lag = self.read_lag()
        except Exception as exc:  # noqa: BLE001 - any client failure: keep the last decision, say so once
            if not self._failing:
                log.warning("cannot read the lag of live group %s (%s); keeping the last decision (%s)",
                            self.group, exc, "yielding" if self.behind.is_set() else "consuming")
            self._failing = True
            return
        if self._failing:
            log.info("reading the lag of live group %s again", self.group)
        self._failing = False
        self.lag = lag
        if self.metrics is not None:
            self.metrics.live_lag.set(math.nan if lag is None else lag)
        if lag is None:
            return
        if lag > self.max_lag:
            self.behind.set()
        elif lag <= self.resume_lag:
            self.behind.clear()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.probe_once()
            self._first.set()
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.interval_s + 15)
        close = getattr(self.read_lag, "close", None)
        if close is not None and not self._thread.is_alive():
            close()


class _LiveLagReader:
    """Total lag of a group on a topic: committed offsets and end offsets from the broker, through one
    consumer that carries the live group's id but never subscribes (so it never joins that group)."""

    def __init__(self, conf: dict[str, Any], topic: str) -> None:
        from confluent_kafka import Consumer

        from sidepath.core.logs import librdkafka_logging

        self.consumer = Consumer({**librdkafka_logging(), **conf})
        self.topic = topic
        self.tps: list[Any] = []

    def __call__(self) -> int | None:
        from confluent_kafka import TopicPartition

        if not self.tps:
            md = self.consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
            if md is None or md.error is not None or not md.partitions:
                raise RuntimeError(f"topic {self.topic!r} not found")
            self.tps = [TopicPartition(self.topic, p) for p in sorted(md.partitions)]
        committed = self.consumer.committed(self.tps, timeout=5)
        total, known = 0, False
        for tp in committed:
            lo, hi = self.consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=5)
            if tp.offset >= 0:            # a partition the group never committed: lag unknown, not counted
                total += max(0, hi - max(tp.offset, lo))
                known = True
        return total if known else None

    def close(self) -> None:
        self.consumer.close()


def pacer_from_config(cfg: Config, registry: CollectorRegistry | None, *, wall: Clock = time.time,
                      use_live: bool = True) -> Pacer:
    """The worker's pacer from ``engine.*`` and ``live.*`` (the live probe only when live.group_id is set)."""
    metrics = build_pacing_metrics(registry) if registry is not None else None
    windows = [parse_run_window(w) for w in cfg.engine.run_window]
    live = None
    if use_live and cfg.live.group_id:
        from sidepath.worker.kafka_config import client_id, consumer_config

        reader = _LiveLagReader(consumer_config(cfg, **{"group.id": cfg.live.group_id,
                                                        "client.id": f"{client_id(cfg)}-live-probe"}),
                                cfg.live.topic or cfg.kafka.topic)
        live = LiveLagProbe(reader, group=cfg.live.group_id, max_lag=cfg.live.max_lag,
                            resume_lag=cfg.live.resume_lag, interval_s=cfg.live.check_interval_s,
                            metrics=metrics).start()
    pacer = Pacer(messages_per_s=cfg.engine.max_messages_per_s, bytes_per_s=cfg.engine.max_bytes_per_s,
                  windows=windows, live=live, metrics=metrics, wall=wall)
    return pacer

