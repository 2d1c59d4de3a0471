"""Run windows (engine.run_window) with an injected clock: outside the window nothing is consumed and
the worker stays healthy in its group; when the clock enters the window, the backlog drains."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.kafka_util import create_topic, produce
from tests.worker_util import ThreadWorker, jsonl_results, wait_for, worker_config

pytestmark = pytest.mark.kafka

WINDOW = "22:00-06:00 Asia/Shanghai"
PAYLOAD = {"uid": "u", "seqid": 1, "data": "eA=="}


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def shanghai(hhmm: str) -> float:
    return datetime.fromisoformat(f"2026-12-07T{hhmm}").replace(tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def test_worker_waits_outside_the_window_and_drains_when_it_opens(tmp_path, kafka_bootstrap):
    topic = f"window-{time.time_ns()}"
    create_topic(kafka_bootstrap, topic, 2)
    produce(kafka_bootstrap, topic, [{"postid": f"p{i}", **PAYLOAD} for i in range(60)])
    clock = Clock(shanghai("06:00:30"))                 # the window closed half a minute ago
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{"engine.run_window": [WINDOW],
                                                             "model.options": {"frames": False}})
    w = ThreadWorker(cfg, wall_clock=clock)
    out = tmp_path / "results.jsonl"
    try:
        wait_for(lambda: w.engine is not None and w.engine.tracker.partitions(), 60, what="assignment")
        time.sleep(3)
        assert jsonl_results(out) == [] and w.engine.stats.taken == 0
        assert w.metric("sidepath_outside_run_window") == 1
        applied = w.engine.health.reports_applied       # a lag refresh: waiting on purpose is not a stall
        wait_for(lambda: w.engine.health.reports_applied > applied, 30, what="a lag refresh")
        assert w.engine.health.ready() == (True, "ready")
        assert w.engine.health.ping()[0]
        clock.t = shanghai("22:00:00")                  # the window opens
        wait_for(lambda: len(jsonl_results(out)) >= 60, 60, what="the backlog drained")
        assert w.metric("sidepath_outside_run_window") == 0
    finally:
        w.stop()
    assert sorted(r["postid"] for r in jsonl_results(out)) == sorted(f"p{i}" for i in range(60))


def test_backfill_waits_outside_the_window(tmp_path):
    from sidepath.worker.jobs.backfill import run_backfill
    from sidepath.worker.jobs.backfill_sources import rows_from_file

    src = tmp_path / "items.jsonl"
    src.write_text("".join(json.dumps({"postid": f"b{i}", **PAYLOAD}) + "\n" for i in range(20)))
    cfg = worker_config(tmp_path, "127.0.0.1:9", "unused", **{"engine.run_window": ["09:00-17:00 Asia/Shanghai"],
                                                                "model.options": {"frames": False}})
    clock = Clock(shanghai("17:00:01"))
    box: dict = {}
    t = threading.Thread(target=lambda: box.setdefault("s", run_backfill(
        cfg, rows_from_file(src), name="items", progress=False, wall_clock=clock)), daemon=True)
    t.start()
    time.sleep(2)
    assert t.is_alive() and jsonl_results(tmp_path / "results.jsonl") == []
    clock.t = shanghai("09:00:00")
    t.join(60)
    assert not t.is_alive() and box["s"].done == 20
