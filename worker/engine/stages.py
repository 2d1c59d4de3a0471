"""The pipeline stages that run beside the poll loop.

    poll loop --Inflight--> DecodeStage (thread pool: fetch, decode, prepare)
              --Work------> ModelRunner (one thread per model instance: batch, predict)
              --Completion--> SinkWriter (one thread: write results + dead letters)
              --the same Completion--> poll loop (marks offsets done, commits)

Every failure of one message becomes an error ``Result`` plus a ``DeadLetter``
and flows on like a success, so the offset behind it is committed only once
both are durable.
"""
from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tenacity import RetryError, Retrying, retry_if_not_exception_type, stop_after_delay, wait_random_exponential

from sidepath.core.errors import FatalError, MessageError, ModelError
from sidepath.decoders.base import DecodeSpec, Media
from sidepath.models.base import Model
from sidepath.sinks.base import DeadLetterSink, Result, Sink, utc_now
from sidepath.worker.engine.batcher import STOP, Batcher, Chunk
from sidepath.worker.engine.inflight import Completion, Inflight, dead_letter, error_result, ok_result
from sidepath.worker.ops.metrics import Metrics

__all__ = ["Work", "DecodeStage", "ModelRunner", "SinkWriter", "STOP"]

log = logging.getLogger(__name__)


# not frozen: one is built per message, and a frozen dataclass costs 2-3x to construct; never mutated
@dataclass(slots=True)
class Work:
    inflight: Inflight
    prepared: Any
    units: int


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:500]


class Failures:
    """Turns one message's failure into error results (one per model) and a dead letter."""

    def __init__(self, models: Sequence[Model], out: queue.SimpleQueue[Any], metrics: Metrics, group: str) -> None:
        self.models, self.out, self.metrics, self.group = models, out, metrics, group

    def fail(self, inf: Inflight, stage: str, exc: BaseException, models: Sequence[Model] | None = None) -> None:
        msg = _one_line(exc)
        detail = getattr(exc, "detail", None)    # the log may say more than the result row
        log.warning("dead-lettered at %s: %s", stage, msg if detail is None else detail[:1000],
                    extra={"topic": inf.source.topic, "partition": inf.source.partition,
                           "offset": inf.source.offset, "stage": stage,
                           **({"postid": inf.request.postid} if inf.request else {})})
        targets = self.models if models is None else models
        for i, m in enumerate(targets):
            letter = dead_letter(inf, group=self.group, stage=stage, exc_class=type(exc).__name__,
                                 error=msg, model=m.name) if i == 0 else None
            self.out.put(Completion(inf, error_result(inf, m.name, m.version, stage, msg), letter))


class DecodeStage:
    """Fetch + decode once per message, then each model's ``prepare``, on ``threads`` threads.

    Plain threads over a queue rather than an executor: a Future per message costs more than
    the whole no-op pipeline.  Models that need neither frames nor audio (no-op, record copy)
    are prepared inline on the caller's thread: there is nothing to overlap.
    """

    def __init__(self, *, models: Sequence[Model], spec: DecodeSpec, decode: Callable[[str, str, DecodeSpec], Any],
                 threads: int, model_queues: dict[str, queue.SimpleQueue[Any]], failures: Failures,
                 metrics: Metrics, add_bytes: Callable[[Inflight, int], None]) -> None:
        self.models, self.spec, self.decode = models, spec, decode
        self.model_queues, self.failures, self.metrics, self.add_bytes = model_queues, failures, metrics, add_bytes
        self.inline = not (spec.frames or spec.audio)
        self.q: queue.SimpleQueue[Any] = queue.SimpleQueue()
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
            if inf is STOP:
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
            chunk = Chunk()
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
            self.q.put(STOP)


