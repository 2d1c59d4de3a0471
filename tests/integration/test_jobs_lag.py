"""`sidepath lag` against Kafka's own kafka-consumer-groups tool, on the real broker."""
from __future__ import annotations

import json
import re
import time

import pytest
from confluent_kafka import Consumer

from sidepath.core.logs import librdkafka_logging
from sidepath.worker.dev.local_kafka import group_offsets
from tests.kafka_util import create_topic, end_offsets, produce
from tests.worker_util import ThreadWorker, wait_for, worker_config, write_config_file

pytestmark = pytest.mark.kafka

PAYLOAD = {"uid": "u", "seqid": 1, "data": "eA=="}


def _ours(run_cli, config: str, group: str, topic: str) -> tuple[dict[int, dict], dict[int, list[str]]]:
    r = run_cli("--config", config, "lag", "--group", group, "--topic", topic, "--json")
    assert r.exit_code == 0, r.output
    as_json = {row["partition"]: row for row in json.loads(r.stdout)}
    r = run_cli("--config", config, "lag", "--group", group, "--topic", topic)
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert lines[0].split()[:6] == ["GROUP", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"]
    table = {int(f[2]): f for f in (line.split() for line in lines[1:-1])}
    return as_json, table


def test_lag_agrees_with_kafkas_tool_including_never_committed_partitions(tmp_path, kafka_bootstrap, run_cli):
    topic = f"lag-{time.time_ns()}"
    create_topic(kafka_bootstrap, topic, 3)
    for p, n in ((0, 10), (1, 6)):                       # partition 2 stays empty while the worker runs
        produce(kafka_bootstrap, topic, [{"postid": f"a{p}-{i}", **PAYLOAD} for i in range(n)], partition=p)
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{"model.options": {"frames": False}})
    group = cfg.kafka.group_id
    config = str(write_config_file(tmp_path / "sidepath.toml", cfg))
    t0 = time.time()
    assert ThreadWorker(cfg, until_end=True).wait()["done"] == 16
    produce(kafka_bootstrap, topic, [{"postid": f"b{i}", **PAYLOAD} for i in range(4)], partition=0)
    produce(kafka_bootstrap, topic, [{"postid": f"c{i}", **PAYLOAD} for i in range(5)], partition=2)

    ours, table = _ours(run_cli, config, group, topic)
    tool = {p: v for (t, p), v in group_offsets(kafka_bootstrap, group).items() if t == topic}
    # never committed: KEDA's earliest rule (end - log start), where Kafka's tool prints "-"
    assert {p: (r["committed"], r["end"], r["lag"]) for p, r in ours.items()} == \
        {0: (10, 14, 4), 1: (6, 6, 0), 2: (None, 5, 5)}
    for p, (committed, end, lag) in tool.items():       # the group has no members: it lists what it committed
        assert (ours[p]["committed"], ours[p]["end"], ours[p]["lag"]) == (committed, end, lag)
    assert set(tool) == {0, 1}
    assert end_offsets(kafka_bootstrap, topic) == {p: r["end"] for p, r in ours.items()}
    ages = {p: r["last_commit_age_s"] for p, r in ours.items()}
    assert ages[2] is None and all(0 <= ages[p] <= time.time() - t0 for p in (0, 1))
    assert table[0][3:6] == ["10", "14", "4"] and table[2][3:7] == ["-", "5", "5", "-"]
    assert re.fullmatch(r"\d+ s ago|\d+ min ago", " ".join(table[1][6:]))

    # a member that holds every partition and never commits: the tool lists partition 2 too, with "-"
    member = Consumer({**librdkafka_logging(), "bootstrap.servers": kafka_bootstrap, "group.id": group,
                       "enable.auto.commit": False, "partition.assignment.strategy": "cooperative-sticky"})
    member.subscribe([topic])
    try:
        def assigned() -> bool:
            member.poll(0.2)
            return len(member.assignment()) == 3

        wait_for(assigned, 60, interval=0, what="assignment")
        tool = {}

        def listed() -> bool:
            tool.update({p: v for (t, p), v in group_offsets(kafka_bootstrap, group).items() if t == topic})
            return set(tool) == {0, 1, 2}

        wait_for(listed, 60, interval=1, what="the tool to list all partitions")
        ours, _table = _ours(run_cli, config, group, topic)
        assert {p: (r["committed"], r["end"], r["lag"]) for p, r in ours.items() if p != 2} == \
            {p: v for p, v in tool.items() if p != 2}
        assert tool[2] == (None, 5, None) and (ours[2]["committed"], ours[2]["lag"]) == (None, 5)
    finally:
        member.close()


def test_lag_of_a_missing_topic_is_one_line_and_exit_1(tmp_path, kafka_bootstrap, run_cli):
    cfg = worker_config(tmp_path, kafka_bootstrap, "unused")
    config = str(write_config_file(tmp_path / "sidepath.toml", cfg))
    for _ in range(2):                     # asking must not create it (the broker auto-creates topics)
        r = run_cli("--config", config, "lag", "--topic", "no-such-topic")
        assert r.exit_code == 1
        assert r.stderr.strip().splitlines() == [f"error: topic 'no-such-topic' not found at {kafka_bootstrap}; "
                                                 "check --topic or kafka.topic"]
