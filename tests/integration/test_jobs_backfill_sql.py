"""`sidepath backfill --from-sql` against a real PostgreSQL: kill and resume, failures, --limit/--where/--overwrite.

Items are rows of a table the test creates, media are small PNGs inline as
base64, decoded for real (``noop`` with frames asks for them); results go to a
PostgreSQL results table.  No Kafka is involved.
"""
from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.media import make_image
from tests.worker_util import worker_config, write_config_file

pytestmark = pytest.mark.postgres

SUMMARY = re.compile(r"backfill: (\d+) items: (\d+) done, (\d+) skipped \(already in the destination\), "
                     r"(\d+) failed")
QUERY = "SELECT postid, uid, seqid, image FROM items ORDER BY seqid"


def _png(width: int) -> str:
    return base64.b64encode(make_image("png", size=(width, 24))).decode()


def _fill(db, n: int) -> None:
    db.execute("CREATE TABLE items (postid text, uid text, seqid int, image text)")
    db.execute(f"INSERT INTO items SELECT 'p' || i, 'u' || (i % 7), i, '{_png(32)}' FROM generate_series(0, {n - 1}) i")


def _config(tmp_path: Path, db, **overrides) -> Path:
    cfg = worker_config(tmp_path, "127.0.0.1:9", "unused", **{
        "model.name": "noop", "model.options": {"frames": True}, "model.max_batch": 8,
        "sinks.urls": [db.url + "?table=results"], **overrides})
    return write_config_file(tmp_path / "sidepath.toml", cfg)


def _rows(db) -> dict[tuple[str, str], tuple[str, str, dict | None]]:
    try:
        got = db.execute("SELECT postid, seqid, status, stage, results FROM results")
    except Exception:  # noqa: BLE001 - the table is created by the first write
        return {}
    return {(p, s): (st, stage, res) for p, s, st, stage, res in got}


def _count(db) -> int:
    try:
        return db.execute("SELECT count(*) FROM results")[0][0]
    except Exception:  # noqa: BLE001
        return 0


def _summary(text: str) -> tuple[int, int, int, int]:
    m = SUMMARY.search(text)
    assert m, text[-3000:]
    return tuple(int(g) for g in m.groups())  # type: ignore[return-value]


def test_backfill_killed_half_way_resumes_to_exactly_500_rows(tmp_path, postgres_db):
    n = 500
    _fill(postgres_db, n)
    config = _config(tmp_path, postgres_db, **{"model.options": {"frames": True, "item_ms": 15}})
    cmd = [sys.executable, "-m", "sidepath.worker.cli.main", "--log-format", "json", "--config", str(config),
           "backfill", "--from-sql", postgres_db.url, "--query", QUERY, "--log-every", "0.5"]
    log1 = tmp_path / "run1.log"
    with log1.open("wb") as out:
        first = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while _count(postgres_db) < n // 2 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    assert first.returncode == -signal.SIGKILL, log1.read_text()[-3000:]
    at_kill = _count(postgres_db)
    assert n // 2 <= at_kill < n
    progress = [json.loads(line)["message"] for line in log1.read_text().splitlines()
                if '"backfill progress' in line]
    assert progress, "no periodic progress line in the log (stdout is not a TTY)"
    assert all(re.match(r"backfill progress: \d+ read, \d+ done, 0 skipped, 0 failed", m) for m in progress)

    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout[-3000:]
    total, done, skipped, failed = _summary(second.stdout)
    assert (total, skipped, failed) == (n, at_kill, 0)
    assert done == n - at_kill
    rows = _rows(postgres_db)
    assert len(rows) == n == _count(postgres_db)            # exactly one row per item, none twice
    assert set(rows) == {(f"p{i}", str(i)) for i in range(n)}
    assert {st for st, _stage, _res in rows.values()} == {"ok"}
    assert {(res["width"], res["height"]) for _st, _stage, res in rows.values()} == {(32, 24)}   # really decoded


def test_a_failed_item_exits_1_and_is_retried_on_the_next_run(tmp_path, postgres_db, run_cli):
    _fill(postgres_db, 20)
    bad = base64.b64encode(b"this is not an image at all, just text" * 3).decode()
    postgres_db.execute(f"UPDATE items SET image = '{bad}' WHERE postid = 'p7'")
    config = _config(tmp_path, postgres_db)
    args = ["--config", str(config), "backfill", "--from-sql", postgres_db.url, "--query", QUERY]

    r = run_cli(*args)
    assert r.exit_code == 1, r.output[-3000:]
    assert _summary(r.stdout) == (20, 19, 0, 1)
    assert "first errors: p7:" in r.stdout
    rows = _rows(postgres_db)
    assert len(rows) == 20 and rows[("p7", "7")][:2] == ("error", "decode")
    letters = [json.loads(line) for line in (tmp_path / "dead-letters.jsonl").read_text().splitlines()]
    assert [(d["stage"], json.loads(base64.b64decode(d["value_b64"]))["postid"]) for d in letters] == \
        [("decode", "p7")]

    postgres_db.execute(f"UPDATE items SET image = '{_png(40)}' WHERE postid = 'p7'")      # the source is fixed
    r = run_cli(*args)
    assert r.exit_code == 0, r.output[-3000:]
    assert _summary(r.stdout) == (20, 1, 19, 0)      # the error row did not count as done
    rows = _rows(postgres_db)
    assert len(rows) == 20 and {st for st, _s, _r in rows.values()} == {"ok"}
    assert rows[("p7", "7")][2]["width"] == 40


def test_limit_where_and_overwrite(tmp_path, postgres_db, run_cli):
    _fill(postgres_db, 30)
    config = _config(tmp_path, postgres_db)
    base = ["--config", str(config), "backfill", "--from-sql", postgres_db.url, "--query", QUERY]

    r = run_cli(*base, "--where", "seqid % 3 = 0", "--limit", "4")
    assert r.exit_code == 0, r.output[-3000:]
    assert _summary(r.stdout) == (4, 4, 0, 0)
    assert set(_rows(postgres_db)) == {(f"p{i}", str(i)) for i in (0, 3, 6, 9)}

    r = run_cli(*base, "--where", "seqid % 3 = 0")
    assert _summary(r.stdout) == (10, 6, 4, 0)
    assert set(_rows(postgres_db)) == {(f"p{i}", str(i)) for i in range(0, 30, 3)}

    before = dict(postgres_db.execute("SELECT postid, updated_at FROM results"))
    r = run_cli(*base, "--where", "seqid < 4", "--overwrite")
    assert _summary(r.stdout) == (4, 4, 0, 0)            # p0, p1, p2, p3: none skipped
    after = dict(postgres_db.execute("SELECT postid, updated_at FROM results"))
    assert len(after) == 12                               # p1 and p2 are new; p0 and p3 rewritten in place
    assert after["p0"] > before["p0"] and after["p3"] > before["p3"]
    assert all(after[p] == before[p] for p in before if p not in ("p0", "p3"))

    r = run_cli(*base, "--where", "no_such_column = 1")
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_such_column" in lines[0] and "must return postid, uid, seqid" in lines[0]
