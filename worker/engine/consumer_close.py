"""Leaving the consumer group, bounded in time."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException

__all__ = ["close_consumer", "bounded"]

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

    bounded(close, timeout_s, "consumer close", then="offsets are committed, so exiting without it")


def bounded(fn: Callable[[], None], timeout_s: float, what: str, *,
            then: str = "going on without it (what it did not commit is redone after a restart)") -> None:
    """Run ``fn`` on a helper thread and wait at most ``timeout_s``: librdkafka's synchronous commit can
    hang while the group rebalances (several members stopping at once), and a stopping worker must
    not hang with it.  ``then`` says what happens if it does not finish."""
    t = threading.Thread(target=fn, name=what, daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        log.warning("%s did not finish in %.0f s (a rebalance in progress?); %s", what, timeout_s, then)
