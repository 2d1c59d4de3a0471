"""The results table (one row per model, postid, seqid) and how a Result fills a row.

The schema is documented in docs/sinks.md; keep the two in step.  Key columns
have lengths that fit MySQL's 3072-byte index limit in utf8mb4
(4 x (128 + 300 + 300) bytes) and the request parser's 256-character ids.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from sidepath.sinks.base import Result

__all__ = ["results_table", "row_of", "REQUIRED_COLUMNS", "KEY_COLUMNS"]

log = logging.getLogger(__name__)

KEY_COLUMNS = ("model", "postid", "seqid")

# JSON on SQLite and MySQL, JSONB (indexable, compact) on PostgreSQL; Python None is SQL NULL
_Json = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
# MySQL's DATETIME drops fractions unless asked; values are always UTC
_Time = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")


def results_table(name: str, metadata: sa.MetaData, *, schema: str | None = None) -> sa.Table:
    return sa.Table(
        name, metadata,
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("postid", sa.String(300), primary_key=True),
        sa.Column("seqid", sa.String(300), primary_key=True),
        sa.Column("uid", sa.String(300), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("status", sa.String(5), nullable=False),
        sa.Column("msg", sa.Text, nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("results", _Json, nullable=True),
        sa.Column("source_topic", sa.String(255), nullable=True),
        sa.Column("source_partition", sa.Integer, nullable=True),
        sa.Column("source_offset", sa.BigInteger, nullable=True),
        sa.Column("timings_ms", _Json, nullable=True),
        sa.Column("extra", _Json, nullable=True),
        sa.Column("processed_at", _Time, nullable=True),
        sa.Column("updated_at", _Time, nullable=False),
        sa.CheckConstraint("status IN ('ok', 'error')", name=f"ck_{name}_status"[:60]),
        schema=schema,
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )


REQUIRED_COLUMNS = tuple(c.name for c in results_table("probe", sa.MetaData()).columns)


def _timestamp(text: str) -> datetime | None:
    try:
        ts = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        log.debug("processed_at %r is not ISO 8601; stored as NULL", text)
        return None
    # MySQL's DATETIME keeps no offset: store every time as UTC
    return ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)


def row_of(result: Result, now: datetime) -> dict[str, Any]:
    src = result.source
    return {
        "model": result.model, "postid": result.postid, "seqid": result.seqid,
        "uid": result.uid, "model_version": result.model_version,
        "status": "ok" if result.ok else "error", "msg": result.msg, "stage": result.stage,
        "results": result.results,
        "source_topic": None if src is None else src.topic,
        "source_partition": None if src is None else src.partition,
        "source_offset": None if src is None else src.offset,
        "timings_ms": result.timings_ms or None, "extra": result.extra or None,
        "processed_at": _timestamp(result.processed_at), "updated_at": now,
    }