def _is_oom(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(exc)


def _is_fatal_device_error(exc: BaseException) -> bool:
    text = str(exc)
    return not _is_oom(exc) and ("CUDA error" in text or "CUBLAS_STATUS" in text or "cuDNN error" in text)


class ModelRunner(threading.Thread):
    """Batches Work for one model instance and runs it; isolates items that fail."""

    def __init__(self, model: Model, q: queue.SimpleQueue[Any], out: queue.SimpleQueue[Any], *, max_wait_s: float,
                 failures: Failures, metrics: Metrics, on_fatal: Callable[[BaseException], None],
                 name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.model, self.q, self.out, self.failures, self.metrics = model, q, out, failures, metrics
        self.on_fatal = on_fatal
        self.batcher: Batcher[Work] = Batcher(q, max_units=model.max_batch, max_wait_s=max_wait_s,
                                              units=lambda w: w.units)
        self.busy_since: float | None = None     # monotonic start of the predict call in progress

    def run(self) -> None:
        try:
            while not self.batcher.stopped:
                batch = self.batcher.next_batch()
                if batch:
                    self._run_batch(batch)
        except FatalError as exc:
            self.on_fatal(exc)
        except BaseException as exc:  # noqa: BLE001 - reported, then the worker stops
            log.exception("model runner crashed")
            self.on_fatal(FatalError(f"model runner crashed: {_one_line(exc)}"))

    def _run_batch(self, batch: list[Work]) -> None:
        self.metrics.batch_size.labels(self.model.name).observe(sum(w.units for w in batch))
        t0 = time.monotonic()
        outcomes = self._predict(batch)
        infer_ms = (time.monotonic() - t0) * 1000 / max(1, len(batch))
        self.metrics.stage_seconds.labels("infer").observe(infer_ms / 1000)
        now = utc_now()          # one timestamp per batch: formatting it per item shows in profiles
        infer = round(infer_ms, 3)
        model = self.model
        done: list[Completion] = []
        for work, out in outcomes:
            inf = work.inflight
            if isinstance(out, BaseException):
                stage = out.stage if isinstance(out, MessageError) else "infer"
                self.failures.fail(inf, stage, out, models=[model])
            else:
                timings = {**inf.timings_ms, "infer": infer} if inf.timings_ms else {"infer": infer}
                done.append(Completion(inf, ok_result(inf, model, out, timings, now)))
        if done:
            self.out.put(done)   # one hand-off per batch, not per item

    def _predict(self, batch: list[Work]) -> list[tuple[Work, Any]]:
        self.busy_since = time.monotonic()
        try:
            outs = self.model.predict([w.prepared for w in batch])
            if len(outs) != len(batch):
                raise ModelError(f"model {self.model.name} returned {len(outs)} outputs for {len(batch)} inputs")
            return list(zip(batch, outs))
        except Exception as exc:
            if _is_fatal_device_error(exc):
                raise FatalError(f"device error in model {self.model.name}: {_one_line(exc)}") from exc
            if len(batch) == 1:
                return [(batch[0], exc)]
            if _is_oom(exc):
                log.warning("out of memory with a batch of %d; halving", len(batch))
                _empty_cache()
            mid = len(batch) // 2
            return self._predict(batch[:mid]) + self._predict(batch[mid:])
        finally:
            self.busy_since = None


def _without_payload(result: Result, error: str) -> Result:
    """The error result that stands in for a row a sink refused."""
    return replace(result, msg=_one_line(ValueError(f"sink refused the row: {error}")), results=None,
                   timings_ms={}, extra={}, stage="sink")


def _empty_cache() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - best effort only
        pass


class SinkWriter(threading.Thread):
    """Writes results to every sink and dead letters to the DLQ, then reports completions."""

    def __init__(self, sinks: Sequence[Sink], dlq: DeadLetterSink, q: queue.SimpleQueue[Any],
                 completions: queue.SimpleQueue[list[Completion]], *, batch_size: int, batch_wait_s: float,
                 retry_deadline_s: float, metrics: Metrics, group: str,
                 on_fatal: Callable[[BaseException], None]) -> None:
        super().__init__(name="sink-writer", daemon=True)
        self.sinks, self.dlq, self.q, self.completions = sinks, dlq, q, completions
        self.batch_size, self.batch_wait_s, self.retry_deadline_s = batch_size, batch_wait_s, retry_deadline_s
        self.metrics, self.group, self.on_fatal = metrics, group, on_fatal
        self.blocked = threading.Event()         # set while a sink is being retried
        self.stopped = False

    def _gather(self) -> list[Completion]:
        """Everything queued now, up to about ``batch_size`` (group commit: while one write is in
        progress the next batch grows by itself); ``batch_wait_s`` > 0 lingers for more.
        The queue holds single ``Completion`` items (failures) and lists (a model batch)."""
        try:
            first = self.q.get(timeout=0.5)
        except queue.Empty:
            return []
        if first is STOP:
            self.stopped = True
            return []
        batch = list(first) if isinstance(first, list) else [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_size:
            left = deadline - time.monotonic()
            try:
                item = self.q.get(timeout=left) if left > 0 else self.q.get_nowait()
            except queue.Empty:
                break
            if item is STOP:
                self.stopped = True
                break
            if isinstance(item, list):
                batch.extend(item)
            else:
                batch.append(item)
        return batch

    def run(self) -> None:
        try:
            while not self.stopped:
                batch = self._gather()
                if batch:
                    self.write(batch)
        except FatalError as exc:
            self.on_fatal(exc)
        except BaseException as exc:  # noqa: BLE001
            log.exception("sink writer crashed")
            self.on_fatal(FatalError(f"sink writer crashed: {_one_line(exc)}"))

    def _retrying(self, what: str, fn: Callable[[], Any]) -> Any:
        def before_sleep(state: Any) -> None:
            self.blocked.set()
            log.warning("%s failed (%s); retrying in %.1f s", what,
                        _one_line(state.outcome.exception()), state.next_action.sleep)

        try:
            for attempt in Retrying(retry=retry_if_not_exception_type(FatalError),   # bad password: no retry
                                    wait=wait_random_exponential(multiplier=0.5, max=10),
                                    stop=stop_after_delay(self.retry_deadline_s),
                                    before_sleep=before_sleep, reraise=False):
                with attempt:
                    return fn()
        except RetryError as exc:
            last = exc.last_attempt.exception() or exc
            raise FatalError(f"{what} still failing after {self.retry_deadline_s:.0f} s: {_one_line(last)}; "
                             "offsets behind these results are not committed") from last
        finally:
            self.blocked.clear()

    def write(self, batch: list[Completion]) -> None:
        t0 = time.monotonic()
        results = [o.result for o in batch]
        letters = [o.letter for o in batch if o.letter is not None]
        by_result: dict[int, Completion] = {}
        final: dict[int, Result] = {}            # id(result) -> the stand-in that replaced it
        for sink in self.sinks:
            rejected = self._retrying(f"sink {sink.url}", functools.partial(sink.write, results)) or ()
            if rejected and not by_result:
                by_result = {id(o.result): o for o in batch}
            stand_ins = []
            for rej in rejected:
                o = by_result.get(id(rej.result))
                if o is None:
                    continue
                log.warning("sink %s rejected a row: %s", sink.url, rej.error,
                            extra={"postid": rej.result.postid, "offset": o.inflight.source.offset})
                letters.append(dead_letter(o.inflight, group=self.group, stage="sink",
                                           exc_class=rej.error_class, error=rej.error, model=rej.result.model))
                stand_ins.append(_without_payload(rej.result, rej.error))
                final[id(rej.result)] = stand_ins[-1]
            if stand_ins:
                # every input keeps its row: an error result without the values the sink refused (a NUL in
                # an extra field, say); if even that is refused (a NUL in the key) the dead letter stays alone
                self._retrying(f"sink {sink.url}", functools.partial(sink.write, stand_ins))
        if letters:
            self._retrying(f"dead-letter sink {self.dlq.url}", lambda: self.dlq.write_letters(letters))
            for letter in letters:
                self.metrics.dead_letters.labels(letter.stage).inc()
        self.metrics.stage_seconds.labels("sink").observe(time.monotonic() - t0)
        if final:
            for o in batch:
                o.result = final.get(id(o.result), o.result)
        errors = Counter(o.result.model for o in batch if o.result.msg)
        for model, n in Counter(o.result.model for o in batch).items():
            if n > errors[model]:
                self.metrics.results.labels(model, "ok").inc(n - errors[model])
            if errors[model]:
                self.metrics.results.labels(model, "error").inc(errors[model])
        self.completions.put(batch)     # one hand-off per write: the same records, now durable
