"""The sink stage: one thread writes results to every sink and dead letters to the DLQ.

Writes are grouped (what queued during the last write goes in the next), retried
with backoff up to ``sinks.retry_deadline_s`` (then the worker stops: the offsets
behind them are not committed), and a row a sink refuses is replaced by an error
row plus a dead letter.  Once written, the same ``Completion`` records go back to
the poll loop (or backfill) on the completions queue.
"""
from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from tenacity import RetryError, Retrying, retry_if_not_exception_type, stop_after_delay, wait_random_exponential

from sidepath.core.errors import FatalError
from sidepath.sinks.base import DeadLetterSink, Result, Sink
from sidepath.worker.engine.handoff import CompletionQueue, ResultQueue
from sidepath.worker.engine.inflight import Completion, dead_letter
from sidepath.worker.engine.stages import one_line
from sidepath.worker.ops.metrics import Metrics

__all__ = ["SinkWriter"]

log = logging.getLogger(__name__)


def _without_payload(result: Result, error: str) -> Result:
    """The error result that stands in for a row a sink refused."""
    return replace(result, msg=one_line(ValueError(f"sink refused the row: {error}")), results=None,
                   timings_ms={}, extra={}, stage="sink")


class SinkWriter(threading.Thread):
    """Writes results to every sink and dead letters to the DLQ, then reports completions."""

    def __init__(self, sinks: Sequence[Sink], dlq: DeadLetterSink, q: ResultQueue,
                 completions: CompletionQueue, *, batch_size: int, batch_wait_s: float,
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
        progress the next batch grows by itself); ``batch_wait_s`` > 0 lingers for more."""
        try:
            first = self.q.get(timeout=0.5)
        except queue.Empty:
            return []
        if first is None:
            self.stopped = True
            return []
        batch = list(first)
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_size:
            left = deadline - time.monotonic()
            try:
                more = self.q.get(timeout=left) if left > 0 else self.q.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self.stopped = True
                break
            batch.extend(more)
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
            self.on_fatal(FatalError(f"sink writer crashed: {one_line(exc)}"))

    def _retrying(self, what: str, fn: Callable[[], Any]) -> Any:
        def before_sleep(state: Any) -> None:
            self.blocked.set()
            log.warning("%s failed (%s); retrying in %.1f s", what,
                        one_line(state.outcome.exception()), state.next_action.sleep)

        try:
            for attempt in Retrying(retry=retry_if_not_exception_type(FatalError),   # bad password: no retry
                                    wait=wait_random_exponential(multiplier=0.5, max=10),
                                    stop=stop_after_delay(self.retry_deadline_s),
                                    before_sleep=before_sleep, reraise=False):
                with attempt:
                    return fn()
        except RetryError as exc:
            last = exc.last_attempt.exception() or exc
            raise FatalError(f"{what} still failing after {self.retry_deadline_s:.0f} s: {one_line(last)}; "
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
