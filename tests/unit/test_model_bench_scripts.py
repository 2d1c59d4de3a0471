"""The model benchmarks run end to end (tiny sizes; figures are not checked here)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_gpu_script_dry_run_on_cpu():
    r = _run("bench.gpu_models", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "| batching |" in r.stdout and "| precision |" in r.stdout and "| uploads |" in r.stdout
    assert "DRY RUN" in r.stdout


def test_batching_bench_with_a_few_images():
    r = _run("bench.bench_batching", "--images", "40", "--size", "32", "--max-batch", "8", "--no-docs")
    assert r.returncode == 0, r.stderr
    assert "| batched through the runtime | 40 |" in r.stdout
    assert "largest difference between the two modes' outputs" in r.stdout
