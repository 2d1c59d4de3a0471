"""`sidepath backfill`: run a model over existing items to (re)fill a results table.

The same pipeline as the streaming worker (decode pool, batched model runner,
sink writer with dead letters) and the same intake and completion core
(``worker/engine/inflight_table.py``), fed from a JSONL/CSV file, a directory of
media or a SQL query (``worker/jobs/backfill_sources.py``) instead of Kafka.
Resumable: an item whose every model already has an ``ok`` row in the destination
(a SQL sink) or in the checkpoint file is skipped and counted; items that failed
before are tried again.  See docs/jobs.md.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from sidepath.sinks.base import Result, SourceRef
from sidepath.worker.config import Config
from sidepath.worker.engine.inflight import Inflight
from sidepath.worker.engine.inflight_table import InflightTable
from sidepath.worker.engine.pacing import Pacer, pacer_from_config
from sidepath.worker.engine.pipeline import Pipeline
from sidepath.worker.jobs.backfill_sources import request_value, select_rows
from sidepath.worker.ops.metrics import build_metrics

__all__ = ["run_backfill", "Summary"]

log = logging.getLogger(__name__)


@dataclass
class Summary:
    """The counts of one backfill; ``line()`` says them."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    first_errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def line(self) -> str:
        errs = "; ".join(self.first_errors[:3])
        return (f"backfill: {self.total} items: {self.done} done, {self.skipped} skipped (already in the "
                f"destination), {self.failed} failed in {self.elapsed_s:.1f} s"
                + (f"; first errors: {errs}" if errs else ""))

    def result_in(self, inf: Inflight, result: Result) -> None:
        """One model's result for ``inf``: the first few errors are kept, one per item."""
        if result.msg and len(self.first_errors) < 5:
            postid = inf.ids()[0]
            if not any(e.startswith(postid + ":") for e in self.first_errors):
                self.first_errors.append(f"{postid}: {result.msg}")




class _Checkpoint:
    """Keys whose ok results are durable, one JSON line each (for sinks that cannot be queried)."""

    def __init__(self, path: Path | None) -> None:
        self.keys: set[tuple[str, str, str]] = set()
        if path and path.exists():
            for line in path.read_text().splitlines():
                try:
                    self.keys.add(tuple(json.loads(line)))
                except (ValueError, TypeError):
                    continue   # a torn last line after a crash
        self.fh = path.open("a") if path else None

    def add(self, keys: list[tuple[str, str, str]]) -> None:
        if self.fh and keys:
            self.fh.write("".join(json.dumps(k) + "\n" for k in keys))
            self.fh.flush()

    def close(self) -> None:
        if self.fh:
            self.fh.close()


class _Finished:
    """Which (model, postid, seqid) already have an ok result: a queryable sink, else the checkpoint."""

    def __init__(self, sinks: list[Any], models: list[str], checkpoint: _Checkpoint) -> None:
        self.sink = next((s for s in sinks if hasattr(s, "existing_keys")), None)
        self.models, self.checkpoint = models, checkpoint
        # error rows count as not done: a resumed backfill tries them again
        self.failed: dict[str, set[tuple[str, str]]] = {
            m: set(self.sink.read_keys(m, status="error")) if self.sink is not None else set() for m in models}
        if self.sink is None and checkpoint.fh is None:
            log.warning("no sink can be asked which items are done; pass --checkpoint FILE to make this "
                        "backfill resumable")

    def done(self, ids: list[tuple[str, str]]) -> list[bool]:
        have = {m: set(self.sink.existing_keys(m, ids)) - self.failed[m] if self.sink is not None else set()
                for m in self.models}
        return [all(k in have[m] or (m, *k) in self.checkpoint.keys for m in self.models) for k in ids]


