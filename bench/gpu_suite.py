"""Every GPU benchmark in one call, for a GPU machine lent for a few minutes (target: under 8).

    python -m bench.gpu_suite            # on the GPU machine: writes the tables into the docs
    python -m bench.gpu_suite --dry-run  # CPU, tiny sizes: proves every step runs

1. ``bench.gpu_models``: batched vs one-at-a-time, fp16 + channels_last vs fp32, pinned
   double-buffered vs pageable copies, then ``bench.gpu_decode`` (NVDEC vs CPU decoding);
   tables in docs/models.md and docs/decoders.md.
2. ``bench.bench_e2e`` on the GPU: 17-second 720p videos through the whole worker with
   NVDEC decoding (``decode.hwaccel auto``) and one decode thread per core, against the
   per-request pattern on the same GPU, with GPU utilisation sampled during the worker's
   run (``nvidia-smi``); block ``e2e-gpu`` of docs/benchmarks.md.

Each step runs in its own process with a time limit, so one failing step still leaves the
others' figures.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

__all__ = ["main"]


def _step(name: str, args: list[str], limit_s: float) -> int:
    print(f">> {name}: {' '.join(args)}", flush=True)
    t0 = time.monotonic()
    try:
        code = subprocess.run([sys.executable, "-m", *args], timeout=limit_s).returncode
    except subprocess.TimeoutExpired:
        code = 124
    print(f"<< {name}: exit {code} in {time.monotonic() - t0:.0f} s", flush=True)
    return code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, nothing written to the docs")
    ap.add_argument("--videos", type=int, default=96)
    args = ap.parse_args()
    threads = str(max(2, min(16, (os.cpu_count() or 2) - 2)))   # leave cores to the poll loop and runner
    if args.dry_run:
        steps = [("models + decode", ["bench.gpu_models", "--dry-run"], 300),
                 ("end to end", ["bench.bench_e2e", "--quick", "--device", "auto", "--hwaccel", "auto",
                                 "--decode-threads", "2", "--no-docs"], 600)]
    else:
        steps = [("models + decode", ["bench.gpu_models"], 330),
                 ("end to end", ["bench.bench_e2e", "--videos", str(args.videos), "--device", "cuda",
                                 "--hwaccel", "auto", "--decode-threads", threads, "--block", "e2e-gpu"], 150)]
    codes = [_step(name, a, limit) for name, a, limit in steps]
    return 0 if not any(codes) else 1


if __name__ == "__main__":
    sys.exit(main())
