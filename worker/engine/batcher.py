"""Gather chunks of items from a queue into one model call.

``next_batch`` blocks for the first chunk, then keeps taking chunks until the
batch holds ``max_units`` units (frames or clips) or ``max_wait_s`` has passed
since the first one arrived.  A chunk that fits is taken whole (one step per
chunk, not per item); one that does not is unpacked, and its items fill the
batch in order.  An item never splits across calls: one that alone exceeds
``max_units`` goes in a call of its own, and an item that would overflow the
current batch waits for the next one.  ``None`` on the queue ends the stream.
"""
from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeAlias, TypeVar

__all__ = ["Batcher", "Chunk", "ChunkQueue"]

T = TypeVar("T")


class Chunk(list[T]):
    """Items handed over together, with their units counted."""

    __slots__ = ("units",)

    def __init__(self, items: Iterable[T] = (), units: int = 0) -> None:
        super().__init__(items)
        self.units = units


# a queue of chunks; None ends the stream
ChunkQueue: TypeAlias = "queue.SimpleQueue[Chunk[T] | None] | queue.Queue[Chunk[T] | None]"


class Batcher(Generic[T]):
    def __init__(self, q: ChunkQueue[T], *, max_units: int, max_wait_s: float,
                 units: Callable[[T], int]) -> None:
        self.q, self.max_units, self.max_wait_s, self.units = q, max_units, max_wait_s, units
        self._pending: deque[T] = deque()     # unpacked from a chunk, not batched yet
        self.stopped = False                  # None came: nothing more will

    def next_batch(self, poll_s: float = 0.5) -> list[T]:
        """One batch, or [] when nothing came within ``poll_s`` (or the stream ended)."""
        batch: list[T] = []
        used = 0
        deadline = time.monotonic() + poll_s          # for the first item; then max_wait_s after it
        while used < self.max_units:
            if self._pending:
                n = self.units(self._pending[0])
                if batch and used + n > self.max_units:
                    break                             # starts the next batch
                batch.append(self._pending.popleft())
                used += n
                continue
            if self.stopped:
                break
            left = deadline - time.monotonic()
            try:
                chunk = self.q.get(timeout=left) if left > 0 else self.q.get_nowait()
            except queue.Empty:
                break
            if chunk is None:
                self.stopped = True
                break
            if not batch:
                deadline = time.monotonic() + self.max_wait_s
            if used + chunk.units <= self.max_units or (not batch and len(chunk) == 1):
                batch.extend(chunk)
                used += chunk.units
            else:
                self._pending.extend(chunk)           # fill the batch item by item, in order
        return batch
