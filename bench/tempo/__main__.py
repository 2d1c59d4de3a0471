"""Entry point of ``python -m bench.tempo`` (see bench/tempo/cli.py)."""
import os

# one thread for every numeric library, set before numpy loads: the benchmark compares
# per-clip CPU cost on a shared machine, and thread pools fighting over 2 cores measure noise
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from .cli import main  # noqa: E402

main()
