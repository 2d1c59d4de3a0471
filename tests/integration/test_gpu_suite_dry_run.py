"""The one-call GPU script stays runnable: its dry run on CPU goes through every step."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka       # the end-to-end step starts its own broker

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_suite_dry_run_on_cpu():
    r = subprocess.run([sys.executable, "-m", "bench.gpu_suite", "--dry-run"], cwd=ROOT, capture_output=True,
                       text=True, timeout=900)
    out = r.stdout
    assert r.returncode == 0, out[-3000:] + r.stderr[-3000:]
    assert "<< models + decode: exit 0" in out and "<< end to end: exit 0" in out
    assert "| batching |" in out and "NVDEC" in out               # models, then the decode comparison
    assert "During the worker's run: GPU utilisation not sampled" in out
