"""The lag figures that `sidepath lag` and the worker's own lag metrics share.

``partition_lag`` is the one lag rule (KEDA's); ``commit_metadata`` is what the engine stores
with every commit, so that ``commit_age`` can tell how long ago a partition last committed.
Here, below the engine and the jobs, so that both can use them.
"""
from __future__ import annotations

import json
import time

__all__ = ["partition_lag", "commit_metadata", "commit_age"]


def partition_lag(committed: int | None, log_start: int, end: int, offset_reset: str) -> int:
    """Messages the group has yet to read in one partition; the worker's metric and `sidepath lag` share it.

    With a committed offset: end - committed (Kafka's tool's LAG), never below 0.  Without one
    (None or a negative sentinel) the group starts at ``auto.offset.reset``: with ``earliest``
    it reads from the log start offset (not 0: retention may have deleted the head), so the lag
    is end - log_start; with ``latest`` (and ``error``, which reads nothing until an operator
    sets an offset) it is 0.  This is KEDA's kafka scaler's ``offsetResetPolicy`` rule.
    """
    if committed is None or committed < 0:
        return max(0, end - max(0, log_start)) if offset_reset == "earliest" else 0
    return max(0, end - committed)


def commit_metadata() -> str:
    """Stored with every commit: lets `sidepath lag` show the last commit's age."""
    return json.dumps({"t": round(time.time(), 3)}, separators=(",", ":"))


def commit_age(metadata: str | None) -> float | None:
    try:
        return max(0.0, time.time() - float(json.loads(metadata or "")["t"]))
    except (ValueError, KeyError, TypeError):
        return None
