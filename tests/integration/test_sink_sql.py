"""The SQL sink against real SQLite files and a real PostgreSQL server."""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from sidepath.core.errors import ConfigError, FatalError, TransientSinkError
from sidepath.sinks import open_sink
from sidepath.sinks.base import Result, SourceRef
from sidepath.sinks.registry import expand_url
from sidepath.sinks.sql import SqlSink
from sidepath.worker.dev.local_kafka import free_ports


def result(i: int, *, model: str = "age", msg: str = "", post: str | None = None, **results) -> Result:
    return Result(post or f"p{i}", f"u{i}", f"s{i}", model, "1.0", msg,
                  None if msg else {"age": i, **results}, SourceRef("posts", i % 4, 5000 + i),
                  {"fetch": 3.25, "infer": 1.5}, processed_at="2025-01-02T03:04:05.678Z",
                  stage="fetch" if msg else "")


@dataclass
class Db:
    kind: str
    url: str                       # as a user writes it (PostgreSQL: password as ${VAR})
    engine: sa.Engine              # an independent connection for checks

    def query(self, sql: str) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]

    def run(self, sql: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql))


class MariaDB:
    """A private MariaDB server (optional: the suite runs without it; `apt-get install mariadb-server`)."""

    PASSWORD_ENV = "SIDEPATH_TEST_MYSQL_PASSWORD"

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port, self.password = workdir, free_ports(1)[0], secrets.token_urlsafe(12) + "@/%"
        self.socket = str(workdir / "mysqld.sock")
        as_root = ["--user=mysql"] if os.geteuid() == 0 else []
        if as_root:
            shutil.chown(workdir, "mysql", "mysql")
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={workdir / 'data'}", *as_root,
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={workdir / 'data'}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", "--skip-name-resolve", *as_root,
             "--innodb-buffer-pool-size=16M", f"--log-error={workdir / 'error.log'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((workdir / "error.log").read_text(errors="replace")[-2000:])
            time.sleep(0.1)

    def root(self, *sql: str) -> None:
        import pymysql

        conn = pymysql.connect(unix_socket=self.socket, user="root")
        try:
            with conn.cursor() as cur:
                for q in sql:
                    cur.execute(q)
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    if not (shutil.which("mariadbd") and shutil.which("mariadb-install-db")):
        pytest.skip("MariaDB is not installed (apt-get install mariadb-server); "
                    "MySQL is then covered only by its upsert statement")
    server = MariaDB(Path(tempfile.mkdtemp(prefix="sidepath-mariadb-")))
    server.root(f"CREATE USER 'sidepath'@'127.0.0.1' IDENTIFIED BY '{server.password}'")
    saved = os.environ.get(MariaDB.PASSWORD_ENV)
    os.environ[MariaDB.PASSWORD_ENV] = server.password
    try:
        yield server
    finally:
        if saved is None:
            os.environ.pop(MariaDB.PASSWORD_ENV, None)
        else:
            os.environ[MariaDB.PASSWORD_ENV] = saved
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/results.db"
    elif request.param == "postgresql":
        url = request.getfixturevalue("postgres_db").url
    else:
        server = request.getfixturevalue("mariadb")
        name = f"t_{os.urandom(6).hex()}"
        server.root(f"CREATE DATABASE {name}", f"GRANT ALL ON {name}.* TO 'sidepath'@'127.0.0.1'")
        url = f"mysql+pymysql://sidepath:${{{MariaDB.PASSWORD_ENV}}}@127.0.0.1:{server.port}/{name}"
    engine = sa.create_engine(expand_url(url))
    yield Db(request.param, url, engine)
    engine.dispose()


@pytest.fixture
def pg(postgres_db):
    engine = sa.create_engine(expand_url(postgres_db.url))
    yield Db("postgresql", postgres_db.url, engine)
    engine.dispose()


def test_same_result_twice_is_one_row(db):
    sink = open_sink(db.url)
    batch = [result(i) for i in range(10)]
    assert sink.write(batch) == []
    assert sink.write(batch) == []                     # the redelivery after a crash
    sink.close()
    assert db.query("SELECT count(*) FROM sidepath_results") == [(10,)]


