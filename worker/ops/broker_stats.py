"""librdkafka statistics (``statistics.interval.ms``) turned into metrics: broker throttle time.

A broker that enforces a quota (``consumer_byte_rate`` on this worker's client.id) delays its
answers and says by how long; librdkafka reports that per broker as ``brokers[*].throttle`` (a
window of the last interval, in ms).  The worker keeps working while throttled -- it just gets its
records more slowly -- and this metric shows why.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

__all__ = ["throttle_ms", "throttle_stats_cb"]

log = logging.getLogger(__name__)

#: a minute without a throttled answer ends "throttled": several quota windows (11 s by default)
QUIET_S = 60.0


def throttle_ms(stats_json: str) -> tuple[float, float]:
    """(average, maximum) broker throttle time in ms over the last statistics interval, the highest of
    any broker; (0, 0) when no broker throttled."""
    doc = json.loads(stats_json)
    avg = peak = 0.0
    for broker in (doc.get("brokers") or {}).values():
        window = broker.get("throttle") or {}
        avg = max(avg, float(window.get("avg") or 0))
        peak = max(peak, float(window.get("max") or 0))
    return avg, peak


def throttle_stats_cb(registry: CollectorRegistry, *, quiet_s: float = QUIET_S,
                      clock: Callable[[], float] = time.monotonic) -> Callable[[str], None]:
    """A librdkafka ``stats_cb`` that sets ``sidepath_broker_throttle_seconds{stat=avg|max}`` (the last
    interval) and ``sidepath_broker_throttled``: 1 from the first throttled answer until ``quiet_s``
    without one. A throttled worker gets a throttled answer about once per quota window and none in
    between, so the last interval alone says 0 most of the time; the log says so once each way."""
    gauge = Gauge("sidepath_broker_throttle_seconds", "Time the brokers held this worker's requests back "
                  "for a quota over the last statistics interval (kafka.statistics_interval_ms), "
                  "the highest of any broker: stat=avg | max.", ["stat"], registry=registry)
    total = Gauge("sidepath_broker_throttled", "1 while a broker quota throttles this worker (until "
                  f"{quiet_s:.0f} s without a throttled answer).", registry=registry)
    last_throttled: list[float | None] = [None]

    def on_stats(stats_json: str) -> None:
        try:
            avg, peak = throttle_ms(stats_json)
        except (ValueError, TypeError, AttributeError) as exc:
            log.debug("unreadable librdkafka statistics: %s", exc)
            return
        gauge.labels("avg").set(avg / 1000)
        gauge.labels("max").set(peak / 1000)
        now = clock()
        if peak > 0:
            if last_throttled[0] is None:
                log.info("a broker quota throttles this worker (up to %.0f ms per request); still consuming, "
                         "more slowly", peak)
            last_throttled[0] = now
        elif last_throttled[0] is not None and now - last_throttled[0] >= quiet_s:
            last_throttled[0] = None
            log.info("no longer throttled by a broker quota (no throttled answer for %.0f s)", quiet_s)
        total.set(int(last_throttled[0] is not None))

    return on_stats
