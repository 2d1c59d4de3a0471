"""GPU utilisation while something runs: ``nvidia-smi`` sampled every 200 ms.

    with GpuSampler() as s:
        run_the_workload()
    s.summary()   # "GPU utilisation mean 71%, median 78%, max 100% over 412 samples; memory max 9,310 MiB"

Without ``nvidia-smi`` (a CPU machine, a dry run) the summary says so instead.
"""
from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
from typing import Any

__all__ = ["GpuSampler"]


class GpuSampler:
    def __init__(self, interval_ms: int = 200) -> None:
        self.interval_ms = interval_ms
        self.util: list[float] = []
        self.mem_mib: list[float] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        exe = shutil.which("nvidia-smi")
        if exe is None:
            return self
        self._proc = subprocess.Popen(
            [exe, "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
             f"-lms={self.interval_ms}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            parts = [p.strip() for p in line.split(",")]
            try:
                self.util.append(float(parts[0]))     # first GPU only: the one the run uses
                self.mem_mib.append(float(parts[1]))
            except (ValueError, IndexError):
                continue

    def __exit__(self, *_exc: Any) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)

    def summary(self) -> str:
        if not self.util:
            return "GPU utilisation not sampled (no nvidia-smi on this machine)"
        return (f"GPU utilisation mean {statistics.fmean(self.util):.0f}%, median "
                f"{statistics.median(self.util):.0f}%, max {max(self.util):.0f}% over {len(self.util)} samples "
                f"every {self.interval_ms} ms; GPU memory max {max(self.mem_mib):,.0f} MiB")
