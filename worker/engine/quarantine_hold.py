"""Messages the crash quarantine holds back while suspects run alone, per partition.

A partition holding ``HOLD_CAP`` messages is paused; once isolation is over it resumes as its
backlog drains below half of that.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from confluent_kafka import Consumer, TopicPartition

from sidepath.worker.engine.offsets import TP

__all__ = ["HOLD_CAP", "HeldBack"]

#: held-back messages per partition before that partition is paused (its fetch resumes after isolation)
HOLD_CAP = 500


class _Engine(Protocol):
    """What of the engine this needs (the engine imports the quarantine: no import back)."""

    consumer: Consumer

    @property
    def paused(self) -> bool: ...


class HeldBack:
    """Consumed, tracked (so no commit passes them), not started; poll thread only."""

    def __init__(self, engine: _Engine) -> None:
        self.engine = engine
        self.queues: dict[TP, deque[Any]] = {}
        self.paused: set[TP] = set()                  # paused by us (too much held back)

    def __bool__(self) -> bool:
        return any(self.queues.values())

    def count(self, key: TP) -> int:
        q = self.queues.get(key)
        return len(q) if q else 0

    def hold(self, key: TP, msg: Any) -> None:
        self.queues.setdefault(key, deque()).append(msg)

    def watch(self, key: TP) -> None:
        """A partition assigned during isolation: what it delivers is held back too."""
        self.queues.setdefault(key, deque())

    def first(self, key: TP) -> Any:
        """The oldest held message of ``key``, or None."""
        q = self.queues.get(key)
        return q[0] if q else None

    def pop_first(self, key: TP) -> Any:
        return self.queues[key].popleft()

    def forget(self, key: TP) -> None:
        self.queues.pop(key, None)
        self.paused.discard(key)

    def release(self, room: int) -> list[Any]:
        """Up to ``room`` held messages, round-robin over the partitions, each partition in order."""
        out: list[Any] = []
        while room > len(out) and self:
            for q in self.queues.values():
                if q and room > len(out):
                    out.append(q.popleft())
        if not self:
            self.queues.clear()
        return out

    def cap(self, *, isolating: bool) -> None:
        """Pause a partition with too much held back; resume it (after isolation) once it is half gone."""
        consumer = self.engine.consumer
        full = [k for k, q in self.queues.items() if len(q) >= HOLD_CAP]
        if full:
            consumer.pause([TopicPartition(*k) for k in full])
            self.paused.update(full)
        if not isolating and not self.engine.paused:
            low = [k for k in self.paused if self.count(k) < HOLD_CAP // 2]
            if low:
                consumer.resume([TopicPartition(*k) for k in low])
                self.paused.difference_update(low)
