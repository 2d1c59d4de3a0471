"""Leaving the consumer group, bounded in time."""
from __future__ import annotations

import logging
import threading

from confluent_kafka import Consumer, KafkaException

__all__ = ["close_consumer"]

log = logging.getLogger(__name__)


def close_consumer(consumer: Consumer, timeout_s: float) -> None:
    """Leave the group; bounded, because librdkafka's close can hang when the group is in the
    middle of a cooperative rebalance (seen when several members stop at once).  Offsets were
    committed before, so giving up on the close loses nothing: the coordinator drops this
    member after ``session.timeout.ms`` instead of at once."""

    def close() -> None:
        try:
            consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("consumer close failed: %s", exc)

    t = threading.Thread(target=close, name="consumer-close", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        log.warning("consumer close did not finish in %.0f s (a rebalance in progress?); offsets are "
                    "committed, so exiting without it", timeout_s)
