"""What an operator sees, end to end: a real Prometheus scrapes real `sidepath run` processes.

Debian's ``prometheus`` server is started on a free loopback port with a generated config and
a test copy of charts/sidepath/files/alerts.yaml (same expressions, short ``for:`` and a
8-second stuck-poll window), scraping three worker processes on the real broker:

- release ``rel-a`` (a fresh group on a 6-partition topic with traffic on 2 partitions): its
  per-partition and total lag equal Kafka's own kafka-consumer-groups tool and the KEDA rule,
  before and after it catches up, and the replica query of docs/operations.md gives
  ceil(total lag / lagThreshold);
- release ``rel-b``: stopped, and the absent alert fires for it and no other release;
- release ``rel-c``: a model that loads for longer than the stuck-poll window (no stuck-poll
  alert, not even pending), then a poll loop frozen by the model (the alert fires).

Waits poll generously; nothing asserts how long anything took.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from sidepath.core.logs import librdkafka_logging
from sidepath.worker.dev.local_kafka import free_ports, group_offsets, kafka_tool
from sidepath.worker.ops.lag_figures import partition_lag
from tests.kafka_util import create_topic, produce
from tests.prometheus_util import Prometheus, write_rules
from tests.worker_util import start_worker_process, wait_for, worker_config, write_config_file

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
STUCK_AFTER_S = 8               # the test copy's stuck-poll window (120 s in the chart); scrapes are 1 s apart
LAG_THRESHOLD = 3
PAYLOAD = {"uid": "u", "seqid": 1, "data": "eA=="}


def _by_partition(result: list[dict[str, Any]]) -> dict[int, float]:
    return {int(s["metric"]["partition"]): float(s["value"][1]) for s in result}


def _value(result: list[dict[str, Any]]) -> float | None:
    return float(result[0]["value"][1]) if len(result) == 1 else None


# ---- Kafka's own view ---------------------------------------------------------------------
def _log_starts(bootstrap: str, topic: str) -> dict[int, int]:
    """Earliest offsets from Kafka's GetOffsetShell (--time -2)."""
    out = kafka_tool("offsets", "--bootstrap-server", bootstrap, "--topic", topic, "--time", "-2").stdout
    return {int(p): int(o) for t, p, o in (line.rsplit(":", 2) for line in out.split()) if t == topic}


