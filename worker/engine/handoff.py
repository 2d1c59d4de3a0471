"""What the pipeline's stages hand each other: one message type per queue.

    queue        carries            from                      to
    decode       Inflight           poll loop, backfill        decode threads
    model        Chunk[Work]        decode stage               the runners of one model
    results      list[Completion]   model runners, failures    sink writer
    completions  list[Completion]   sink writer                poll loop, backfill

``None`` ends the stream on the first three (the stages' stop); the completions
queue is read by the caller's own loop, which stops by itself.  Lists, not single
records: one hand-off per batch is what keeps the no-op pipeline cheap.
"""
from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import Any, TypeAlias

from sidepath.worker.engine.batcher import Chunk
from sidepath.worker.engine.inflight import Completion, Inflight

__all__ = ["Work", "DecodeQueue", "ModelQueue", "ResultQueue", "CompletionQueue"]


# not frozen: one is built per message, and a frozen dataclass costs 2-3x to construct; never mutated
@dataclass(slots=True)
class Work:
    """One message's input prepared for one model (``Model.prepare``'s output, opaque here)."""

    inflight: Inflight
    prepared: Any
    units: int


DecodeQueue: TypeAlias = queue.SimpleQueue[Inflight | None]
ModelQueue: TypeAlias = queue.SimpleQueue[Chunk[Work] | None]
ResultQueue: TypeAlias = queue.SimpleQueue[list[Completion] | None]
CompletionQueue: TypeAlias = queue.SimpleQueue[list[Completion]]
