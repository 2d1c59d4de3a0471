"""`sidepath backfill`: run a model over existing items to (re)fill a results table.

The same pipeline as the streaming worker (decode pool, batched model runner,
sink writer with dead letters), fed from a JSONL/CSV file, a directory of
media or a SQL query instead of Kafka.  Resumable: an item whose every model
already has an ``ok`` row in the destination (a SQL sink) or in the checkpoint
file is skipped and counted; items that failed before are tried again.
See docs/jobs.md.
"""
from __future__ import annotations

import base64
import csv
import json
import logging
import queue
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from sidepath.core.env import expand_env
from sidepath.core.errors import BadRequest, ConfigError, FatalError
from sidepath.core.masking import mask_url
from sidepath.sinks.base import SourceRef
from sidepath.worker.config import Config
from sidepath.worker.engine.inflight import Inflight
from sidepath.worker.engine.pacing import Pacer, pacer_from_config
from sidepath.worker.engine.pipeline import Pipeline
from sidepath.worker.engine.request import parse_request
from sidepath.worker.ops.metrics import build_metrics

__all__ = ["rows_from_file", "rows_from_dir", "rows_from_sql", "select_rows", "request_value", "run_backfill",
           "Summary"]

log = logging.getLogger(__name__)

MEDIA_SUFFIXES = {
    ".mp4": "video", ".mov": "video", ".mkv": "video", ".webm": "video", ".avi": "video",
    ".jpg": "image", ".jpeg": "image", ".png": "image", ".webp": "image", ".bmp": "image",
    ".wav": "audio", ".mp3": "audio", ".m4a": "audio", ".aac": "audio", ".flac": "audio", ".ogg": "audio",
}
_INVALID = "_invalid"      # a row that is not a request at all (a line that is not JSON): its text


