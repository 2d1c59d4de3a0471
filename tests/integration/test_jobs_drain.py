"""`sidepath drain` on the real broker into a real PostgreSQL: once per record, resumable, expiry warnings."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import time

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from sidepath.core.logs import librdkafka_logging
from tests.kafka_util import create_topic, produce, read_all
from tests.worker_util import worker_config, write_config_file

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def _config(tmp_path, bootstrap: str) -> str:
    cfg = worker_config(tmp_path, bootstrap, "unused", **{"engine.commit_interval_s": 0.2})
    return str(write_config_file(tmp_path / "sidepath.toml", cfg))


def _table(db, name: str = "drained") -> dict[str, tuple[str, dict]]:
    return {seqid: (postid, res) for postid, seqid, res in
            db.execute(f"SELECT postid, seqid, results FROM {name} WHERE model = 'record'")}


def _warnings(output: str) -> list[str]:
    docs = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [d["message"] for d in docs if d["level"] == "WARNING"]


def test_drain_twice_copies_every_record_once(tmp_path, kafka_bootstrap, postgres_db, run_cli):
    topic = f"drain-once-{time.time_ns()}"
    create_topic(kafka_bootstrap, topic, 3)
    values: list = [{"postid": f"p{i}", "uid": "u", "seqid": 1, "note": i} for i in range(45)]
    values += [{"postid": "same", "uid": "u", "seqid": 1}] * 3          # three records, one postid
    values += [b"\x00\xffnot json", "plain text", json.dumps([1, 2])]
    produce(kafka_bootstrap, topic, values)
    n = len(values)
    config = _config(tmp_path, kafka_bootstrap)
    sink = postgres_db.url + "?table=drained"
    cmd = [sys.executable, "-m", "sidepath.worker.cli.main", "--log-format", "json", "--config", config,
           "drain", "--topic", topic, "--sink", sink]

    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert f"drained {n} records from {topic}" in first.stdout
    rows = _table(postgres_db)
    records = read_all(kafka_bootstrap, topic, expect=n)
    assert set(rows) == {f"{topic}:{m.partition()}:{m.offset()}" for m in records}      # one row per record
    for m in records:
        postid, res = rows[f"{topic}:{m.partition()}:{m.offset()}"]
        try:
            doc = json.loads(m.value())
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            assert (postid, res) == (doc["postid"], {"value": doc})
        elif doc is not None:
            assert res == {"value": doc}
        else:
            assert base64.b64decode(res["value_b64"]) == m.value()
    assert sum(1 for postid, _r in rows.values() if postid == "same") == 3

    r = run_cli("--config", config, "drain", "--topic", topic, "--sink", sink)
    assert r.exit_code == 0, r.output[-3000:]
    assert f"drained 0 records from {topic}" in r.stdout
    assert len(_table(postgres_db)) == n

    # another group has no offsets: it reads everything again, and the rows stay one per record
    r = run_cli("--config", config, "drain", "--topic", topic, "--sink", sink, "--group", "other", "--json")
    assert r.exit_code == 0, r.output[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert (report["copied"], report["errors"], report["group"]) == (n, 0, "other")
    assert len(_table(postgres_db)) == n


def _produce_at(bootstrap: str, topic: str, timestamps_ms: list[int]) -> None:
    p = Producer({**librdkafka_logging(), "bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i, ts in enumerate(timestamps_ms):
        p.produce(topic, json.dumps({"postid": f"t{ts}-{i}", "uid": "u", "seqid": 1}).encode(), timestamp=ts)
    assert p.flush(30) == 0


def test_drain_warns_when_unread_records_are_close_to_expiry_or_gone(tmp_path, kafka_bootstrap, postgres_db,
                                                                        run_cli):
    topic = f"drain-expiry-{time.time_ns()}"
    create_topic(kafka_bootstrap, topic, 1, config={"retention.ms": str(3600 * 1000)})
    now_ms = int(time.time() * 1000)
    _produce_at(kafka_bootstrap, topic, [now_ms - 50 * 60 * 1000] * 4 + [now_ms] * 3)   # 50 min old, then new
    config = _config(tmp_path, kafka_bootstrap)
    args = ["--config", config, "drain", "--topic", topic, "--sink", postgres_db.url + "?table=drained"]

    r = run_cli(*args)
    assert r.exit_code == 0, r.output[-3000:]
    warned = [w for w in _warnings(r.stdout) if w.startswith(f"oldest unread record of {topic}")]
    assert len(warned) == 1, _warnings(r.stdout)
    assert "partition:offset 0:0, 50 min old" in warned[0]
    assert "expires in about 9 min" in warned[0] or "expires in about 10 min" in warned[0]
    assert "(retention 1 h); 7 records unread" in warned[0]
    assert f"drained 7 records from {topic}" in r.stdout

    # nothing unread now: no warning, even with a wide window
    r = run_cli(*args, "--warn-hours", "24")
    assert r.exit_code == 0 and f"drained 0 records from {topic}" in r.stdout
    assert not [w for w in _warnings(r.stdout) if topic in w]

    # new records, then the oldest of them deleted before the drain got to them
    _produce_at(kafka_bootstrap, topic, [int(time.time() * 1000)] * 5)          # offsets 7..11
    admin = AdminClient({**librdkafka_logging(), "bootstrap.servers": kafka_bootstrap})
    fut = admin.delete_records([TopicPartition(topic, 0, 10)])
    list(fut.values())[0].result(30)
    r = run_cli(*args, "--warn-hours", "0")
    assert r.exit_code == 0, r.output[-3000:]
    lost = [w for w in _warnings(r.stdout) if "deleted by retention" in w]
    assert lost == [f"3 records of {topic} were deleted by retention before this drain's group read them; "
                    "drain more often than retention.ms"]
    assert f"drained 2 records from {topic}" in r.stdout and "3 expired before they were read" in r.stdout
    assert len(_table(postgres_db)) == 9
