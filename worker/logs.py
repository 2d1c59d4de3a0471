"""Logging: one JSON object per line (UTC, ready for ELK), or text on a terminal."""
from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Any

__all__ = ["setup_logging", "JsonFormatter", "Throttle", "librdkafka_logging"]

#: ``extra=`` fields copied into the JSON object when present
CONTEXT_FIELDS = ("postid", "topic", "partition", "offset", "stage", "model", "group")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for f in CONTEXT_FIELDS:
            if hasattr(record, f):
                doc[f] = getattr(record, f)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(ctx)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        ctx = " ".join(f"{f}={getattr(record, f)}" for f in CONTEXT_FIELDS if hasattr(record, f))
        record.ctx = f" [{ctx}]" if ctx else ""
        return super().format(record)


def setup_logging(level: str = "INFO", fmt: str = "auto") -> None:
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stdout if fmt == "json" else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "PIL", "matplotlib", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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
