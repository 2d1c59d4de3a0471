"""Per-partition offset tracking with out-of-order completion.

The poll loop ``add``s every offset it takes; the sink writer's completions
``done`` them in any order.  ``committable`` gives, per partition, the lowest
offset taken and not yet done -- or, once a partition has nothing pending, the
consumer position handed in (which steps over transaction markers and
compaction gaps).  Gaps are never inferred by arithmetic: only offsets that
were actually taken are waited for.  Each assignment of a partition gets a new
epoch; completions from an older epoch (work from before a revoke) are ignored.
Single-threaded by design: only the poll loop calls it.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

__all__ = ["OffsetTracker", "TP"]

TP = tuple[str, int]


@dataclass
class _Partition:
    epoch: int
    pending: set[int] = field(default_factory=set)
    heap: list[int] = field(default_factory=list)     # min-heap over pending, lazily cleaned
    next_offset: int | None = None                    # highest offset taken + 1
    committed: int | None = None

    def low(self) -> int | None:
        while self.heap and self.heap[0] not in self.pending:
            heapq.heappop(self.heap)
        return self.heap[0] if self.heap else None


class OffsetTracker:
    def __init__(self) -> None:
        self._parts: dict[TP, _Partition] = {}
        self._epochs = itertools.count(1)

    def assign(self, tp: TP, committed: int | None = None) -> int:
        """Start (or restart) tracking ``tp``; returns the new epoch."""
        part = _Partition(epoch=next(self._epochs), committed=committed)
        self._parts[tp] = part
        return part.epoch

    def revoke(self, tp: TP) -> int:
        """Stop tracking ``tp``; returns how many taken offsets were unfinished."""
        part = self._parts.pop(tp, None)
        return len(part.pending) if part else 0

    def owns(self, tp: TP) -> bool:
        return tp in self._parts

    def add(self, tp: TP, offset: int) -> int:
        """Record a taken offset; returns the epoch completions must carry."""
        part = self._parts[tp]
        if offset in part.pending:
            return part.epoch
        part.pending.add(offset)
        heapq.heappush(part.heap, offset)
        if part.next_offset is None or offset + 1 > part.next_offset:
            part.next_offset = offset + 1
        return part.epoch

    def done(self, tp: TP, offset: int, epoch: int) -> bool:
        """Mark an offset finished; False when it belongs to a stale epoch."""
        part = self._parts.get(tp)
        if part is None or part.epoch != epoch or offset not in part.pending:
            return False
        part.pending.discard(offset)
        return True

    def pending(self, tp: TP | None = None) -> int:
        if tp is not None:
            part = self._parts.get(tp)
            return len(part.pending) if part else 0
        return sum(len(p.pending) for p in self._parts.values())

    def lowest_pending(self, tp: TP) -> int | None:
        part = self._parts.get(tp)
        return part.low() if part else None

    def safe_offset(self, tp: TP) -> int | None:
        """An offset that may be committed now, even if not ahead of the last commit: the lowest
        pending one, else the highest taken + 1 or the last commit; None when nothing is known."""
        part = self._parts.get(tp)
        if part is None:
            return None
        low = part.low()
        if low is not None:
            return low
        known = [x for x in (part.committed, part.next_offset) if x is not None]
        return max(known) if known else None

    def partitions(self) -> list[TP]:
        return list(self._parts)

    def committable(self, positions: dict[TP, int] | None = None) -> dict[TP, int]:
        """Offsets to commit now: only those ahead of the last commit."""
        out: dict[TP, int] = {}
        for tp, part in self._parts.items():
            low = part.low()
            if low is not None:
                target = low
            elif positions and positions.get(tp) is not None and positions[tp] >= 0:
                target = max(positions[tp], part.next_offset or 0)
            elif part.next_offset is not None:
                target = part.next_offset
            else:
                continue
            if part.committed is None or target > part.committed:
                out[tp] = target
        return out

    def mark_committed(self, tp: TP, offset: int) -> None:
        part = self._parts.get(tp)
        if part is not None and (part.committed is None or offset > part.committed):
            part.committed = offset

    def commit_failed(self, tp: TP, offset: int) -> None:
        """An async commit of ``offset`` failed: forget it so the next round commits again."""
        part = self._parts.get(tp)
        if part is not None and part.committed == offset:
            part.committed = None

    def committed(self, tp: TP) -> int | None:
        part = self._parts.get(tp)
        return part.committed if part else None
