"""``--until-end``: the end offsets each partition had when it was first assigned.

A finite run (a drain, ``run --until-end``) takes what was in the topic at its
start and stops there; what is produced later is left for the next run.  Only
the poll loop uses this (its rebalance callbacks and its loop).
"""
from __future__ import annotations

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from sidepath.worker.engine.offsets import TP

__all__ = ["EndOffsets"]


class EndOffsets:
    def __init__(self) -> None:
        self.end: dict[TP, int] = {}        # the high watermark at the first assignment
        self.low: dict[TP, int] = {}
        self.start: dict[TP, int] = {}      # where a fresh partition starts

    def record(self, consumer: Consumer, fresh: list[TopicPartition], *, start_given: bool,
               committed: dict[TP, int | None]) -> None:
        """Partitions assigned for the first time (``p.offset`` set when the run asked for a start)."""
        for p in fresh:
            key = (p.topic, p.partition)
            lo, hi = consumer.get_watermark_offsets(p, timeout=10)
            self.end[key] = hi
            self.low[key] = lo
            # until the first fetch the position is unknown: a replay starts at the start offset
            # it asked for, not at the committed one (which may already be at the end)
            start = p.offset if start_given else committed.get(key)
            self.start[key] = lo if start == OFFSET_BEGINNING else (start if start is not None else -1)

    def clamp(self, positions: dict[TP, int]) -> dict[TP, int]:
        """Records fetched past the end were not taken: never commit past them."""
        return {k: min(v, self.end[k]) if v >= 0 and k in self.end else v for k, v in positions.items()}

    def reached(self, keys: list[TP], positions: dict[TP, int]) -> bool:
        """Every partition in ``keys`` is at its end (or was empty)."""
        for k in keys:
            end = self.end.get(k, 0)
            at = positions.get(k, -1)
            if at < 0:
                at = self.start.get(k, -1)
            if at < end and self.low.get(k, 0) < end:
                return False
        return True
