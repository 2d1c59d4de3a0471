"""Logging: one JSON object per line (UTC, ready for ELK), or text on a terminal."""
from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["setup_logging", "JsonFormatter", "TextFormatter", "escape_controls"]

_C1 = re.compile(r"[\x7f-\x9f\u2028\u2029]")

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
        # json escapes C0 controls; C1 (a terminal's CSI is \x9b) and U+2028/9 it leaves raw
        return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(doc, ensure_ascii=False, default=str))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """``a\nb\x1b[31m`` -> ``a\\nb\\x1b[31m``: a value from a message (a URL, an error) cannot
    start a forged log line or send escape codes to the terminal that shows the log."""
    def one(m: re.Match[str]) -> str:
        c = m.group()
        return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
    return _CONTROL.sub(one, text)


class TextFormatter(logging.Formatter):
    """One line per record; what the record carries is escaped (``escape_controls``), only a
    traceback keeps its line breaks."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(ctx)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        ctx = " ".join(f"{f}={getattr(record, f)}" for f in CONTEXT_FIELDS if hasattr(record, f))
        record.ctx = escape_controls(f" [{ctx}]") if ctx else ""
        return super().format(record)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return "\n".join(escape_controls(line) for line in super().formatException(ei).split("\n"))


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


