"""The pipeline stages that run beside the poll loop.

    poll loop --Inflight--> DecodeStage (thread pool: fetch, decode, prepare)
              --Chunk[Work]--> ModelRunner (one thread per model instance: batch, predict;
                            ``worker/engine/model_runner.py``)
              --list[Completion]--> SinkWriter (one thread: write results + dead letters;
                            ``worker/engine/sink_writer.py``)
              --the same Completions--> poll loop (marks offsets done, commits)

Every failure of one message becomes an error ``Result`` plus a ``DeadLetter``
(``Failures``) and flows on like a success, so the offset behind it is committed
only once both are durable.  This module holds the failure path and the decode
stage; what each queue carries is in ``handoff.py``.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

from sidepath.core.errors import MessageError
from sidepath.decoders.base import DecodeSpec, Media
from sidepath.models.base import Model
from sidepath.worker.engine.batcher import Chunk
from sidepath.worker.engine.handoff import DecodeQueue, ModelQueue, ResultQueue, Work
from sidepath.worker.engine.inflight import Completion, Inflight, dead_letter, error_result
from sidepath.worker.ops.metrics import Metrics

__all__ = ["Failures", "DecodeStage", "one_line"]

log = logging.getLogger(__name__)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:500]


class Failures:
    """Turns one message's failure into error results (one per model) and a dead letter."""

    def __init__(self, models: Sequence[Model], out: ResultQueue, metrics: Metrics, group: str) -> None:
        self.models, self.out, self.metrics, self.group = models, out, metrics, group

    def fail(self, inf: Inflight, stage: str, exc: BaseException, models: Sequence[Model] | None = None) -> None:
        msg = one_line(exc)
        detail = getattr(exc, "detail", None)    # the log may say more than the result row
        log.warning("dead-lettered at %s: %s", stage, msg if detail is None else detail[:1000],
                    extra={"topic": inf.source.topic, "partition": inf.source.partition,
                           "offset": inf.source.offset, "stage": stage,
                           **({"postid": inf.request.postid} if inf.request else {})})
        targets = self.models if models is None else models
        letter = dead_letter(inf, group=self.group, stage=stage, exc_class=type(exc).__name__,
                             error=msg, model=targets[0].name) if targets else None
        self.out.put([Completion(inf, error_result(inf, m.name, m.version, stage, msg), letter if i == 0 else None)
                      for i, m in enumerate(targets)])


class DecodeStage:
    """Fetch + decode once per message, then each model's ``prepare``, on ``threads`` threads.

    Plain threads over a queue rather than an executor: a Future per message costs more than
    the whole no-op pipeline.  Models that need neither frames nor audio (no-op, record copy)
    are prepared inline on the caller's thread: there is nothing to overlap.
    """

    def __init__(self, *, models: Sequence[Model], spec: DecodeSpec, decode: Callable[[str, str, DecodeSpec], Media],
                 threads: int, model_queues: dict[str, ModelQueue], failures: Failures,
                 metrics: Metrics, add_bytes: Callable[[Inflight, int], None]) -> None:
        self.models, self.spec, self.decode = models, spec, decode
        self.model_queues, self.failures, self.metrics, self.add_bytes = model_queues, failures, metrics, add_bytes
        self.inline = not (spec.frames or spec.audio)
        self.q: DecodeQueue = queue.SimpleQueue()
        self.threads = [] if self.inline else [
            threading.Thread(target=self._loop, name=f"decode-{i}", daemon=True) for i in range(threads)]
        for t in self.threads:
            t.start()

    def submit(self, infs: list[Inflight]) -> None:
        """Messages of one consume() call; inline, their work goes to each model in one hand-off."""
        if not self.inline:
            for inf in infs:
                self.q.put(inf)
            return
        # models that need neither frames nor audio (no-op, record copy) skip fetch + decode
        self._prepare(infs, [Media(kind=inf.request.kind, raw=inf.value) for inf in infs])  # type: ignore[union-attr]

    def _loop(self) -> None:
        while True:
            inf = self.q.get()
            if inf is None:
                return
            try:
                media = self._run(inf)
                if media is not None:
                    self._prepare([inf], [media])
            except BaseException:  # noqa: BLE001 - _run dead-letters; this is a last resort
                log.exception("decode thread failure")

    def _run(self, inf: Inflight) -> Media | None:
        """Fetch and decode one message; None when it failed (and was dead-lettered)."""
        req = inf.request
        assert req is not None
        try:
            media: Media = self.decode(req.ref, req.kind, self.spec)
        except MessageError as exc:
            self.failures.fail(inf, exc.stage, exc)
            return None
        except Exception as exc:  # a decoder bug must not kill the worker: dead-letter and go on
            log.exception("unexpected decoder failure")
            self.failures.fail(inf, "decode", exc)
            return None
        timings = getattr(media, "timings_ms", None)
        if timings:
            inf.timings_ms.update(timings)
            for stage in ("fetch", "decode"):
                if stage in timings:
                    self.metrics.stage_seconds.labels(stage).observe(timings[stage] / 1000)
        fetched, nbytes = getattr(media, "bytes_fetched", 0), getattr(media, "nbytes", 0)
        if fetched:
            self.metrics.fetched_bytes.inc(fetched)
        if nbytes:
            self.add_bytes(inf, nbytes)
        return media

    def _prepare(self, infs: list[Inflight], medias: list[Media]) -> None:
        """Each model's ``prepare`` of each message's media, handed to the model's queue in
        chunks of at most one batch: the instances of a model share its queue and a runner keeps
        whatever it takes, so a bigger chunk would tie work to a runner that may be busy (or
        stuck) on its current batch."""
        for model in self.models:
            q, prepare, units, cap = self.model_queues[model.name], model.prepare, model.units, model.max_batch
            chunk: Chunk[Work] = Chunk()
            for inf, media in zip(infs, medias):
                try:
                    prepared = prepare(media)
                except Exception as exc:
                    stage = exc.stage if isinstance(exc, MessageError) else "decode"
                    self.failures.fail(inf, stage, exc, models=[model])
                    continue
                n = units(prepared)
                if chunk and chunk.units + n > cap:
                    q.put(chunk)
                    chunk = Chunk()
                chunk.append(Work(inf, prepared, n))
                chunk.units += n
            if chunk:
                q.put(chunk)

    def close(self) -> None:
        """Stop the threads; messages still queued are dropped (their offsets are not committed)."""
        for _ in self.threads:
            self.q.put(None)