def _expected_lag(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Per-partition lag from kafka-consumer-groups; where it prints '-' (never committed), the
    documented KEDA rule (earliest: log end - log start) on its log end and GetOffsetShell's start."""
    tool = {p: v for (t, p), v in group_offsets(bootstrap, group).items() if t == topic}
    starts = _log_starts(bootstrap, topic)
    out = {}
    for p, (committed, end, lag) in tool.items():
        assert end is not None
        out[p] = lag if lag is not None else end - starts[p]
        assert out[p] == partition_lag(committed, starts[p], end, "earliest")
    return out


def _replica_query(group: str, topic: str) -> str:
    """The replica query as docs/operations.md prints it, with this test's values."""
    text = OPERATIONS.read_text()
    m = re.search(r"<!-- replicas-query -->\s*```promql\n(.*?)```", text, re.S)
    assert m, "docs/operations.md lost its replicas query"
    query = "\n".join(line for line in m.group(1).splitlines() if not line.startswith("#"))
    for token, value in (("$topic", topic), ("$group", group), ("$lagThreshold", str(LAG_THRESHOLD)),
                         ("$partitions", "6")):
        assert token in query, token
        query = query.replace(token, value)
    return query


# ---- the test -----------------------------------------------------------------------------
def _worker(tmp_path: Path, name: str, bootstrap: str, topic: str, port: int, **options: str) -> subprocess.Popen:
    home = tmp_path / name
    home.mkdir()
    cfg = worker_config(home, bootstrap, topic, **{
        "kafka.group_id": f"g-{name}-{topic}", "model.name": "tests.gate_model:GateModel",
        "model.options": options, "metrics.port": port, "metrics.host": "127.0.0.1",
        "metrics.lag_interval_s": 0.5, "engine.commit_interval_s": 0.3})
    config = write_config_file(home / "sidepath.toml", cfg)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return start_worker_process(config, log_path=home / "worker.log", env=env)


def test_prometheus_sees_true_lag_quiet_startups_frozen_loops_and_absent_releases(tmp_path, kafka_bootstrap):
    topic, topic_c = f"e2e-{time.time_ns()}", f"e2e-c-{time.time_ns()}"
    create_topic(kafka_bootstrap, topic, 6)
    create_topic(kafka_bootstrap, topic_c, 1)
    for p, n in ((1, 7), (4, 9)):                       # traffic on 2 of 6 partitions
        produce(kafka_bootstrap, topic, [{"postid": f"p{p}-{i}", **PAYLOAD} for i in range(n)], partition=p)
    # retention-like deletion on partition 4: its log starts at 3, so the head no longer counts
    admin = AdminClient({**librdkafka_logging(), "bootstrap.servers": kafka_bootstrap})
    for fut in admin.delete_records([TopicPartition(topic, 4, 3)]).values():
        fut.result(30)

    ports = dict(zip(("rel-a", "rel-b", "rel-c"), free_ports(3)))
    gate_a, load_c, freeze_c = tmp_path / "gate-a", tmp_path / "load-c", tmp_path / "freeze-c"
    for f in (gate_a, load_c, freeze_c):
        f.touch()
    rules = write_rules(tmp_path / "rules.yaml", stuck_after_s=STUCK_AFTER_S, for_="2s")
    prom = Prometheus(tmp_path, ports, rules)
    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["rel-a"] = _worker(tmp_path, "rel-a", kafka_bootstrap, topic, ports["rel-a"], gate=str(gate_a))
        procs["rel-b"] = _worker(tmp_path, "rel-b", kafka_bootstrap, topic, ports["rel-b"])
        procs["rel-c"] = _worker(tmp_path, "rel-c", kafka_bootstrap, topic_c, ports["rel-c"],
                                 load_gate=str(load_c), freeze=str(freeze_c))
        group_a = f"g-rel-a-{topic}"
        sel = f'app_kubernetes_io_instance="rel-a", topic="{topic}", group="{group_a}"'

        # -- a model loading for longer than the stuck-poll window: no stuck-poll alert at all --
        starting_c = 'sidepath_starting{app_kubernetes_io_instance="rel-c"}'
        wait_for(lambda: _value(prom.query(f"{starting_c} == 1")) == 1, 120, interval=0.5,
                 what="rel-c scraped while its model loads")
        first = float(prom.query(f"timestamp({starting_c})")[0]["value"][1])
        seen_loading = 0.0

        def loaded_long_enough() -> bool:
            nonlocal seen_loading
            assert "rel-c" not in prom.alerts("SidepathPollLoopStuck"), "stuck-poll alert while the model loads"
            latest = prom.query(f"timestamp({starting_c} == 1)")
            if not latest:                    # a missed scrape on a busy machine; the load gate still holds
                return False
            seen_loading = float(latest[0]["value"][1]) - first
            return seen_loading > 2 * STUCK_AFTER_S + 2      # two windows and the rule's `for`

        wait_for(loaded_long_enough, 180, interval=0.5, what="rel-c to load for two stuck-poll windows")
        assert prom.query('sidepath_last_poll_timestamp_seconds{app_kubernetes_io_instance="rel-c"} == 0')
        load_c.unlink()

        # -- lag before rel-a catches up (its model is held: nothing commits) --
        def lag_series_complete() -> bool:
            parts = _by_partition(prom.query(f"sidepath_consumer_lag_messages{{{sel}}}"))
            return len(parts) == 6 and _value(prom.query(f"sidepath_consumer_group_lag_messages{{{sel}}}")) \
                is not None

        wait_for(lag_series_complete, 120, interval=0.5, what="rel-a's lag series in prometheus")
        expected: dict[int, int] = {}

        def tool_lists_all() -> bool:                          # the tool lists every assigned partition
            expected.clear()
            expected.update(_expected_lag(kafka_bootstrap, group_a, topic))
            return set(expected) == set(range(6))

        wait_for(tool_lists_all, 120, interval=1, what="kafka-consumer-groups to list rel-a's 6 partitions")

        def prometheus_agrees(exp: dict[int, int]) -> bool:
            parts = _by_partition(prom.query(f"sidepath_consumer_lag_messages{{{sel}}}"))
            assert not any(math.isnan(v) for v in parts.values()), parts
            total = _value(prom.query(f"sidepath_consumer_group_lag_messages{{{sel}}}"))
            return parts == {p: float(v) for p, v in exp.items()} and total == sum(exp.values())

        wait_for(lambda: prometheus_agrees(expected), 60, interval=0.5, what=f"prometheus to show lag {expected}")
        assert expected[1] == 7 and expected[4] == 6 and sum(expected.values()) == 13    # the data set up above
        # `sidepath lag` says the same numbers (one shared rule)
        cli = subprocess.run([sys.executable, "-m", "sidepath.worker.cli.main", "--config",
                              str(tmp_path / "rel-a" / "sidepath.toml"), "lag", "--json"],
                             capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stderr
        assert {row["partition"]: row["lag"] for row in json.loads(cli.stdout)} == expected
        replicas = _value(prom.query(_replica_query(group_a, topic)))
        assert replicas == math.ceil(sum(expected.values()) / LAG_THRESHOLD)
        assert _value(prom.query(f"sum(sidepath_consumer_lag_messages{{{sel}}})")) == sum(expected.values())

        # -- after catching up --
        gate_a.unlink()

        def caught_up() -> bool:
            exp = _expected_lag(kafka_bootstrap, group_a, topic)
            return sum(exp.values()) == 0 and prometheus_agrees(exp)

        wait_for(caught_up, 120, interval=1, what="rel-a to catch up in kafka and in prometheus")
        tool = {p: v for (t, p), v in group_offsets(kafka_bootstrap, group_a).items() if t == topic}
        assert tool[1][0] == 7 and tool[4][0] == 9                    # committed where the logs end
        assert _value(prom.query(_replica_query(group_a, topic))) == 0

        # -- rel-c: loaded; its poll loop freezes on the first message; the alert fires for it only --
        wait_for(lambda: prom.query(
            f"{starting_c} == 0 and on (pod) "
            'sidepath_last_poll_timestamp_seconds{app_kubernetes_io_instance="rel-c"} > 0'), 120, interval=0.5,
            what="rel-c polling")
        produce(kafka_bootstrap, topic_c, [{"postid": "freeze", **PAYLOAD}])
        wait_for(lambda: prom.alerts("SidepathPollLoopStuck").get("rel-c") == "firing", 120, interval=0.5,
                 what="the stuck-poll alert for rel-c's frozen loop")
        assert set(prom.alerts("SidepathPollLoopStuck")) == {"rel-c"}

        # -- rel-b stopped: absent fires for rel-b only --
        wait_for(lambda: not prom.alerts("SidepathWorkerAbsent"), 120, interval=0.5,
                 what="every release up (no absent alert)")
        procs["rel-b"].send_signal(signal.SIGTERM)
        assert procs["rel-b"].wait(60) == 0
        wait_for(lambda: prom.alerts("SidepathWorkerAbsent").get("rel-b") == "firing", 120, interval=0.5,
                 what="the absent alert for rel-b")
        assert set(prom.alerts("SidepathWorkerAbsent")) == {"rel-b"}
    finally:
        freeze_c.unlink(missing_ok=True)
        for f in (gate_a, load_c):
            f.unlink(missing_ok=True)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        prom.stop()
