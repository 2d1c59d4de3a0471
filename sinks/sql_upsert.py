"""One upsert statement per dialect, executed over a whole batch.

PostgreSQL and SQLite: ``INSERT ... ON CONFLICT (model, postid, seqid) DO UPDATE``
(or ``DO NOTHING``); MySQL/MariaDB: ``INSERT ... ON DUPLICATE KEY UPDATE``, where
"ignore" is a no-op update (``model = model``) rather than ``INSERT IGNORE``,
which would also turn bad values into warnings and store them mangled.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from sidepath.core.errors import ConfigError

__all__ = ["upsert_statement", "DIALECTS"]

DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb")


def upsert_statement(table: sa.Table, dialect: str, on_conflict: str, *, url: str = "") -> Insert:
    keys = [c.name for c in table.primary_key.columns]
    values = [c.name for c in table.columns if not c.primary_key]
    if dialect in ("postgresql", "sqlite"):
        stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
        if on_conflict == "ignore":
            return stmt.on_conflict_do_nothing(index_elements=keys)
        return stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in values})
    if dialect in ("mysql", "mariadb"):
        my = mysql.insert(table)
        if on_conflict == "ignore":
            return my.on_duplicate_key_update({keys[0]: table.c[keys[0]]})
        return my.on_duplicate_key_update({c: my.inserted[c] for c in values})
    raise ConfigError("sinks.urls", url, f"the SQL sink cannot upsert into {dialect}; "
                                         f"use one of {', '.join(DIALECTS)}")
