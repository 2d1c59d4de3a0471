"""The model stage: one thread per model instance batches ``Work`` and runs the model.

The instances of a model share its queue (``None`` on it stops one runner).

A batch that raises is split in halves until the item that fails is alone (an
out-of-memory error empties the CUDA cache first); that item gets an error result
and a dead letter.  A device error (CUDA, cuBLAS, cuDNN) stops the worker.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sidepath.core.errors import FatalError, MessageError, ModelError
from sidepath.models.base import Model
from sidepath.sinks.base import utc_now
from sidepath.worker.engine.batcher import Batcher
from sidepath.worker.engine.handoff import ModelQueue, ResultQueue, Work
from sidepath.worker.engine.inflight import Completion, ok_result
from sidepath.worker.engine.stages import Failures, one_line
from sidepath.worker.ops.metrics import Metrics

__all__ = ["ModelRunner"]

log = logging.getLogger(__name__)


def _is_oom(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(exc)


def _is_fatal_device_error(exc: BaseException) -> bool:
    text = str(exc)
    return not _is_oom(exc) and ("CUDA error" in text or "CUBLAS_STATUS" in text or "cuDNN error" in text)


class ModelRunner(threading.Thread):
    """Batches Work for one model instance and runs it; isolates items that fail."""

    def __init__(self, model: Model, q: ModelQueue, out: ResultQueue, *, max_wait_s: float,
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
            self.on_fatal(FatalError(f"model runner crashed: {one_line(exc)}"))

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
                raise FatalError(f"device error in model {self.model.name}: {one_line(exc)}") from exc
            if len(batch) == 1:
                return [(batch[0], exc)]
            if _is_oom(exc):
                log.warning("out of memory with a batch of %d; halving", len(batch))
                _empty_cache()
            mid = len(batch) // 2
            return self._predict(batch[:mid]) + self._predict(batch[mid:])
        finally:
            self.busy_since = None


def _empty_cache() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - best effort only
        pass
