"""Usable CPUs from cgroup files (written by the test) and the automatic decode thread count."""
from __future__ import annotations

import logging
import os

import pytest

from sidepath.worker.engine.cpus import RESERVED_CPUS, auto_decode_threads, decode_threads, usable_cpus


def _affinity() -> int:
    return len(os.sched_getaffinity(0))


def test_cgroup_v2_quota_limits_the_count(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")         # a 1.5-CPU limit
    assert usable_cpus(tmp_path) == min(_affinity(), 1.5)


def test_cgroup_v2_without_a_quota_is_the_affinity(tmp_path):
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cpus(tmp_path) == _affinity()


def test_cgroup_v1_quota(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cpus(tmp_path) == 0.5
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert usable_cpus(tmp_path) == _affinity()


def test_no_cgroup_files_is_the_affinity(tmp_path):
    assert usable_cpus(tmp_path) == _affinity()


@pytest.mark.parametrize(("cpus", "threads"), [(16, 16 - RESERVED_CPUS), (8, 8 - RESERVED_CPUS), (8.5, 6),
                                               (3, 1), (2, 1), (0.5, 1)])
def test_auto_threads_leave_room_for_the_poll_loop_and_the_runner(cpus, threads):
    assert auto_decode_threads(cpus) == threads


def test_the_choice_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger="sidepath.worker.engine.cpus"):
        assert decode_threads(3) == 3
        n = decode_threads(0)
    assert n >= 1
    text = caplog.text
    assert "decode threads: 3 (decode.threads)" in text and f"decode threads: {n} (automatic" in text
