"""Parse ``--start-at``: ISO-8601 (UTC when no zone is given) or epoch milliseconds."""
from __future__ import annotations

from datetime import UTC, datetime

from sidepath.core.errors import ConfigError

__all__ = ["parse_start_at"]


def parse_start_at(text: str) -> int:
    """Return epoch milliseconds."""
    t = text.strip()
    if t.isdigit():
        return int(t)
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError("--start-at", text, "use ISO-8601 like 2026-11-28T10:00:00Z, or epoch milliseconds") \
            from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)