def rows_from_file(path: Path) -> Iterator[dict[str, Any]]:
    """JSONL (one request per line) or CSV with a header (postid, uid, seqid, video|image|audio|data)."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as fh:
            yield from ({k: v for k, v in row.items() if k and v not in (None, "")} for row in csv.DictReader(fh))
        return
    with path.open() as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                doc = None
            # a bad line still gets its error row and dead letter, like a bad Kafka message
            yield doc if isinstance(doc, dict) else {_INVALID: line.strip()}


def rows_from_dir(path: Path) -> Iterator[dict[str, Any]]:
    """Every media file under ``path`` (hidden ones aside), in name order.

    postid is the path relative to the directory, uid the directory's name, seqid 0.
    """
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path)
        kind = MEDIA_SUFFIXES.get(f.suffix.lower())
        if kind and not any(part.startswith(".") for part in rel.parts):
            yield {"postid": rel.as_posix(), "uid": path.resolve().name or "-", "seqid": 0, kind: str(f.resolve())}


def rows_from_sql(url: str, query: str, where: str | None = None, limit: int = 0) -> Iterator[dict[str, Any]]:
    """Rows of a SQL query returning postid, uid, seqid and a media column, streamed.

    ``where`` (a SQL condition) and ``limit`` are applied by the database.  The
    query runs with the caller's credentials; give it an ORDER BY when --limit
    must pick the same rows every time.
    """
    import sqlalchemy as sa

    sql = f"SELECT * FROM ({query.strip().rstrip(';')}) AS q" + (f" WHERE {where}" if where else "") + \
        (f" LIMIT {int(limit)}" if limit else "")
    try:
        engine = sa.create_engine(expand_env(url))
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise ConfigError("--from-sql", mask_url(url), f"cannot use this database URL ({exc}); "
                          "e.g. postgresql+psycopg://user:${PGPASSWORD}@host/db") from None
    started = False
    try:
        with engine.connect() as conn:
            for row in conn.execution_options(yield_per=1000).execute(sa.text(sql)).mappings():
                started = True
                yield dict(row)
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if started:       # the query was fine: the database went away in the middle
            raise FatalError(f"reading items from {mask_url(url)} failed after some rows: {reason}; "
                             "run the backfill again to resume") from None
        raise ConfigError("--query", query + (f" WHERE {where}" if where else ""),
                          f"the query failed ({reason}); it must return postid, uid, seqid and a "
                          "video/image/audio/data column") from None
    finally:
        engine.dispose()


def _matches(where: str) -> Any:
    """For file inputs ``--where`` is ``field=value`` (SQL inputs pass it to the database)."""
    if "=" not in where:
        raise ConfigError("--where", where, "for file inputs use field=value (SQL inputs take a SQL condition)")
    k, v = (s.strip() for s in where.split("=", 1))
    return lambda row: str(row.get(k)) == v


def select_rows(rows: Iterable[dict[str, Any]], *, where: str | None = None,
                limit: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """(input row number, row) after the ``where`` filter, at most ``limit`` of them.

    The row number is the item's place in the input, so a failed row keeps the
    same coordinates (and error row) from one run to the next.
    """
    keep = _matches(where) if where else None     # a bad --where fails here, before any work

    def selected() -> Iterator[tuple[int, dict[str, Any]]]:
        n = 0
        for index, row in enumerate(rows):
            if limit and n >= limit:
                return
            if keep is None or keep(row):
                n += 1
                yield index, row

    return selected()


def _plain(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):   # a blob column holding the media itself
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def request_value(row: dict[str, Any]) -> bytes:
    """The message a row stands for, as a Kafka producer would have sent it."""
    if _INVALID in row:
        return str(row[_INVALID]).encode()
    return json.dumps({k: _plain(v) for k, v in row.items() if v is not None}, default=str).encode()


@dataclass
class Summary:
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
                 wall_clock: Any = None) -> Summary:
    """Process ``rows`` (after ``where``/``limit``) through the pipeline; the counts in a ``Summary``.

    The pacing of a worker applies (``engine.max_messages_per_s``/``max_bytes_per_s``, ``run_window``,
    ``live.*``): items are handed over only while nothing holds; ``wall_clock`` replaces time.time
    for the run windows (tests)."""
    selected = select_rows(rows, where=where, limit=limit)
    metrics = build_metrics(CollectorRegistry())
    fatal: list[BaseException] = []
    pipe = Pipeline(cfg, metrics, group=name, on_fatal=fatal.append)
    pacer = pacer_from_config(cfg, metrics.registry, **({"wall": wall_clock} if wall_clock else {}))
    models = [m.name for m in pipe.models]
    ckpt = _Checkpoint(checkpoint)
    summary = Summary()
    cap = cfg.engine.max_inflight_messages
    inflight: dict[int, Inflight] = {}
    bar = _Progress(summary, progress, log_every_s)
    t0 = time.monotonic()

    def finish(inf: Inflight) -> None:
        inflight.pop(inf.source.offset, None)
        if inf.failed:
            summary.failed += 1
        else:
            summary.done += 1
            ckpt.add([(m, *inf.ids()[::2]) for m in models])
        bar.step()

    def complete(block: bool) -> None:
        try:
            done = pipe.completions.get(timeout=0.2) if block else pipe.completions.get_nowait()
        except queue.Empty:
            done = None
        while done is not None:       # a list per sink write
            for c in done:
                inf = c.inflight
                inf.remaining -= 1
                if not c.ok:
                    inf.failed = True
                    if len(summary.first_errors) < 5 and not any(e.startswith(inf.ids()[0] + ":")
                                                                 for e in summary.first_errors):
                        summary.first_errors.append(f"{inf.ids()[0]}: {c.error}")
                if inf.remaining == 0:
                    finish(inf)
            try:
                done = pipe.completions.get_nowait()
            except queue.Empty:
                done = None
        bar.tick(len(inflight))
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
                pacer.charge(*_submit(pipe, batch, done, summary, inflight, name, bar))
                batch = []
            while len(inflight) >= cap:
                complete(block=True)
            complete(block=False)
        _wait_for_pacing(pacer, complete)
        _submit(pipe, batch, done, summary, inflight, name, bar)
        while inflight:
            complete(block=True)
    finally:
        pacer.close()
        pipe.stop()
        ckpt.close()
        bar.close()
    summary.elapsed_s = time.monotonic() - t0
    log.info("%s", summary.line())
    return summary


def _wait_for_pacing(pacer: Pacer, complete: Any) -> None:
    """While the budget, a run window or the live flow holds, only collect completions (each call
    waits up to 0.2 s for one: no busy loop)."""
    while pacer.hold() is not None:
        complete(block=True)


def _submit(pipe: Pipeline, batch: list[tuple[int, dict[str, Any]]], done: _Finished | None,
            summary: Summary, inflight: dict[int, Inflight], name: str, bar: _Progress) -> tuple[int, int]:
    """Skip rows whose every model result is already durable (unless overwriting: ``done`` is None);
    send the rest into the pipeline.  Returns how many items (and request bytes) went in."""
    if not batch:
        return 0, 0
    ids = [(str(r.get("postid", "")), str(r.get("seqid", ""))) for _i, r in batch]
    finished = [False] * len(batch) if done is None else done.done(ids)
    ready: list[Inflight] = []
    sent = sent_bytes = 0
    for (index, row), skip in zip(batch, finished):
        summary.total += 1
        if skip:
            summary.skipped += 1
            bar.step()
            continue
        value = request_value(row)
        sent, sent_bytes = sent + 1, sent_bytes + len(value)
        source = SourceRef(f"backfill:{name}", 0, index)
        inf = Inflight(source, 0, None, value, (), None, remaining=len(pipe.models))
        inflight[index] = inf
        try:
            inf.request = parse_request(value, source)
        except BadRequest as exc:
            pipe.failures.fail(inf, "parse", exc)
            continue
        ready.append(inf)
    if ready:
        pipe.decode_stage.submit(ready)
    return sent, sent_bytes
