"""`sidepath backfill`: run a model over existing items to (re)fill a results table.

The same pipeline as the streaming worker (decode pool, batched model runner,
sink writer with dead letters), fed from a JSONL/CSV file, a directory of
media or a SQL query instead of Kafka.  Resumable: keys already in the
destination (a SQL sink) or in the checkpoint file are skipped and counted.
"""
from __future__ import annotations

import csv
import json
import logging
import queue
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from prometheus_client import CollectorRegistry

from sidepath.decoders.base import MEDIA_KINDS
from sidepath.sinks.base import SourceRef
from sidepath.worker.config import Config, expand_env
from sidepath.worker.errors import BadRequest, ConfigError
from sidepath.worker.inflight import Inflight
from sidepath.worker.metrics import build_metrics
from sidepath.worker.pipeline import Pipeline
from sidepath.worker.request import parse_request

__all__ = ["rows_from_file", "rows_from_dir", "rows_from_sql", "run_backfill", "Summary"]

log = logging.getLogger(__name__)

MEDIA_SUFFIXES = {
    ".mp4": "video", ".mov": "video", ".mkv": "video", ".webm": "video", ".avi": "video",
    ".jpg": "image", ".jpeg": "image", ".png": "image", ".webp": "image", ".bmp": "image",
    ".wav": "audio", ".mp3": "audio", ".m4a": "audio", ".aac": "audio", ".flac": "audio", ".ogg": "audio",
}


def rows_from_file(path: Path) -> Iterator[dict[str, Any]]:
    """JSONL (one request per line) or CSV with a header (postid, uid, seqid, video|image|audio|data)."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as fh:
            yield from ({k: v for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(fh))
        return
    with path.open() as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    yield {"_invalid": line.strip()[:200], "_line": n}


def rows_from_dir(path: Path) -> Iterator[dict[str, Any]]:
    """Every media file under ``path``; postid is its path relative to the directory."""
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        kind = MEDIA_SUFFIXES.get(f.suffix.lower())
        if kind:
            yield {"postid": str(f.relative_to(path)), "uid": "", "seqid": 0, kind: str(f.resolve())}


def rows_from_sql(url: str, query: str, where: str | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a SQL query that returns postid, uid, seqid and a media column."""
    import sqlalchemy as sa

    engine = sa.create_engine(expand_env(url))
    sql = f"SELECT * FROM ({query}) AS q" + (f" WHERE {where}" if where else "")
    try:
        with engine.connect() as conn:
            for row in conn.execute(sa.text(sql)).mappings():
                yield dict(row)
    except sa.exc.SQLAlchemyError as exc:
        raise ConfigError("--query", query, f"the query failed ({str(exc).splitlines()[0]}); "
                          "it must return postid, uid, seqid and a video/image/audio/data column") from None
    finally:
        engine.dispose()


def _where_filter(rows: Iterable[dict[str, Any]], where: str | None) -> Iterator[dict[str, Any]]:
    """For file inputs ``--where`` is ``field=value`` (SQL inputs pass it to the database)."""
    if not where:
        yield from rows
        return
    if "=" not in where:
        raise ConfigError("--where", where, "for file inputs use field=value (SQL inputs take a SQL condition)")
    k, v = (s.strip() for s in where.split("=", 1))
    yield from (r for r in rows if str(r.get(k)) == v)


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
        return (f"backfill: {self.done} done, {self.skipped} skipped (already in the destination), "
                f"{self.failed} failed in {self.elapsed_s:.1f} s" + (f"; first errors: {errs}" if errs else ""))


