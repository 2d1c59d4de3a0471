"""How many CPUs this container may use, and the decode threads that follow from it.

A pod's CPU limit is a cgroup quota, not a smaller CPU count: ``os.cpu_count()`` says the
node's cores.  The usable count is the smaller of the scheduler affinity (cpusets, taskset)
and the quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``).
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

__all__ = ["usable_cpus", "auto_decode_threads", "decode_threads", "RESERVED_CPUS"]

log = logging.getLogger(__name__)

#: one core for the poll loop (and the sink writer), one for the model runner's Python side
RESERVED_CPUS = 2
_CGROUP = Path("/sys/fs/cgroup")


def _quota(root: Path) -> float | None:
    """CPUs allowed by the cgroup quota; None when unlimited or unknown."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]          # v2: "max 100000" or "400000 100000"
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())     # v1: -1 when unlimited
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def usable_cpus(cgroup_root: Path = _CGROUP) -> float:
    try:
        affinity = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        affinity = float(os.cpu_count() or 1)
    quota = _quota(cgroup_root)
    return min(affinity, quota) if quota is not None else affinity


def auto_decode_threads(cpus: float) -> int:
    """Whole CPUs less the poll loop's and the model runner's, at least 1."""
    return max(1, math.floor(cpus) - RESERVED_CPUS)


def decode_threads(configured: int) -> int:
    """decode.threads, or when it is 0 the automatic count; the choice is logged once."""
    if configured > 0:
        log.info("decode threads: %d (decode.threads)", configured)
        return configured
    cpus = usable_cpus()
    n = auto_decode_threads(cpus)
    log.info("decode threads: %d (automatic: %.4g usable CPUs less %d for the poll loop and the model "
             "runner; set decode.threads to choose)", n, cpus, RESERVED_CPUS)
    return n