def test_a_later_result_overwrites_unless_on_conflict_is_ignore(db):
    update = open_sink(db.url)
    update.write([result(1)])
    update.write([result(1, msg="decode failed: not a video")])
    update.close()
    assert db.query("SELECT status, msg, stage FROM sidepath_results") == [("error", "decode failed: not a video",
                                                                             "fetch")]
    ignore = open_sink(db.url + "?on_conflict=ignore&table=first_wins")
    ignore.write([result(1)])
    ignore.write([result(1, msg="decode failed: not a video")])
    ignore.close()
    assert db.query("SELECT status, msg FROM first_wins") == [("ok", "")]


def test_duplicates_within_one_batch_last_one_wins(db):
    sink = open_sink(db.url)
    assert sink.write([result(1), result(2), result(1, msg="second try failed"), result(1, extra=7)]) == []
    sink.close()
    rows = db.query("SELECT postid, status FROM sidepath_results ORDER BY postid")
    assert rows == [("p1", "ok"), ("p2", "ok")]
    sink2 = SqlSink(expand_url(db.url))
    with sink2.engine.connect() as conn:
        stored = conn.execute(sa.select(sink2.table.c.results).where(sink2.table.c.postid == "p1")).scalar_one()
    sink2.close()
    assert stored == {"age": 1, "extra": 7}


def test_every_column_round_trips(db):
    sink = SqlSink(expand_url(db.url))
    ok, bad = result(3, score=0.25, labels=["a", "ü"]), result(4, msg="HTTP 404")
    sink.write([ok, bad])
    t = sink.table
    with sink.engine.connect() as conn:
        rows = {r.postid: r for r in conn.execute(sa.select(t).order_by(t.c.postid))}
    sink.close()
    row = rows["p3"]
    assert (row.model, row.seqid, row.uid, row.model_version, row.status, row.msg) == \
        ("age", "s3", "u3", "1.0", "ok", "")
    assert row.results == {"age": 3, "score": 0.25, "labels": ["a", "ü"]}
    assert (row.source_topic, row.source_partition, row.source_offset) == ("posts", 3, 5003)
    assert row.timings_ms == {"fetch": 3.25, "infer": 1.5}
    assert row.processed_at.replace(tzinfo=None) == datetime(2025, 1, 2, 3, 4, 5, 678000)
    assert row.updated_at is not None
    assert (rows["p4"].status, rows["p4"].results, rows["p4"].stage) == ("error", None, "fetch")


def test_refused_row_is_rejected_while_the_rest_of_its_batch_lands(db):
    if db.kind in ("sqlite", "mysql"):
        # a user-made table with a CHECK (SQLite checks no lengths at all)
        sink = open_sink(db.url)            # creates the default table (the schema reference)
        sink.close()
        if db.kind == "sqlite":
            ddl = db.query("SELECT sql FROM sqlite_master WHERE name = 'sidepath_results'")[0][0]
            db.run(ddl.replace("sidepath_results", "strict_results", 1)
                   .replace("PRIMARY KEY", "CHECK (length(postid) <= 8), PRIMARY KEY"))
        else:
            db.run("CREATE TABLE strict_results LIKE sidepath_results")
            db.run("ALTER TABLE strict_results ADD CONSTRAINT short_postid CHECK (length(postid) <= 8)")
        sink = open_sink(db.url + "?table=strict_results")
        batch = [result(i) for i in range(7)] + [result(7, post="p-far-too-long")] + \
                [result(i) for i in range(8, 12)]
        bad = [batch[7]]
        table = "strict_results"
    else:
        sink = open_sink(db.url)
        batch = [result(i) for i in range(12)]
        batch[3] = result(3, msg="bad \x00 byte")                 # PostgreSQL text cannot hold NUL
        batch[9] = result(9, note="nul \x00 in JSON")              # nor can JSONB
        bad = [batch[3], batch[9]]
        table = "sidepath_results"
    rejected = sink.write(batch)
    sink.close()
    assert [r.result for r in rejected] == bad                     # the very objects: the engine maps them back
    assert all(r.error.startswith("database refused the row") for r in rejected)
    assert db.query(f"SELECT count(*) FROM {table}") == [(len(batch) - len(bad),)]
    stored = {p for (p,) in db.query(f"SELECT postid FROM {table}")}
    assert stored == {r.postid for r in batch} - {r.postid for r in bad}