class _Checkpoint:
    """Keys whose results are durable, one JSON line each (for sinks that cannot be queried)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.keys: set[tuple[str, str, str]] = set()
        if path and path.exists():
            for line in path.read_text().splitlines():
                try:
                    self.keys.add(tuple(json.loads(line)))  # type: ignore[arg-type]
                except ValueError:
                    continue   # a torn last line after a crash
        self.fh = path.open("a") if path else None

    def add(self, keys: list[tuple[str, str, str]]) -> None:
        if self.fh and keys:
            self.fh.write("".join(json.dumps(k) + "\n" for k in keys))
            self.fh.flush()

    def close(self) -> None:
        if self.fh:
            self.fh.close()


def _existing(pipe: Pipeline, model: str, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    for sink in pipe.sinks:
        if hasattr(sink, "existing_keys"):
            return set(sink.existing_keys(model, keys))
    return set()


def run_backfill(cfg: Config, rows: Iterable[dict[str, Any]], *, name: str = "backfill", limit: int = 0,
                 where: str | None = None, overwrite: bool = False, checkpoint: Path | None = None,
                 progress: bool | None = None, chunk: int = 200) -> Summary:
    metrics = build_metrics(CollectorRegistry())
    fatal: list[BaseException] = []
    pipe = Pipeline(cfg, metrics, group=name, on_fatal=fatal.append)
    models = [m.name for m in pipe.models]
    ckpt = _Checkpoint(checkpoint)
    summary = Summary()
    cap = cfg.engine.max_inflight_messages
    inflight: dict[int, Inflight] = {}
    t0 = time.monotonic()
    bar = _progress_bar(progress)
    last_log = time.monotonic()

    def complete(block: bool) -> None:
        nonlocal last_log
        try:
            c = pipe.completions.get(timeout=0.5) if block else pipe.completions.get_nowait()
        except queue.Empty:
            return
        while True:
            inf = c.inflight
            inf.remaining -= 1
            if not c.ok:
                inf.timings_ms["_error"] = 1
                if len(summary.first_errors) < 5:
                    summary.first_errors.append(f"{inf.ids()[0]}: {c.error}")
            if inf.remaining == 0:
                inflight.pop(inf.source.offset, None)
                failed = "_error" in inf.timings_ms
                summary.failed += failed
                summary.done += not failed
                if not failed:
                    ckpt.add([(m, *inf.ids()[::2]) for m in models])
                if bar is not None:
                    bar.update(1)
            try:
                c = pipe.completions.get_nowait()
            except queue.Empty:
                break
        if bar is None and time.monotonic() - last_log > 10:
            last_log = time.monotonic()
            log.info("backfill progress: %d done, %d skipped, %d failed, %d in flight",
                     summary.done, summary.skipped, summary.failed, len(inflight))

    pipe.start()
    try:
        src = _where_filter(rows, where)
        index = 0
        batch: list[dict[str, Any]] = []
        for row in _limited(src, limit):
            batch.append(row)
            if len(batch) >= chunk:
                index = _submit(pipe, batch, index, models, overwrite, ckpt, summary, inflight, name, bar)
                batch = []
            while len(inflight) >= cap and not fatal:
                complete(block=True)
            complete(block=False)
            if fatal:
                raise fatal[0]
        _submit(pipe, batch, index, models, overwrite, ckpt, summary, inflight, name, bar)
        while inflight and not fatal:
            complete(block=True)
        if fatal:
            raise fatal[0]
    finally:
        pipe.stop()
        ckpt.close()
        if bar is not None:
            bar.close()
    summary.elapsed_s = time.monotonic() - t0
    return summary


def _limited(rows: Iterable[dict[str, Any]], limit: int) -> Iterator[dict[str, Any]]:
    for i, r in enumerate(rows):
        if limit and i >= limit:
            return
        yield r


def _submit(pipe: Pipeline, batch: list[dict[str, Any]], index: int, models: list[str], overwrite: bool,
            ckpt: _Checkpoint, summary: Summary, inflight: dict[int, Inflight], name: str, bar: Any) -> int:
    """Skip rows whose every model result is already durable; send the rest into the pipeline."""
    if not batch:
        return index
    ids = [(str(r.get("postid", "")), str(r.get("seqid", ""))) for r in batch]
    have = {m: set() if overwrite else _existing(pipe, m, ids) for m in models}
    for row, key in zip(batch, ids):
        summary.total += 1
        if not overwrite and all(key in have[m] or (m, *key) in ckpt.keys for m in models):
            summary.skipped += 1
            if bar is not None:
                bar.update(1)
            continue
        value = json.dumps({k: v for k, v in row.items() if k in ("postid", "uid", "seqid", *MEDIA_KINDS)
                            or not k.startswith("_")}, default=str).encode() if "_invalid" not in row \
            else row["_invalid"].encode()
        source = SourceRef(f"backfill:{name}", 0, index)
        inf = Inflight(source, 0, None, value, (), None, remaining=len(models))
        inflight[index] = inf
        index += 1
        try:
            inf.request = parse_request(value, source)
        except BadRequest as exc:
            pipe.failures.fail(inf, "parse", exc)
            continue
        pipe.decode_stage.submit(inf)
    return index


def _progress_bar(progress: bool | None) -> Any:
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(unit="item", desc="backfill", dynamic_ncols=True)

