"""Gather items from a queue into one model call.

``next_batch`` blocks for the first item, then keeps taking items until the
batch holds ``max_units`` units (frames or clips) or ``max_wait_s`` has passed
since the first one arrived.  An item never splits across calls: one that alone
exceeds ``max_units`` goes in a call of its own, and an item that would
overflow the current batch waits for the next one.
"""
from __future__ import annotations

import queue
import time
from typing import Callable, Generic, TypeVar

__all__ = ["Batcher", "STOP"]

T = TypeVar("T")
STOP = object()   # put on the queue to end the runner


class Batcher(Generic[T]):
    def __init__(self, q: "queue.Queue[object]", *, max_units: int, max_wait_s: float,
                 units: Callable[[T], int]) -> None:
        self.q, self.max_units, self.max_wait_s, self.units = q, max_units, max_wait_s, units
        self._held: T | None = None
        self.stopped = False

    def next_batch(self, poll_s: float = 0.5) -> list[T]:
        """One batch, or [] when nothing came within ``poll_s`` (or on STOP)."""
        if self._held is not None:
            first, self._held = self._held, None
        else:
            try:
                got = self.q.get(timeout=poll_s)
            except queue.Empty:
                return []
            if got is STOP:
                self.stopped = True
                return []
            first = got  # type: ignore[assignment]
        batch, used = [first], self.units(first)
        deadline = time.monotonic() + self.max_wait_s
        while used < self.max_units:
            left = deadline - time.monotonic()
            try:
                got = self.q.get(timeout=left) if left > 0 else self.q.get_nowait()
            except queue.Empty:
                break
            if got is STOP:
                self.stopped = True
                break
            n = self.units(got)  # type: ignore[arg-type]
            if used + n > self.max_units:
                self._held = got  # type: ignore[assignment]
                break
            batch.append(got)  # type: ignore[arg-type]
            used += n
        return batch
