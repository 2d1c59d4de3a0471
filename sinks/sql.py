"""The SQL sink: batched upserts through SQLAlchemy Core (SQLite, PostgreSQL, MySQL).

URLs are SQLAlchemy's, plus options of the sink in the query string::

    sqlite:///var/results.db
    postgresql+psycopg://sidepath:${PGPASSWORD}@db:5432/results?table=age_v2
    mysql+pymysql://sidepath:${MYSQL_PASSWORD}@db/results?on_conflict=ignore

    table=sidepath_results    table name (``schema.table`` allowed); created if missing
    on_conflict=update        update|ignore: a key already stored is overwritten or kept
    create_table=true         false: the table must exist (a DBA made it)
    pool_size=2               connections kept open (one writer thread needs one or two)
    connect_timeout_s=10      give up on an unreachable server after this long
    busy_timeout_ms=5000      SQLite: wait this long for another writer's lock
    synchronous=full          SQLite: full|normal (normal may lose the last commits on power loss)

Every other query option goes to the driver (``sslmode=require``, ``charset=utf8mb4``).

One ``write`` is one transaction of one upsert statement executed over the
batch, de-duplicated by key (the last result wins).  When the database refuses a
value, the batch is split in halves until the bad rows stand alone; those come
back as ``Rejected`` and the rest are committed.  See sql_errors.py for what is
retried and what is fatal.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from difflib import get_close_matches
from importlib.util import find_spec
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from sidepath.core.errors import ConfigError, FatalError, TransientSinkError
from sidepath.core.masking import mask_url
from sidepath.sinks.base import Rejected, Result
from sidepath.sinks.json_codec import encode
from sidepath.sinks.sql_errors import classify, first_line
from sidepath.sinks.sql_schema import REQUIRED_COLUMNS, results_table, row_of
from sidepath.sinks.sql_upsert import upsert_statement
from sidepath.sinks.url import SinkOptions, split_query

__all__ = ["SqlSink", "DEFAULT_TABLE"]

log = logging.getLogger(__name__)

DEFAULT_TABLE = "sidepath_results"
_OPTIONS = ("table", "on_conflict", "create_table", "pool_size", "connect_timeout_s",
            "busy_timeout_ms", "synchronous")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# a driver is picked when the URL names none; SQLAlchemy's defaults (psycopg2, mysqlclient) are not installed
_DEFAULT_DRIVERS = {"postgresql": ("psycopg", "postgres"), "mysql": ("pymysql", "mysql")}
_KEY_CHUNK = 500


def _dumps(value: Any) -> str:
    return encode(value).decode()


@dataclass(frozen=True, slots=True)
class _Row:
    result: Result
    values: dict[str, Any]


class _BadRows(Exception):
    """The database refused a value somewhere in these rows."""


class SqlSink:
    """Results as rows of one table, upserted in batches (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = mask_url(url)
        base, pairs = split_query(url)
        opts = SinkOptions(url, pairs)
        table = opts.text("table", DEFAULT_TABLE)
        self.on_conflict = opts.choice("on_conflict", "update", ("update", "ignore"))
        self.create_table = opts.boolean("create_table", True)
        pool_size = opts.integer("pool_size", 2, minimum=1)
        connect_timeout_s = opts.number("connect_timeout_s", 10.0, minimum=1.0)
        busy_timeout_ms = opts.integer("busy_timeout_ms", 5000)
        synchronous = opts.choice("synchronous", "full", ("full", "normal"))
        driver_options = opts.take_rest()
        for name in driver_options:      # the rest goes to the driver, but a typo of ours must not
            near = get_close_matches(name, _OPTIONS, n=1, cutoff=0.8)
            if near:
                raise ConfigError("sinks.urls", self.url, f"unknown option {name!r}; did you mean {near[0]}?")

        schema, _, name = table.rpartition(".")
        for part in filter(None, (schema, name)):
            if not _IDENT.match(part):
                raise ConfigError("sinks.urls", self.url, f"table name {table!r} is not a plain identifier; "
                                                          "use letters, digits and _ (schema.table allowed)")
        sa_url = self._sa_url(base, driver_options)
        self.dialect = sa_url.get_backend_name()
        kwargs: dict[str, Any] = {"pool_pre_ping": True, "json_serializer": _dumps}
        connect_args: dict[str, Any] = {}
        if self.dialect == "sqlite":
            if sa_url.database in (None, "", ":memory:"):
                raise ConfigError("sinks.urls", self.url, "an in-memory SQLite database is not durable; "
                                                          "use sqlite:///path/to/results.db")
            # one writer thread uses the pool, the engine may open the sink in another thread
            connect_args.update(timeout=busy_timeout_ms / 1000, check_same_thread=False)
            kwargs.update(pool_size=pool_size, max_overflow=0)
        else:
            connect_args["connect_timeout"] = max(1, round(connect_timeout_s))
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=3600,
                          pool_timeout=connect_timeout_s)
        try:
            self.engine: Engine = sa.create_engine(sa_url, connect_args=connect_args, **kwargs)
        except (ArgumentError, NoSuchModuleError, ImportError, TypeError) as exc:
            raise ConfigError("sinks.urls", self.url, f"cannot use this database URL ({first_line(exc)}); "
                                                      "see docs/sinks.md for the URL forms") from exc
        if self.dialect == "sqlite":
            self._sqlite_pragmas(busy_timeout_ms, synchronous)

        self.table = results_table(name, sa.MetaData(), schema=schema or None)
        self._stmt = upsert_statement(self.table, self.dialect, self.on_conflict, url=self.url)
        self._ready = False
        try:
            self._prepare()
        except TransientSinkError as exc:
            # the server may come up after us: the first write tries again
            log.warning("sink %s not reachable yet (%s); will create/check table %s on first write",
                        self.url, exc, self.table.fullname)

    def _sa_url(self, base: str, driver_options: dict[str, str]) -> sa.URL:
        try:
            sa_url = make_url(base)
        except ArgumentError as exc:
            raise ConfigError("sinks.urls", self.url, f"not a database URL ({exc}); "
                                                      "e.g. postgresql+psycopg://user:${PGPASSWORD}@host/db") from None
        backend, driver = sa_url.get_backend_name(), sa_url.get_driver_name()
        if backend in _DEFAULT_DRIVERS and "+" not in sa_url.drivername:
            driver, extra = _DEFAULT_DRIVERS[backend]
            sa_url = sa_url.set(drivername=f"{backend}+{driver}")
        else:
            extra = {"psycopg": "postgres", "pymysql": "mysql"}.get(driver, "")
        module = {"pysqlite": "sqlite3", "psycopg": "psycopg", "pymysql": "pymysql",
                  "psycopg2": "psycopg2"}.get(sa_url.get_driver_name())
        if module and find_spec(module) is None:
            how = f"pip install 'sidepath[{extra}]'" if extra else f"pip install {module}"
            raise ConfigError("sinks.urls", self.url, f"database driver {module} is not installed; {how}")
        if driver_options:
            sa_url = sa_url.update_query_dict(driver_options)
        return sa_url

    def _sqlite_pragmas(self, busy_timeout_ms: int, synchronous: str) -> None:
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            try:
                # WAL: readers never block the writer; busy_timeout: wait for a lock instead of failing at once
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
                cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
            finally:
                cur.close()

        event.listen(self.engine, "connect", _on_connect)

    def _raise_for(self, exc: SQLAlchemyError, doing: str) -> None:
        verdict = classify(exc)
        if verdict == "transient":
            raise TransientSinkError(f"sink {self.url}: database not available while {doing}: "
                                     f"{first_line(exc)}") from exc
        if verdict == "fatal":
            raise FatalError(f"sink {self.url}: {doing} failed: {first_line(exc)}; "
                             "check the credentials, the database and the table's privileges") from exc

    def _prepare(self) -> None:
        """Create the table if missing and check that an existing one has our columns."""
        try:
            insp = sa.inspect(self.engine)
            exists = insp.has_table(self.table.name, schema=self.table.schema)
            if not exists:
                if not self.create_table:
                    raise ConfigError("sinks.urls", self.url, f"table {self.table.fullname} does not exist and "
                                                              "create_table=false; create it or drop the option")
                try:
                    self.table.create(self.engine, checkfirst=True)
                    log.info("created table %s in %s", self.table.fullname, self.url)
                except SQLAlchemyError:
                    # another worker may have created it at the same moment
                    if not sa.inspect(self.engine).has_table(self.table.name, schema=self.table.schema):
                        raise
                insp = sa.inspect(self.engine)
            have = {c["name"] for c in insp.get_columns(self.table.name, schema=self.table.schema)}
        except SQLAlchemyError as exc:
            self._raise_for(exc, f"preparing table {self.table.fullname}")
            raise FatalError(f"sink {self.url}: cannot prepare table {self.table.fullname}: "
                             f"{first_line(exc)}") from exc
        missing = [c for c in REQUIRED_COLUMNS if c not in have]
        if missing:
            raise ConfigError("sinks.urls", self.url,
                              f"table {self.table.fullname} lacks column(s) {', '.join(missing)}; "
                              "add them (schema in docs/sinks.md) or name another table with ?table=")
        self._ready = True

    def write(self, results: Sequence[Result]) -> Sequence[Rejected]:
        if not results:
            return []
        if not self._ready:
            self._prepare()
        now = datetime.now(UTC)
        latest: dict[tuple[str, str, str], _Row] = {}
        for r in results:                        # one row per key in a statement; the last result wins
            latest.pop(r.key, None)
            latest[r.key] = _Row(r, row_of(r, now))
        rejected: list[Rejected] = []
        self._write_isolating(list(latest.values()), rejected)
        return rejected

    def _write_isolating(self, rows: list[_Row], rejected: list[Rejected]) -> None:
        try:
            self._execute(rows)
        except _BadRows as exc:
            if len(rows) == 1:
                cause = exc.__cause__
                rejected.append(Rejected(rows[0].result, f"database refused the row: {exc}",
                                         type(getattr(cause, "orig", None) or cause).__name__))
                log.debug("row %s rejected: %s", rows[0].result.key, exc)
                return
            mid = len(rows) // 2
            self._write_isolating(rows[:mid], rejected)
            self._write_isolating(rows[mid:], rejected)

    def _execute(self, rows: list[_Row]) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(self._stmt, [r.values for r in rows])
        except SQLAlchemyError as exc:
            self._raise_for(exc, f"writing {len(rows)} row(s)")
            raise _BadRows(first_line(exc)) from exc

    def existing_keys(self, model: str, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (postid, seqid) already have a row for ``model`` (backfill resume)."""
        t = self.table
        wanted = list(dict.fromkeys((str(p), str(s)) for p, s in keys))
        found: set[tuple[str, str]] = set()
        try:
            with self.engine.connect() as conn:
                for i in range(0, len(wanted), _KEY_CHUNK):
                    chunk = wanted[i:i + _KEY_CHUNK]
                    q = sa.select(t.c.postid, t.c.seqid).where(
                        t.c.model == model, sa.tuple_(t.c.postid, t.c.seqid).in_(chunk))
                    found.update((p, s) for p, s in conn.execute(q))
        except SQLAlchemyError as exc:
            self._raise_for(exc, "reading keys")
            raise
        return found

    def read_keys(self, model: str, *, status: str | None = None) -> Iterator[tuple[str, str]]:
        """Every (postid, seqid) stored for ``model`` (optionally only ``ok`` or ``error`` rows), streamed."""
        t = self.table
        q = sa.select(t.c.postid, t.c.seqid).where(t.c.model == model)
        if status is not None:
            q = q.where(t.c.status == status)
        try:
            with self.engine.connect() as conn:
                for row in conn.execution_options(yield_per=1000).execute(q.order_by(t.c.postid, t.c.seqid)):
                    yield row[0], row[1]
        except SQLAlchemyError as exc:
            self._raise_for(exc, "reading keys")
            raise

    def close(self) -> None:
        self.engine.dispose()

