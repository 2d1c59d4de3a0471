"""A broker quota (consumer_byte_rate, set with Kafka's own kafka-configs tool on the worker's
stable client.id) throttles a `sidepath run` worker on a real broker while a real Prometheus
scrapes it with the chart's alert rules:

- every message gets its one result and the worker stays ready;
- no alert of charts/sidepath/files/alerts.yaml is pending or firing meanwhile. The test copy
  divides every duration of the rules by 30 (the 15-minute stall window is 30 s, still more than
  twice the longest a quota holds a worker back: one 11-second quota window) and the throttled
  run outlasts that window in Prometheus, so a rule that misfired on a throttled worker would show;
- a control rule, the chart's stall rule with a 3-second window, does go pending: the quota
  holds the worker back long enough that a naive rule would misfire;
- Prometheus shows sidepath_broker_throttled at 1 and sidepath_broker_throttle_seconds above 0.

Waits poll generously; nothing asserts how long anything took.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
import yaml
from confluent_kafka import Producer

from sidepath.core.logs import librdkafka_logging
from sidepath.worker.dev.local_kafka import free_ports, kafka_tool
from sidepath.worker.kafka_config import client_id
from tests.kafka_util import create_topic
from tests.prometheus_util import ALERTS, ROOT, Prometheus, write_rules
from tests.worker_util import jsonl_results, start_worker_process, wait_for, worker_config, write_config_file

pytestmark = pytest.mark.kafka

PAYLOAD = {"uid": "u", "seqid": 1, "data": "eA=="}
DIVISOR = 30             # the test copy of the rules: every duration of the chart divided by this
STALL_WINDOW_S = 15 * 60 // DIVISOR     # SidepathGroupStalled's 15-minute window: 30 s here
STUCK_AFTER_S = 5        # the stuck-poll window: 120 s / 30, rounded up, as scrapes and evaluations are 1 s apart
NAIVE_STALL_S = 3        # the control's stall window: shorter than the time a quota holds the worker back
RELEASE = "quota"


def _quota(bootstrap: str, client: str, *change: str) -> None:
    kafka_tool("configs", "--bootstrap-server", bootstrap, "--alter", *change, "--entity-type", "clients",
               "--entity-name", client)


def _naive_stall_rule() -> dict[str, str]:
    """The chart's SidepathGroupStalled with a window of NAIVE_STALL_S instead of 15 minutes."""
    doc = yaml.safe_load(ALERTS.read_text())
    stalled = next(r for g in doc["groups"] for r in g["rules"] if r.get("alert") == "SidepathGroupStalled")
    assert "offset 15m" in stalled["expr"], "the stall window moved: update this test"
    return {"alert": "TestNaiveStall", "expr": stalled["expr"].replace("offset 15m", f"offset {NAIVE_STALL_S}s"),
            "for": "1s"}


