"""Sort a database error into what the SQL sink does next.

    transient  the server is away or busy (connection refused, admin shutdown,
               deadlock, SQLite "database is locked"): raise TransientSinkError;
               the engine retries the whole batch, which the upsert makes safe.
    data       this batch holds a row the database refuses (constraint, bad
               value, NUL byte): split the batch to find and reject that row.
    fatal      retrying cannot help (wrong password, missing database, no
               privilege, table gone): raise FatalError with the server's words.
"""
from __future__ import annotations

import re
from typing import Literal

from sqlalchemy import exc as sa_exc

__all__ = ["classify", "first_line", "Verdict"]

Verdict = Literal["transient", "data", "fatal"]

# SQLSTATE classes that a retry cannot fix: 28 = invalid authorization, 3D = no such database
_FATAL_SQLSTATE_PREFIXES = ("28", "3D", "42")
# MySQL/MariaDB codes that pymysql files under OperationalError but are about the row
_MYSQL_DATA_CODES = {3819, 4025}          # CHECK constraint violated (MySQL, MariaDB)
_MYSQL_FATAL_CODES = {1044, 1045, 1049, 1142, 1143, 1146}   # access denied, unknown db/table
# libpq reports failed logins without a SQLSTATE; these words are stable across versions
_FATAL_CONNECT_TEXT = re.compile(r'password authentication failed|no pg_hba\.conf entry|'
                                 r'(database|role) "[^"]*" does not exist')


def first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _sqlstate(orig: BaseException | None) -> str:
    return str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")


def _mysql_code(orig: BaseException | None) -> int | None:
    args = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def classify(exc: BaseException) -> Verdict:
    if isinstance(exc, sa_exc.DBAPIError):
        orig = exc.orig
        state, code = _sqlstate(orig), _mysql_code(orig)
        if code in _MYSQL_DATA_CODES:
            return "data"
        if code in _MYSQL_FATAL_CODES or state.startswith(_FATAL_SQLSTATE_PREFIXES) \
                or _FATAL_CONNECT_TEXT.search(str(orig)):
            return "fatal"
        if exc.connection_invalidated:
            return "transient"
        if isinstance(exc, (sa_exc.IntegrityError, sa_exc.DataError)):
            return "data"
        if isinstance(exc, sa_exc.OperationalError) and "no such table" in str(orig):
            return "fatal"                      # SQLite names a missing table this way
        if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return "transient"
        return "fatal"                          # ProgrammingError, InternalError, NotSupportedError
    if isinstance(exc, (sa_exc.DisconnectionError, sa_exc.TimeoutError)):
        return "transient"
    if isinstance(exc, sa_exc.StatementError):
        return "data"                           # a value the driver could not bind (not JSON-able ...)
    return "fatal"
