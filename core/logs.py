"""Log helpers every package uses: a throttle for repeated conditions, and the settings
that route librdkafka's own log lines through Python logging.

The bottom layer: imports nothing of sidepath but core/."""
from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from typing import Any

__all__ = ["Throttle", "librdkafka_logging"]


class Throttle:
    """Says a repeated condition once per ``period_s`` (per key): librdkafka reports every
    reconnect attempt to a broker that is away, hundreds of lines a minute otherwise."""

    def __init__(self, period_s: float = 30.0) -> None:
        self.period_s = period_s
        self._last: dict[Hashable, float] = {}

    def due(self, key: Hashable) -> bool:
        now = time.monotonic()
        if now - self._last.get(key, -self.period_s) < self.period_s:
            return False
        self._last[key] = now
        return True


def librdkafka_logging() -> dict[str, Any]:
    """Settings for every librdkafka client: its own log lines go through logging, and only
    critical ones, never as raw ``%3|...|FAIL|`` lines on stderr (one per reconnect to a broker
    that is away).  Errors reach us anyway: through ``error_cb`` or as a raised KafkaError."""
    return {"log_level": 2, "logger": logging.getLogger("sidepath.librdkafka")}
