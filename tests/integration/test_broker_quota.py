"""A broker quota (consumer_byte_rate, set with Kafka's own kafka-configs tool on the worker's
stable client.id) throttles a worker on a real broker: it keeps working, every message gets its one
result, the stall check stays quiet, and sidepath_broker_throttle_seconds shows the throttling."""
from __future__ import annotations

import json
import time
import uuid

import pytest
from confluent_kafka import Producer

from sidepath.core.logs import librdkafka_logging
from sidepath.worker.dev.local_kafka import kafka_tool
from sidepath.worker.kafka_config import client_id
from tests.kafka_util import create_topic
from tests.worker_util import ThreadWorker, jsonl_results, worker_config

pytestmark = pytest.mark.kafka

PAYLOAD = {"uid": "u", "seqid": 1, "data": "eA=="}


def _quota(bootstrap: str, client: str, *change: str) -> None:
    kafka_tool("configs", "--bootstrap-server", bootstrap, "--alter", *change, "--entity-type", "clients",
               "--entity-name", client)


def test_worker_throttled_by_a_broker_quota_keeps_working(tmp_path, kafka_bootstrap):
    topic = f"quota-{time.time_ns()}"
    create_topic(kafka_bootstrap, topic, 2)
    n = 500
    # small record batches: a fetch answer holds whole batches, and one larger than the quota allows
    # would be refused (an empty answer plus throttle time) again and again
    producer = Producer({**librdkafka_logging(), "bootstrap.servers": kafka_bootstrap,
                         "batch.size": 16384, "linger.ms": 1})
    for i in range(n):
        producer.produce(topic, json.dumps({"postid": f"q{i}", **PAYLOAD, "pad": "x" * 1000}).encode())
    assert producer.flush(30) == 0
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{
        "kafka.client_id": f"sidepath-quota-{uuid.uuid4().hex[:8]}", "kafka.statistics_interval_ms": 500,
        # small fetches, so that the throttled fetches interleave with the work
        "kafka.consumer": {"fetch.max.bytes": "65536", "max.partition.fetch.bytes": "32768",
                           "message.max.bytes": "32768"},
        # a broker holds a throttled client back at most one quota window (11 s by default)
        "metrics.stall_after_s": 20.0, "metrics.lag_interval_s": 1.0, "model.options": {"frames": False}})
    client = client_id(cfg)
    _quota(kafka_bootstrap, client, "--add-config", "consumer_byte_rate=20000")
    out = tmp_path / "results.jsonl"
    w = ThreadWorker(cfg)
    peak_throttle, not_ready = 0.0, []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and w.thread.is_alive():
            peak_throttle = max(peak_throttle, w.metric("sidepath_broker_throttle_seconds", {"stat": "max"}) or 0)
            if w.engine is not None and w.engine.tracker.partitions():
                ok, why = w.engine.health.ready()
                if not ok:
                    not_ready.append(why)
            if len(jsonl_results(out)) >= n and peak_throttle > 0:
                break
            time.sleep(0.2)
        stalls = w.metric("sidepath_partition_stalls_total")
    finally:
        w.stop()
        _quota(kafka_bootstrap, client, "--delete-config", "consumer_byte_rate")
    ids = [r["postid"] for r in jsonl_results(out)]
    assert sorted(ids) == sorted(f"q{i}" for i in range(n))          # one result each
    assert peak_throttle > 0, "the throttle metric never showed the quota"
    assert stalls == 0 and not not_ready, not_ready
