"""partition_lag: the one lag rule shared by `sidepath lag` and the worker's metric (KEDA's offsetResetPolicy)."""
from __future__ import annotations

import math

import pytest

from sidepath.worker.ops.lag_figures import partition_lag


@pytest.mark.parametrize(("committed", "log_start", "end", "reset", "expected"), [
    (10, 0, 14, "earliest", 4),          # committed: end - committed, whatever the policy
    (10, 0, 14, "latest", 4),
    (14, 0, 14, "earliest", 0),
    (20, 0, 14, "earliest", 0),          # never below 0 (a truncated log)
    (None, 0, 5, "earliest", 5),         # never committed: read from the log start
    (-1001, 0, 5, "earliest", 5),        # librdkafka's OFFSET_INVALID sentinel counts as never committed
    (None, 7, 12, "earliest", 5),        # retention moved the log start: only what is left counts
    (None, 3, 12, "latest", 0),          # latest: starts at the end, nothing to read
    (None, 3, 12, "error", 0),           # error: reads nothing until an offset is set
    (None, 0, 0, "earliest", 0),         # an empty partition
])
def test_partition_lag_rule(committed, log_start, end, reset, expected):
    lag = partition_lag(committed, log_start, end, reset)
    assert lag == expected and not math.isnan(lag)
