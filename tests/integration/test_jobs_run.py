"""Finite runs of the worker from the CLI: `sidepath run --until-end`, `--start-at`, `--from-beginning`."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from confluent_kafka import Producer

from sidepath.core.logs import librdkafka_logging
from sidepath.worker.dev.local_kafka import group_offsets
from tests.kafka_util import create_topic, produce
from tests.worker_util import jsonl_results, wait_for, worker_config, write_config_file

pytestmark = pytest.mark.kafka

PAYLOAD = {"uid": "u", "seqid": 1, "data": "eA=="}


def test_until_end_stops_at_the_end_offsets_taken_at_start(tmp_path, kafka_bootstrap):
    topic = f"until-end-{time.time_ns()}"
    create_topic(kafka_bootstrap, topic, 2)
    for p in (0, 1):
        produce(kafka_bootstrap, topic, [{"postid": f"early{p}-{i}", **PAYLOAD} for i in range(20)], partition=p)
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{
        "model.options": {"frames": False, "item_ms": 40}, "model.max_batch": 4})
    config = write_config_file(tmp_path / "sidepath.toml", cfg)
    out = tmp_path / "results.jsonl"
    cmd = [sys.executable, "-m", "sidepath.worker.cli.main", "--log-format", "json", "--config", str(config),
           "run", "--until-end"]
    log = tmp_path / "run1.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: len(jsonl_results(out)) >= 4, 90, interval=0.05, what="the first results")
            for p in (0, 1):     # produced while the run is under way: after its end offsets were taken
                produce(kafka_bootstrap, topic, [{"postid": f"late{p}-{i}", **PAYLOAD} for i in range(5)],
                        partition=p)
            assert proc.wait(120) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "reached the end offsets taken at start; stopping" in log.read_text()
    early = sorted(f"early{p}-{i}" for p in (0, 1) for i in range(20))
    assert sorted(r["postid"] for r in jsonl_results(out)) == early
    assert {(t, p): v[0] for (t, p), v in group_offsets(kafka_bootstrap, cfg.kafka.group_id).items()} == \
        {(topic, 0): 20, (topic, 1): 20}                 # committed up to the end taken at start, no further

    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)     # the next run takes the rest
    assert second.returncode == 0, second.stdout[-3000:]
    late = sorted(f"late{p}-{i}" for p in (0, 1) for i in range(5))
    assert sorted(r["postid"] for r in jsonl_results(out)) == sorted(early + late)


def _produce_at(bootstrap: str, topic: str, stamps: dict[str, datetime]) -> None:
    p = Producer({**librdkafka_logging(), "bootstrap.servers": bootstrap, "enable.idempotence": True})
    for postid, at in stamps.items():
        p.produce(topic, json.dumps({"postid": postid, **PAYLOAD}).encode(), timestamp=int(at.timestamp() * 1000))
    assert p.flush(30) == 0


def test_start_at_an_iso_time_replays_from_there_and_from_beginning_replays_all(tmp_path, kafka_bootstrap,
                                                                                   run_cli):
    topic = f"start-at-{time.time_ns()}"
    create_topic(kafka_bootstrap, topic, 2)
    now = datetime.now(UTC)
    stamps = {f"old{i}": now - timedelta(hours=3, minutes=i) for i in range(4)}
    stamps |= {f"new{i}": now - timedelta(minutes=30 - i) for i in range(5)}
    _produce_at(kafka_bootstrap, topic, stamps)
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{"model.options": {"frames": False}})
    config = str(write_config_file(tmp_path / "sidepath.toml", cfg))
    out = tmp_path / "results.jsonl"
    cut = (now - timedelta(hours=1)).astimezone(timezone(timedelta(hours=5, minutes=30)))   # a zone other than UTC

    r = run_cli("--config", config, "run", "--start-at", cut.isoformat(timespec="seconds"), "--until-end")
    assert r.exit_code == 0, r.output[-3000:]
    assert sorted(x["postid"] for x in jsonl_results(out)) == [f"new{i}" for i in range(5)]

    # the group has committed everything: --from-beginning still replays the whole topic
    out.unlink()
    r = run_cli("--config", config, "run", "--from-beginning", "--until-end")
    assert r.exit_code == 0, r.output[-3000:]
    assert sorted(x["postid"] for x in jsonl_results(out)) == sorted(stamps)

    # a time without a zone is UTC
    out.unlink()
    naive = (now - timedelta(minutes=28, seconds=30)).replace(tzinfo=None).isoformat(timespec="seconds")
    r = run_cli("--config", config, "run", "--start-at", naive, "--until-end")
    assert r.exit_code == 0, r.output[-3000:]
    assert sorted(x["postid"] for x in jsonl_results(out)) == [f"new{i}" for i in range(2, 5)]

    r = run_cli("--config", config, "run", "--start-at", "yesterday", "--until-end")
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == ["error: config --start-at='yesterday': use ISO-8601 like "
                                             "2026-11-28T10:00:00Z, or epoch milliseconds"]


def test_backfill_via_kafka_hands_the_items_to_workers(tmp_path, kafka_bootstrap, topic, run_cli):
    src = tmp_path / "items.jsonl"
    src.write_text("".join(json.dumps({"postid": f"v{i}", "uid": f"u{i % 3}", "seqid": 1, "data": "eA=="}) + "\n"
                           for i in range(12)))
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{"model.options": {"frames": False}})
    config = str(write_config_file(tmp_path / "sidepath.toml", cfg))

    r = run_cli("--config", config, "backfill", "--input", str(src), "--where", "uid=u1", "--via-kafka", topic)
    assert r.exit_code == 0, r.output[-3000:]
    assert f"produced 4 items to {topic}" in r.stdout
    r = run_cli("--config", config, "run", "--until-end")
    assert r.exit_code == 0, r.output[-3000:]
    assert sorted(x["postid"] for x in jsonl_results(tmp_path / "results.jsonl")) == ["v1", "v10", "v4", "v7"]
