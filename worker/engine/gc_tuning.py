"""Keep Python's cyclic garbage collector off the per-message path.

The engine allocates a handful of short-lived objects per message; with the
default thresholds a young collection runs every 700 allocations, and every
few of those an older one walks everything start-up left behind (torch alone
is hundreds of thousands of objects).  Measured on the engine benchmark, that
was a third of the engine's CPU per message (docs/benchmarks.md).

Once models are loaded, ``settle_after_startup`` moves every live object into
the permanent generation (``gc.freeze``: they are never scanned again) and
collects the young generation every 10,000 allocations instead of 700.
Reference counting still frees almost everything at once; only garbage cycles
wait a little longer.  A cycle among the frozen start-up objects is never
collected; those live as long as the worker anyway.
"""
from __future__ import annotations

import gc

__all__ = ["settle_after_startup", "YOUNG_THRESHOLD"]

YOUNG_THRESHOLD = 10_000


def settle_after_startup() -> None:
    gc.collect()                      # start-up garbage is freed, not frozen
    gc.freeze()
    _young, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, max(older, 20), max(oldest, 20))