def test_keys_already_stored_are_found_for_a_resumed_backfill(db):
    sink = open_sink(db.url)
    sink.write([result(i) for i in range(0, 600, 2)] + [result(1, msg="timeout")])
    sink.write([result(i, model="tempo") for i in range(5)])
    wanted = [(f"p{i}", f"s{i}") for i in range(0, 700)]
    assert sink.existing_keys("age", wanted) == {(f"p{i}", f"s{i}") for i in range(0, 600, 2)} | {("p1", "s1")}
    assert sink.existing_keys("tempo", [("p1", "s1"), ("p9", "s9")]) == {("p1", "s1")}
    assert list(sink.read_keys("age", status="error")) == [("p1", "s1")]
    assert len(list(sink.read_keys("age"))) == 301
    sink.close()


def test_existing_table_without_our_columns_is_refused(db):
    db.run("CREATE TABLE legacy (model VARCHAR(10), postid VARCHAR(10), seqid VARCHAR(10), uid VARCHAR(10))")
    with pytest.raises(ConfigError) as info:
        open_sink(db.url + "?table=legacy")
    assert "table legacy lacks column(s) model_version, status, msg" in str(info.value)


def test_create_table_false_needs_an_existing_table(db):
    with pytest.raises(ConfigError, match="table nothing_here does not exist and create_table=false"):
        open_sink(db.url + "?table=nothing_here&create_table=false")


def test_sqlite_is_in_wal_mode_and_a_held_lock_is_transient(tmp_path):
    path = tmp_path / "r.db"
    sink = open_sink(f"sqlite:///{path}?busy_timeout_ms=200")
    sink.write([result(1)])
    other = sqlite3.connect(path, isolation_level=None)
    assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    other.execute("BEGIN IMMEDIATE")                 # another writer holds the write lock
    with pytest.raises(TransientSinkError, match="database is locked"):
        sink.write([result(2)])
    other.execute("COMMIT")
    assert sink.write([result(2)]) == []
    sink.close()
    assert other.execute("SELECT count(*) FROM sidepath_results").fetchone() == (2,)
    other.close()


def test_password_is_read_from_the_environment_and_never_logged(pg, postgres, caplog):
    caplog.set_level(logging.DEBUG)
    assert "${SIDEPATH_TEST_PGPASSWORD}" in pg.url
    sink = open_sink(pg.url)
    sink.write([result(1)])
    sink.close()
    assert postgres.password not in caplog.text and postgres.password not in sink.url
    assert pg.query("SELECT count(*) FROM sidepath_results") == [(1,)]


def test_wrong_password_is_fatal_not_retried(pg, monkeypatch):
    monkeypatch.setenv("SIDEPATH_TEST_PGPASSWORD", "not-the-password")
    with pytest.raises(FatalError, match="password authentication failed"):
        open_sink(pg.url)


def test_database_stopped_for_20_s_mid_stream_loses_and_duplicates_nothing(pg, postgres):
    """Writes raise TransientSinkError while PostgreSQL is down; retried, they all land once."""
    sink = open_sink(pg.url)
    batches = [[result(b * 50 + i) for i in range(50)] for b in range(30)]
    transient: list[str] = []
    other: list[BaseException] = []
    five_written, down = threading.Event(), threading.Event()

    def writer() -> None:
        try:
            for n, batch in enumerate(batches):
                if n == 5:
                    five_written.set()
                    down.wait(60)                    # the next writes meet a stopped server
                while True:                          # what the engine's retry loop does
                    try:
                        assert sink.write(batch) == []
                        break
                    except TransientSinkError as exc:
                        transient.append(str(exc))
                        time.sleep(0.5)
        except BaseException as exc:                 # noqa: BLE001 - reported by the main thread
            other.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    assert five_written.wait(60)
    postgres.stop("immediate")                       # a crash: no clean shutdown
    down.set()
    time.sleep(20)
    postgres.start()
    t.join(120)
    assert not t.is_alive()
    sink.close()
    assert not other, other
    assert transient and all("database not available" in m for m in transient)
    assert pg.query("SELECT count(*), count(DISTINCT postid) FROM sidepath_results") == [(1500, 1500)]
    ages = {p: a for p, a in pg.query("SELECT postid, (results->>'age')::int FROM sidepath_results")}
    assert ages == {r.postid: r.results["age"] for batch in batches for r in batch}
