"""The sink contract and the records that cross it.

A sink is opened from a URL (see ``registry.open_sink``).  The engine calls
``write(results)`` from its sink-writer thread with a micro-batch; when it
returns, every result it did not reject is durable and the engine may commit
the offsets behind them.  If ``write`` raises ``TransientSinkError`` nothing in
the batch counts as written: the engine pauses the source, retries with
backoff, and commits nothing past those results.  Rows that can never be
written (a constraint violation, say) are returned as ``Rejected`` and go to
the dead-letter sink instead.  ``write`` must be idempotent on ``Result.key``:
redelivery after a crash writes the same row again, never a second row.
"""
from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, runtime_checkable

from sidepath.sinks.json_codec import encode

__all__ = ["SourceRef", "Result", "DeadLetter", "Rejected", "Sink", "DeadLetterSink", "utc_now"]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SourceRef(NamedTuple):
    """Where a message came from: its Kafka coordinates (or a job's input row).
    A named tuple: immutable like a frozen dataclass, and a fifth of its cost to build (one
    per message)."""

    topic: str
    partition: int
    offset: int


# not frozen: one is built per message, and a frozen dataclass costs 2-3x to construct; never mutated
@dataclass(slots=True)
class Result:
    """One model's answer for one message; ``msg`` is empty on success."""

    postid: str
    uid: str
    seqid: str
    model: str
    model_version: str
    msg: str = ""
    results: dict[str, Any] | None = None
    source: SourceRef | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    processed_at: str = field(default_factory=utc_now)
    stage: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.msg

    @property
    def key(self) -> tuple[str, str, str]:
        """The idempotency key: one row per (model, postid, seqid)."""
        return (self.model, self.postid, self.seqid)

    def to_dict(self) -> dict[str, Any]:
        src = self.source
        return {
            "postid": self.postid, "uid": self.uid, "seqid": self.seqid,
            "model": self.model, "model_version": self.model_version,
            "msg": self.msg, "stage": self.stage, "results": self.results,
            "source": None if src is None else
            {"topic": src.topic, "partition": src.partition, "offset": src.offset},
            "timings_ms": self.timings_ms, "processed_at": self.processed_at,
            **({"extra": self.extra} if self.extra else {}),
        }

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON (``sinks/json_codec.py``)."""
        return encode(self.to_dict())


DLQ_HEADER_PREFIX = "sidepath.dlq."


def _foreign_header(name: str, value: bytes) -> tuple[str, bytes]:
    """An original message's header, renamed when it pretends to be one of ours."""
    if name.strip().lower().startswith(DLQ_HEADER_PREFIX):
        return "original." + name, value
    return name, value


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """The original message plus why it failed, for replay or inspection."""

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int | None
    source: SourceRef
    group: str
    stage: str          # parse | fetch | decode | infer | sink
    error_class: str
    error: str
    attempts: int = 1
    model: str = ""

    def info_headers(self, extra: Sequence[tuple[str, bytes]] = ()) -> list[tuple[str, bytes]]:
        """Headers that name the source and the failure (Kafka Connect style), then ``extra``,
        then the original headers.  Ours come first, and an original header in our namespace
        is renamed ``original.<name>``: a topic writer cannot spoof ``sidepath.dlq.stage``."""
        info = {
            "sidepath.dlq.topic": self.source.topic,
            "sidepath.dlq.partition": str(self.source.partition),
            "sidepath.dlq.offset": str(self.source.offset),
            "sidepath.dlq.group": self.group,
            "sidepath.dlq.stage": self.stage,
            "sidepath.dlq.model": self.model,
            "sidepath.dlq.exception.class": self.error_class,
            "sidepath.dlq.exception.message": self.error[:2000],
            "sidepath.dlq.attempts": str(self.attempts),
        }
        ours = [(k, v.encode()) for k, v in info.items()]
        return [*ours, *extra, *(_foreign_header(k, v) for k, v in self.headers)]

    def to_dict(self) -> dict[str, Any]:
        def b64(b: bytes | None) -> str | None:
            return None if b is None else base64.b64encode(b).decode()

        return {
            "key_b64": b64(self.key), "value_b64": b64(self.value),
            "headers": [[k, b64(v)] for k, v in self.headers],
            "timestamp_ms": self.timestamp_ms,
            "source": {"topic": self.source.topic, "partition": self.source.partition,
                       "offset": self.source.offset},
            "group": self.group, "stage": self.stage, "model": self.model,
            "error_class": self.error_class, "error": self.error, "attempts": self.attempts,
        }


@dataclass(frozen=True, slots=True)
class Rejected:
    """A result a sink can never write (bad row); it is dead-lettered instead."""

    result: Result
    error: str
    error_class: str = "SinkError"


@runtime_checkable
class Sink(Protocol):
    """Durable, idempotent result storage (see the module docstring)."""

    url: str

    def write(self, results: Sequence[Result]) -> Sequence[Rejected]:
        """Make ``results`` durable; return the ones that can never be written."""
        ...

    def close(self) -> None:
        """Flush and release connections; called once at shutdown."""
        ...


@runtime_checkable
class DeadLetterSink(Protocol):
    """Where messages that could not be processed are kept, durable on return."""

    url: str

    def write_letters(self, letters: Sequence[DeadLetter]) -> None: ...

    def close(self) -> None: ...
