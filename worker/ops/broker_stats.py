"""librdkafka statistics (``statistics.interval.ms``) turned into metrics: broker throttle time.

A broker that enforces a quota (``consumer_byte_rate`` on this worker's client.id) delays its
answers and says by how long; librdkafka reports that per broker as ``brokers[*].throttle`` (a
window of the last interval, in ms).  The worker keeps working while throttled -- it just gets its
records more slowly -- and this metric shows why.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

__all__ = ["throttle_ms", "throttle_stats_cb"]

log = logging.getLogger(__name__)


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


def throttle_stats_cb(registry: CollectorRegistry) -> Callable[[str], None]:
    """A librdkafka ``stats_cb`` that sets ``sidepath_broker_throttle_seconds{stat=avg|max}``."""
    gauge = Gauge("sidepath_broker_throttle_seconds", "Time the brokers held this worker's requests back "
                  "for a quota over the last statistics interval (kafka.statistics_interval_ms), "
                  "the highest of any broker: stat=avg | max.", ["stat"], registry=registry)
    total = Gauge("sidepath_broker_throttled", "1 while a broker quota throttles this worker.", registry=registry)
    said = [False]

    def on_stats(stats_json: str) -> None:
        try:
            avg, peak = throttle_ms(stats_json)
        except (ValueError, TypeError, AttributeError) as exc:
            log.debug("unreadable librdkafka statistics: %s", exc)
            return
        gauge.labels("avg").set(avg / 1000)
        gauge.labels("max").set(peak / 1000)
        total.set(int(peak > 0))
        if (peak > 0) != said[0]:
            said[0] = peak > 0
            if peak > 0:
                log.info("a broker quota throttles this worker (up to %.0f ms per request); still consuming, "
                         "more slowly", peak)
            else:
                log.info("no longer throttled by a broker quota")

    return on_stats
