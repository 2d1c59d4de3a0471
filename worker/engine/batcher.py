"""Gather items from a queue into one model call.

``next_batch`` blocks for the first item, then keeps taking items until the
batch holds ``max_units`` units (frames or clips) or ``max_wait_s`` has passed
since the first one arrived.  An item never splits across calls: one that alone
exceeds ``max_units`` goes in a call of its own, and an item that would
overflow the current batch waits for the next one.  The queue may also carry
lists of items (one hand-off per consume() batch instead of one per message);
they are unpacked in order.
"""
from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Batcher", "Chunk", "STOP"]

T = TypeVar("T")
STOP = object()   # put on the queue to end the runner


class Chunk(list[Any]):
    """Items handed over together with their units counted: a batch with room for all of them
    takes the chunk whole (one step per chunk, not per item); otherwise it is unpacked."""

    __slots__ = ("units",)

    def __init__(self) -> None:
        super().__init__()
        self.units = 0


class Batcher(Generic[T]):
    def __init__(self, q: queue.Queue[Any] | queue.SimpleQueue[Any], *, max_units: int, max_wait_s: float,
                 units: Callable[[T], int]) -> None:
        self.q, self.max_units, self.max_wait_s, self.units = q, max_units, max_wait_s, units
        self._pending: deque[object] = deque()     # taken from the queue, not batched yet
        self.stopped = False

    def _next(self, timeout_s: float) -> object:
        """The next item, or a whole ``Chunk`` when nothing is pending (waiting up to
        ``timeout_s``; 0 = not at all); raises queue.Empty."""
        if self._pending:
            return self._pending.popleft()
        got = self.q.get(timeout=timeout_s) if timeout_s > 0 else self.q.get_nowait()
        if type(got) is list:
            if not got:
                raise queue.Empty
            self._pending.extend(got)
            return self._pending.popleft()
        return got

    def next_batch(self, poll_s: float = 0.5) -> list[T]:
        """One batch, or [] when nothing came within ``poll_s`` (or on STOP)."""
        try:
            got = self._next(poll_s)
        except queue.Empty:
            return []
        batch: list[T] = []
        used = 0
        deadline = time.monotonic() + self.max_wait_s
        while True:
            if got is STOP:
                self.stopped = True
                break
            if type(got) is Chunk:
                if not batch or used + got.units <= self.max_units:
                    batch.extend(got)
                    used += got.units
                else:
                    self._pending.extend(got)      # fill the batch item by item, in order
                    got = self._pending.popleft()
                    continue
            else:
                n = self.units(got)  # type: ignore[arg-type]
                if batch and used + n > self.max_units:
                    self._pending.appendleft(got)    # starts the next batch
                    break
                batch.append(got)  # type: ignore[arg-type]
                used += n
            if used >= self.max_units:
                break
            try:
                got = self._next(max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
        return batch
