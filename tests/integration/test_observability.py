"""Metrics and health endpoints of a live worker, checked against Kafka's own tool and promtool."""
from __future__ import annotations

import base64
import math
import shutil
import subprocess
import time
import urllib.request

import pytest

from sidepath.worker.dev.local_kafka import free_ports, group_offsets
from tests.kafka_util import create_topic, produce
from tests.worker_util import ThreadWorker, jsonl_results, wait_for, worker_config

pytestmark = pytest.mark.kafka

PAYLOAD = base64.b64encode(b"abc").decode()


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except urllib.error.URLError:            # not listening yet
        return 0, ""


def _scrape(port: int, name: str) -> dict[int, float]:
    """{partition: value} of a per-partition gauge from a live /metrics scrape."""
    out = {}
    for line in _get(port, "/metrics")[1].splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) + 1:].rsplit("} ", 1)
            part = int(labels.split('partition="')[1].split('"')[0])
            out[part] = float(value)
    return out


def _reqs(n, tag):
    return [{"postid": f"{tag}{i}", "uid": "u", "seqid": 1, "data": PAYLOAD} for i in range(n)]


def test_lag_and_committed_metrics_equal_kafkas_own_tool(tmp_path, kafka_bootstrap):
    topic = f"obs-{time.time_ns()}"
    create_topic(kafka_bootstrap, topic, 3)
    gate = tmp_path / "gate"
    port = free_ports(1)[0]
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{
        "model.name": "tests.gate_model:GateModel", "model.options": {"gate": str(gate)},
        "metrics.port": port, "metrics.host": "127.0.0.1", "metrics.lag_interval_s": 0.3,
        "engine.commit_interval_s": 0.2})
    for p in range(3):                                  # every partition gets work
        produce(kafka_bootstrap, topic, _reqs(10, f"a{p}-"), partition=p)
    w = ThreadWorker(cfg)
    try:
        def settled() -> bool:
            tool = group_offsets(kafka_bootstrap, cfg.kafka.group_id)
            return sum(v[0] or 0 for v in tool.values()) == 30
        wait_for(settled, 60, what="first 30 committed")
        gate.touch()                                    # the model hangs: commits freeze ...
        for p in range(3):                              # ... while a backlog builds up
            produce(kafka_bootstrap, topic, _reqs(15, f"b{p}-"), partition=p)
        for phase in ("backlog", "after"):
            time.sleep(1.5)                             # a few lag refreshes
            tool = group_offsets(kafka_bootstrap, cfg.kafka.group_id)
            lag, committed = _scrape(port, "sidepath_consumer_lag_messages"), \
                _scrape(port, "sidepath_committed_offset")
            assert {p: v[0] for (_t, p), v in tool.items()} == {p: int(v) for p, v in committed.items()}, phase
            assert {p: v[2] for (_t, p), v in tool.items()} == {p: int(v) for p, v in lag.items()}, phase
            if phase == "backlog":
                assert sum(lag.values()) > 0
                gate.unlink()                           # let it drain
                wait_for(lambda: sum(v[2] or 0 for v in
                                     group_offsets(kafka_bootstrap, cfg.kafka.group_id).values()) == 0,
                         60, what="lag 0")
        assert sum(_scrape(port, "sidepath_consumer_lag_messages").values()) == 0
    finally:
        gate.unlink(missing_ok=True)
        w.stop()


def test_ping_reports_a_hung_model_and_ready_needs_partitions(tmp_path, kafka_bootstrap, topic):
    gate = tmp_path / "gate"
    gate.touch()
    port = free_ports(1)[0]
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{
        "model.name": "tests.gate_model:GateModel", "model.options": {"gate": str(gate)},
        "metrics.port": port, "metrics.host": "127.0.0.1", "metrics.ping_timeout_s": 2.0})
    w = ThreadWorker(cfg)
    try:
        wait_for(lambda: _get(port, "/api/ready")[0] == 200, 60, what="ready")
        assert _get(port, "/api/ping")[0] == 200
        produce(kafka_bootstrap, topic, _reqs(1, "h"))
        wait_for(lambda: _get(port, "/api/ping")[0] == 503, 20, what="ping to fail")
        assert "stuck" in _get(port, "/api/ping")[1]
        gate.unlink()
        wait_for(lambda: _get(port, "/api/ping")[0] == 200, 20, what="ping to recover")
    finally:
        gate.unlink(missing_ok=True)
        w.stop()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_check_metrics_is_clean_on_a_live_scrape(tmp_path, kafka_bootstrap, topic):
    port = free_ports(1)[0]
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{
        "model.name": "noop", "model.options": {"frames": False}, "metrics.port": port,
        "metrics.host": "127.0.0.1", "metrics.lag_interval_s": 0.3})
    produce(kafka_bootstrap, topic, _reqs(5, "m"))
    w = ThreadWorker(cfg)
    try:
        labels = {"topic": topic, "partition": "0", "group": cfg.kafka.group_id}

        def lag_known() -> bool:
            v = w.metric("sidepath_consumer_lag_messages", labels)
            return v is not None and not math.isnan(v)
        wait_for(lag_known, 60, what="lag metric")
        body = _get(port, "/metrics")[1]
    finally:
        w.stop()
    r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("sidepath_consumer_lag_messages", "sidepath_messages_total", "sidepath_stage_duration_seconds",
                 "sidepath_dead_letters_total", "sidepath_batch_size_units", "sidepath_inflight_messages"):
        assert name in body


def test_stalled_partition_is_logged_counted_and_not_ready(tmp_path, kafka_bootstrap, topic, caplog):
    gate = tmp_path / "gate"
    port = free_ports(1)[0]
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{
        "model.name": "tests.gate_model:GateModel", "model.options": {"gate": str(gate)},
        "metrics.port": port, "metrics.host": "127.0.0.1", "metrics.lag_interval_s": 0.2,
        "metrics.stall_after_s": 1.0, "metrics.ping_timeout_s": 600.0})
    produce(kafka_bootstrap, topic, _reqs(2, "s"))
    w = ThreadWorker(cfg)
    try:
        wait_for(lambda: _get(port, "/api/ready")[0] == 200, 60, what="ready after the first messages")
        wait_for(lambda: len(jsonl_results(tmp_path / "results.jsonl")) == 2, 60, what="first results")
        gate.touch()                                   # the model hangs; lag builds up, commits freeze
        produce(kafka_bootstrap, topic, _reqs(3, "t"))
        wait_for(lambda: _get(port, "/api/ready")[0] == 503, 30, what="not ready: stalled")
        assert "stalled" in _get(port, "/api/ready")[1]
        assert (w.metric("sidepath_partition_stalls_total") or 0) >= 1
        assert any("stalled" in r.getMessage() for r in caplog.records)
        gate.unlink()                                  # progress again: ready again
        wait_for(lambda: _get(port, "/api/ready")[0] == 200, 30, what="ready again")
    finally:
        gate.unlink(missing_ok=True)
        w.stop()
