"""Where `sidepath backfill` reads its items: a JSONL/CSV file, a directory of media, a SQL query.

Each source yields rows (dicts with postid, uid, seqid and a media field);
``select_rows`` applies ``--where``/``--limit`` and numbers them by their place in
the input; ``request_value`` turns a row into the message a producer would have
sent.  See docs/jobs.md.
"""
from __future__ import annotations

import base64
import csv
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sidepath.core.env import expand_env
from sidepath.core.errors import ConfigError, FatalError
from sidepath.core.masking import mask_url

__all__ = ["rows_from_file", "rows_from_dir", "rows_from_sql", "select_rows", "request_value", "MEDIA_SUFFIXES"]

MEDIA_SUFFIXES = {
    ".mp4": "video", ".mov": "video", ".mkv": "video", ".webm": "video", ".avi": "video",
    ".jpg": "image", ".jpeg": "image", ".png": "image", ".webp": "image", ".bmp": "image",
    ".wav": "audio", ".mp3": "audio", ".m4a": "audio", ".aac": "audio", ".flac": "audio", ".ogg": "audio",
}
_INVALID = "_invalid"      # a row that is not a request at all (a line that is not JSON): its text


def rows_from_file(path: Path) -> Iterator[dict[str, Any]]:
    """JSONL (one request per line) or CSV with a header (postid, uid, seqid, video|image|audio|data)."""
    with path.open("rb") as fh:
        if path.suffix.lower() == ".csv":
            rows = csv.DictReader(_utf8_lines(fh, path))
            yield from ({k: v for k, v in row.items() if k and v not in (None, "")} for row in rows)
            return
        for line in fh:
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError:          # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
                doc = None
            # a bad line still gets its error row and dead letter, like a bad Kafka message
            yield doc if isinstance(doc, dict) else {_INVALID: line.strip()}


def _utf8_lines(fh: Iterable[bytes], path: Path) -> Iterator[str]:
    """A CSV file's lines as text.  A record may span lines, so a line that is not UTF-8 cannot be
    set aside as one bad row: it stops the run (what was written stays; a rerun resumes)."""
    for n, line in enumerate(fh, 1):
        try:
            yield line.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError("--input", str(path), f"line {n} is not UTF-8 text (byte {exc.start}); "
                              "save the file as UTF-8") from None


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
        bad = row[_INVALID]
        return bad if isinstance(bad, bytes) else str(bad).encode()
    return json.dumps({k: _plain(v) for k, v in row.items() if v is not None}, default=str).encode()