def _ready(port: int) -> bool | None:
    """The worker's readiness answer; None while its HTTP port does not answer yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/ready", timeout=5) as r:
            return bool(r.status == 200)
    except urllib.error.HTTPError:
        return False
    except OSError:
        return None


def test_worker_throttled_by_a_broker_quota_keeps_working_and_no_alert_fires(tmp_path, kafka_bootstrap):
    topic = f"quota-{time.time_ns()}"
    create_topic(kafka_bootstrap, topic, 2)
    n = 800
    # small record batches: a fetch answer holds whole batches, and one larger than the quota allows
    # would be refused (an empty answer plus throttle time) again and again
    producer = Producer({**librdkafka_logging(), "bootstrap.servers": kafka_bootstrap,
                         "batch.size": 16384, "linger.ms": 1})
    for i in range(n):
        producer.produce(topic, json.dumps({"postid": f"q{i}", **PAYLOAD, "pad": "x" * 1000}).encode())
    assert producer.flush(30) == 0
    port = free_ports(1)[0]
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{
        "kafka.client_id": f"sidepath-quota-{uuid.uuid4().hex[:8]}", "kafka.statistics_interval_ms": 1000,
        # small fetches, so that the throttled fetches interleave with the work
        "kafka.consumer": {"fetch.max.bytes": "65536", "max.partition.fetch.bytes": "32768",
                           "message.max.bytes": "32768"},
        # a broker holds a throttled client back at most one quota window (11 s by default)
        "metrics.stall_after_s": 20.0, "metrics.lag_interval_s": 1.0, "model.options": {"frames": False},
        "metrics.port": port, "metrics.host": "127.0.0.1"})
    client = client_id(cfg)
    _quota(kafka_bootstrap, client, "--add-config", "consumer_byte_rate=20000")
    rules = write_rules(tmp_path / "rules.yaml", stuck_after_s=STUCK_AFTER_S, time_divisor=DIVISOR,
                        extra=[_naive_stall_rule()])
    chart_alerts = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    copied = {r["alert"]: r for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"]}
    assert f"offset {STALL_WINDOW_S}s" in copied["SidepathGroupStalled"]["expr"], "the stall window was not scaled"
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = start_worker_process(write_config_file(tmp_path / "sidepath.toml", cfg), log_path=tmp_path / "worker.log",
                                env=env)
    prom = None
    out = tmp_path / "results.jsonl"
    misfires: dict[str, str] = {}       # "alert state" -> the first series it was seen on
    control: set[str] = set()
    throttled_in_prometheus = was_ready = covered = False
    not_ready = 0
    try:
        # the metrics port answers before the consumer starts; a first scrape that finds it
        # closed would be a (true) absent/down alert, not what this test is about
        wait_for(lambda: proc.poll() is None and _ready(port) is not None, 120, interval=0.2,
                 what="the worker's metrics port")
        prom = Prometheus(tmp_path, {RELEASE: port}, rules)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            for a in prom.all_alerts():
                name = a["labels"]["alertname"]
                if name in chart_alerts:
                    misfires.setdefault(f"{name} {a['state']}", str(a["labels"]))
                else:
                    control.add(a["state"])
            ready = _ready(port)
            was_ready = was_ready or bool(ready)
            not_ready += was_ready and ready is False          # once ready, it must stay so
            throttled_in_prometheus = throttled_in_prometheus or bool(prom.query(
                f'sidepath_broker_throttled{{app_kubernetes_io_instance="{RELEASE}"}} == 1'))
            done = len(jsonl_results(out))
            # the stall rule compared offsets a whole window apart while messages were still unfinished
            covered = covered or (done < n and bool(prom.query(
                f'sidepath_committed_offset{{app_kubernetes_io_instance="{RELEASE}"}} offset {STALL_WINDOW_S}s')))
            if done >= n and throttled_in_prometheus:
                break
            time.sleep(0.5)
        # each statistics interval's throttle time, as scraped over the whole run
        peak = prom.query(f'max_over_time(sidepath_broker_throttle_seconds{{stat="max", '
                          f'app_kubernetes_io_instance="{RELEASE}"}}[10m])')
        stalls = prom.query(f'sidepath_partition_stalls_total{{app_kubernetes_io_instance="{RELEASE}"}}')
        unhealthy = [(r["name"], r.get("lastError")) for r in prom.rules() if r["health"] != "ok"]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if prom is not None:
            prom.stop()
        _quota(kafka_bootstrap, client, "--delete-config", "consumer_byte_rate")
    ids = [r["postid"] for r in jsonl_results(out)]
    assert sorted(ids) == sorted(f"q{i}" for i in range(n))          # one result each
    assert not misfires, misfires
    assert throttled_in_prometheus, "prometheus never saw sidepath_broker_throttled at 1"
    assert [float(s["value"][1]) > 0 for s in peak] == [True], f"no throttle time in prometheus: {peak}"
    assert not unhealthy, unhealthy                                   # every rule evaluated
    assert covered, f"the throttled run ended before the {STALL_WINDOW_S} s stall window: produce more"
    assert control, "the control stall rule never went pending: the quota did not hold the worker back"
    assert was_ready and not not_ready, f"ready once: {was_ready}; not ready {not_ready} times after"
    assert [float(s["value"][1]) for s in stalls] == [0.0], stalls