class _Progress:
    """A tqdm bar on a terminal, else one log line every ``every_s`` seconds."""

    def __init__(self, summary: Summary, enabled: bool | None, every_s: float) -> None:
        self.summary, self.every_s = summary, every_s
        self.t0 = self.last = time.monotonic()
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.bar: Any = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(unit="item", desc="backfill", dynamic_ncols=True)

    def step(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def tick(self, inflight: int) -> None:
        now = time.monotonic()
        if self.bar is not None or now - self.last < self.every_s:
            return
        self.last = now
        s = self.summary
        rate = (s.done + s.failed) / max(1e-9, now - self.t0)
        log.info("backfill progress: %d read, %d done, %d skipped, %d failed, %d in flight (%.1f items/s)",
                 s.total, s.done, s.skipped, s.failed, inflight, rate)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_backfill(cfg: Config, rows: Iterable[dict[str, Any]], *, name: str = "backfill", limit: int = 0,
                 where: str | None = None, overwrite: bool = False, checkpoint: Path | None = None,
                 progress: bool | None = None, log_every_s: float = 10.0, chunk: int = 200,
                 wall_clock: Callable[[], float] | None = None) -> Summary:
    """Process ``rows`` (after ``where``/``limit``) through the pipeline; the counts in a ``Summary``.

    The pacing of a worker applies (``engine.max_messages_per_s``/``max_bytes_per_s``, ``run_window``,
    ``live.*``): items are handed over only while nothing holds; ``wall_clock`` replaces time.time
    for the run windows (tests)."""
    selected = select_rows(rows, where=where, limit=limit)
    metrics = build_metrics(CollectorRegistry())
    fatal: list[BaseException] = []
    pipe = Pipeline(cfg, metrics, group=name, on_fatal=fatal.append)
    pacer = pacer_from_config(cfg, metrics.registry, wall=wall_clock or time.time)
    models = [m.name for m in pipe.models]
    ckpt = _Checkpoint(checkpoint)
    summary = Summary()
    cap = cfg.engine.max_inflight_messages
    table = InflightTable(pipe.completions, pipe.failures, on_result=summary.result_in)
    bar = _Progress(summary, progress, log_every_s)
    t0 = time.monotonic()

    def complete(block: bool) -> None:
        """Apply the completions queued now (waiting up to 0.2 s for one when ``block``)."""
        for inf in table.drain(0.2 if block else 0.0):
            if inf.failed:
                summary.failed += 1
            else:
                summary.done += 1
                ckpt.add([(m, *inf.ids()[::2]) for m in models])
            bar.step()
        bar.tick(len(table))
        if fatal:
            raise fatal[0]

    pipe.start()
    try:
        done = None if overwrite else _Finished(pipe.sinks, models, ckpt)
        batch: list[tuple[int, dict[str, Any]]] = []
        for item in selected:
            batch.append(item)
            if len(batch) >= pacer.room(chunk):
                _wait_for_pacing(pacer, complete)
                pacer.charge(*_submit(pipe, table, batch, done, summary, name, bar))
                batch = []
            while len(table) >= cap:
                complete(block=True)
            complete(block=False)
        _wait_for_pacing(pacer, complete)
        _submit(pipe, table, batch, done, summary, name, bar)
        while len(table):
            complete(block=True)
    finally:
        pacer.close()
        pipe.stop()
        ckpt.close()
        bar.close()
    summary.elapsed_s = time.monotonic() - t0
    log.info("%s", summary.line())
    return summary


def _wait_for_pacing(pacer: Pacer, complete: Callable[[bool], None]) -> None:
    """While the budget, a run window or the live flow holds, only collect completions (each call
    waits up to 0.2 s for one: no busy loop)."""
    while pacer.hold() is not None:
        complete(True)


def _submit(pipe: Pipeline, table: InflightTable, batch: list[tuple[int, dict[str, Any]]], done: _Finished | None,
            summary: Summary, name: str, bar: _Progress) -> tuple[int, int]:
    """Skip rows whose every model result is already durable (unless overwriting: ``done`` is None);
    send the rest into the pipeline.  Returns how many items (and request bytes) went in."""
    if not batch:
        return 0, 0
    ids = [(str(r.get("postid", "")), str(r.get("seqid", ""))) for _i, r in batch]
    finished = [False] * len(batch) if done is None else done.done(ids)
    records: list[Inflight] = []
    sent_bytes, n_models, topic = 0, len(pipe.models), f"backfill:{name}"
    for (index, row), skip in zip(batch, finished):
        summary.total += 1
        if skip:
            summary.skipped += 1
            bar.step()
            continue
        value = request_value(row)
        sent_bytes += len(value)
        # the row's place in the input stands for the offset: a failed row keeps its coordinates
        records.append(Inflight(SourceRef(topic, 0, index), 0, None, value, (), None,
                                remaining=n_models, nbytes=len(value)))
    ready = table.admit(records)
    if ready:
        pipe.decode_stage.submit(ready)
    return len(records), sent_bytes
