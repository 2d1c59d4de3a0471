"""`sidepath skip` on the real broker: dead letters for the skipped messages, then the group moves."""
from __future__ import annotations

import base64
import json
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from sidepath.core.logs import librdkafka_logging
from sidepath.worker.dev.local_kafka import group_offsets
from tests.kafka_util import create_topic, produce
from tests.worker_util import worker_config, write_config_file

pytestmark = pytest.mark.kafka


def _setup(tmp_path, bootstrap):
    topic = f"skip-{time.time_ns()}"
    create_topic(bootstrap, topic, 2)
    produce(bootstrap, topic, [{"postid": f"p{i}", "uid": "u", "seqid": i, "data": "eA=="} for i in range(10)],
            partition=1)
    cfg = worker_config(tmp_path, bootstrap, topic)
    c = Consumer({**librdkafka_logging(), "bootstrap.servers": bootstrap, "group.id": cfg.kafka.group_id,
                  "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic, 1, 2)], asynchronous=False)
    c.close()
    return topic, cfg, str(write_config_file(tmp_path / "sidepath.toml", cfg))


def _letters(tmp_path):
    path = tmp_path / "dead-letters.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_skip_dead_letters_each_message_and_moves_the_group(tmp_path, kafka_bootstrap, run_cli):
    topic, cfg, config = _setup(tmp_path, kafka_bootstrap)
    from click.testing import CliRunner

    from sidepath.worker.cli.main import cli

    r = CliRunner().invoke(cli, ["--config", config, "skip", "--partition", "1", "--offset", "5"], input="n\n")
    assert r.exit_code == 0, r.output
    assert "skip offsets 2..5" in r.output and "nothing skipped" in r.output
    assert not _letters(tmp_path)

    r = run_cli("--config", config, "skip", "--partition", "1", "--offset", "5", "--yes")
    assert r.exit_code == 0, r.output
    assert "skipped 4 message(s)" in r.output
    letters = _letters(tmp_path)
    assert [d["source"]["offset"] for d in letters] == [2, 3, 4, 5]
    assert {d["stage"] for d in letters} == {"skip"}
    assert json.loads(base64.b64decode(letters[0]["value_b64"]))["postid"] == "p2"
    assert group_offsets(kafka_bootstrap, cfg.kafka.group_id)[(topic, 1)][0] == 6      # Kafka's own tool

    r = run_cli("--config", config, "skip", "--partition", "1", "--offset", "4", "--yes")
    assert r.exit_code == 0 and "nothing to skip" in r.output
    r = run_cli("--config", config, "skip", "--partition", "1", "--offset", "10", "--yes")
    assert r.exit_code == 2 and "holds offsets 0..9" in r.output


def test_skip_refuses_while_the_group_has_a_live_member(tmp_path, kafka_bootstrap, run_cli):
    topic, cfg, config = _setup(tmp_path, kafka_bootstrap)
    member = Consumer({**librdkafka_logging(), "bootstrap.servers": kafka_bootstrap, "group.id": cfg.kafka.group_id,
                       "enable.auto.commit": False, "partition.assignment.strategy": "cooperative-sticky"})
    member.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while not member.assignment() and time.monotonic() < deadline:
            member.poll(0.2)
        r = run_cli("--config", config, "skip", "--partition", "1", "--offset", "5", "--yes")
    finally:
        member.close()
    assert r.exit_code == 1, r.output
    assert "1 active member(s)" in r.output and "stop its workers first" in r.output
    assert not _letters(tmp_path)
    assert group_offsets(kafka_bootstrap, cfg.kafka.group_id)[(topic, 1)][0] == 2
