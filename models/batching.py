"""How many frames one forward pass should take: a batch size measured at warm-up.

``model.max_batch`` is an upper bound: the engine's batcher gathers up to that
many frames per ``predict`` call.  Whether the *network* runs fastest on all
of them at once depends on the device.  On a GPU the cost per frame falls with
the batch until the device is saturated, so the largest batch wins.  On a CPU
it need not: measured on 2 cores (AMD EPYC, oneDNN), the embedding net's cost
per image at batch 32 is about 1.7x its cost at batch 4, because 32 images'
activations (about 50 MB after the first convolution) no longer fit in the
caches.  So at warm-up a frame model times its forward path at batch 1, 2, 4,
... max_batch and runs the network in chunks of the size with the best
throughput (``effective_max_batch``); a ``predict`` call still takes the
whole gathered batch, and each frame's output does not depend on the chunking.

This is the role Triton's model analyzer plays offline (sweep batch sizes,
keep the best throughput) and its dynamic batcher's ``preferred_batch_size``
online; here the sweep is cheap (well under a second on CPU) so it runs at
every start, on the machine that serves.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping

__all__ = ["BATCH_TUNING", "batch_sizes", "choose_batch", "time_batches"]

#: ``auto``: measure on CPU only (on a GPU the largest batch wins; keep max_batch);
#: ``on``: measure on any device; ``off``: the network always takes the whole batch
BATCH_TUNING = ("auto", "on", "off")


def batch_sizes(max_batch: int) -> list[int]:
    """1, 2, 4, ... below ``max_batch``, then ``max_batch`` itself."""
    sizes, b = [], 1
    while b < max_batch:
        sizes.append(b)
        b *= 2
    return sizes + [max(1, int(max_batch))]


def choose_batch(seconds_per_call: Mapping[int, float], *, tolerance: float = 0.05) -> int:
    """The batch size to run, from the time of one call at each size.

    The best throughput (items per second) wins; a smaller size whose throughput
    is within ``tolerance`` of the best is preferred to it: the same speed with
    less latency and memory, and less exposed to cache pressure from the decode
    threads that share a CPU host (the warm-up measures the network alone).
    """
    rates = {int(b): b / s for b, s in seconds_per_call.items() if b >= 1 and s > 0}
    if not rates:
        raise ValueError("no timings to choose a batch size from")
    best = max(rates.values())
    return min(b for b, r in rates.items() if r >= (1 - tolerance) * best)


def time_batches(run: Callable[[int], None], sizes: list[int], *, rounds: int = 3,
                 budget_s: float = 3.0, clock: Callable[[], float] = time.perf_counter) -> dict[int, float]:
    """The best (lowest) time of ``run(b)`` for each size ``b``.

    Sizes are interleaved round by round, so a burst of load from another
    process hits one round of every size rather than every round of one; the
    minimum over rounds is the figure least disturbed by such noise.  After the
    first round, rounds stop once ``budget_s`` is spent.
    """
    best: dict[int, float] = {}
    start = clock()
    for r in range(max(1, rounds)):
        if r and clock() - start > budget_s:
            break
        for b in sizes:
            t0 = clock()
            run(b)
            elapsed = clock() - t0
            best[b] = min(best.get(b, elapsed), elapsed)
    return best
