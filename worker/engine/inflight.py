"""The in-flight record of one message, and the results and dead letters built from it."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sidepath.sinks.base import DeadLetter, Result, SourceRef
from sidepath.worker.engine.request import Request, ids_from_raw

if TYPE_CHECKING:        # models/ imports torch: not needed to carry records
    from sidepath.models.base import Model

__all__ = ["Inflight", "Completion", "error_result", "ok_result", "dead_letter"]


@dataclass(slots=True, eq=False)
class Inflight:
    """One message taken from Kafka and not yet done (every model's result durable)."""

    source: SourceRef
    epoch: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int | None
    request: Request | None = None
    remaining: int = 1                      # results still to be made durable (main thread only)
    nbytes: int = 0                         # the message itself
    media_nbytes: int = 0                   # decoded frames and audio
    t0: float = field(default_factory=time.monotonic)
    timings_ms: dict[str, float] = field(default_factory=dict)
    held: list[Result] | None = None        # exactly-once: finished results awaiting their transaction
    failed: bool = False                    # a model's error result came back (main thread only)

    @property
    def tp(self) -> tuple[str, int]:
        return (self.source.topic, self.source.partition)

    def ids(self) -> tuple[str, str, str]:
        """postid, uid, seqid; a message without ids is named by its coordinates
        so that it still gets exactly one error row per model."""
        if self.request is not None:
            return self.request.postid, self.request.uid, self.request.seqid
        postid, uid, seqid = ids_from_raw(self.value)
        where = f"{self.source.topic}/{self.source.partition}/{self.source.offset}"
        return postid or f"@{where}", uid, seqid or f"@{where}"


# not frozen: one is built per message, and a frozen dataclass costs 2-3x to construct
@dataclass(slots=True)
class Completion:
    """One model's result for one message, with the dead letter of a failure.  The stage that
    made it hands it to the sink writer; once ``result`` (and ``letter``) are durable -- or, with
    exactly-once, ready for the transaction that commits the offset -- the writer hands the same
    record on to the poll loop.  A row a sink refused is swapped for its error stand-in on the way."""

    inflight: Inflight
    result: Result
    letter: DeadLetter | None = None

    @property
    def ok(self) -> bool:
        return not self.result.msg

    @property
    def error(self) -> str:
        return self.result.msg


def ok_result(inf: Inflight, model: Model, results: dict[str, Any], timings_ms: dict[str, float],
              processed_at: str) -> Result:
    req = inf.request
    assert req is not None, "only a parsed message reaches a model"
    return Result(req.postid, req.uid, req.seqid, model.name, model.version, "", results, inf.source,
                  timings_ms, processed_at, "", req.extra)


def error_result(inf: Inflight, model_name: str, model_version: str, stage: str, msg: str) -> Result:
    postid, uid, seqid = inf.ids()
    return Result(postid, uid, seqid, model_name, model_version, msg or "error", None, inf.source,
                  dict(inf.timings_ms), stage=stage,
                  extra=inf.request.extra if inf.request else {})


def dead_letter(inf: Inflight, *, group: str, stage: str, exc_class: str, error: str,
                model: str = "", attempts: int = 1) -> DeadLetter:
    return DeadLetter(inf.key, inf.value, inf.headers, inf.timestamp_ms, inf.source, group,
                      stage, exc_class, error, attempts, model)
