"""The callbacks that must exist before the engine does, bound to it once it exists.

The consumer (commit and error callbacks) and the pipeline's threads (fatal
errors, decoded bytes) are built before the engine, which needs both.  They get
an ``EngineHooks``; the runner calls ``bind(engine)`` once, right after building
the engine and before anything is started.  A fatal error reported before that
(a model failing its warm-up, a client error while joining) is kept and handed
over at ``bind``.
"""
from __future__ import annotations

from confluent_kafka import KafkaError, TopicPartition

from sidepath.worker.engine.inflight import Inflight
from sidepath.worker.engine.poll_loop import Engine

__all__ = ["EngineHooks"]


class EngineHooks:
    def __init__(self) -> None:
        self._engine: Engine | None = None
        self._early_fatal: BaseException | None = None

    def bind(self, engine: Engine) -> None:
        if self._engine is not None:
            raise RuntimeError("EngineHooks.bind called twice")
        self._engine = engine
        if self._early_fatal is not None:
            engine.report_fatal(self._early_fatal)

    def report_fatal(self, exc: BaseException) -> None:
        """Any thread: stop the engine with ``exc`` (kept until ``bind`` if it does not exist yet)."""
        if self._engine is not None:
            self._engine.report_fatal(exc)
        elif self._early_fatal is None:
            self._early_fatal = exc

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's commit callback; it runs inside consume(), so only after ``bind``."""
        if self._engine is not None:
            self._engine.on_commit(err, partitions)

    def add_bytes(self, inf: Inflight, n: int) -> None:
        """Decode threads: media bytes now held for ``inf``; they start only after ``bind``."""
        assert self._engine is not None, "decode threads started before EngineHooks.bind"
        self._engine.add_bytes(inf, n)
