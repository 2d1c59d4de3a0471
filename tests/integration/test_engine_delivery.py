"""At-least-once delivery on the real broker: rebalances, SIGTERM, backpressure, replays."""
from __future__ import annotations

import base64
import signal
import threading
import time

import pytest

from sidepath.worker.dev.local_kafka import group_offsets
from tests.kafka_util import create_topic, end_offsets, produce
from tests.worker_util import (
    ThreadWorker,
    jsonl_results,
    sqlite_rows,
    start_worker_process,
    wait_for,
    worker_config,
    write_config_file,
)

pytestmark = pytest.mark.kafka

PAYLOAD = base64.b64encode(b"x" * 32).decode()


def _requests(n: int, tag: str = "p"):
    return [{"postid": f"{tag}{i}", "uid": "u", "seqid": 1, "data": PAYLOAD} for i in range(n)]


def _noop(**opts):
    return {"model.name": "noop", "model.options": {"frames": False, **opts}}


def _row_count(path) -> int:
    try:
        return len(sqlite_rows(path))
    except Exception:  # noqa: BLE001 - the file or table may not exist yet
        return 0


def test_three_workers_one_late_one_stopped_every_input_once(tmp_path, kafka_bootstrap):
    topic = f"six-{time.time_ns()}"
    create_topic(kafka_bootstrap, topic, 6)
    n = 900
    reqs = _requests(n)
    for p in range(6):      # every partition carries data (the sticky partitioner may leave one empty,
        produce(kafka_bootstrap, topic, reqs[p::6], partition=p)   # and nothing is ever committed there)
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **_noop(item_ms=15), **{
        "sinks.urls": [f"sqlite:///{tmp_path}/results.db"], "model.max_batch": 8,
        "engine.max_inflight_messages": 40})
    paths = []
    for i in range(3):                                # JSONL files are one writer's each: own DLQ file
        cfg.sinks.dead_letter = f"file://{tmp_path}/dead-letters-{i}.jsonl"
        paths.append(write_config_file(tmp_path / f"w{i}.toml", cfg))
    db = tmp_path / "results.db"
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    w1 = start_worker_process(paths[0], log_path=logs[0])
    w2 = start_worker_process(paths[1], log_path=logs[1])
    try:
        wait_for(lambda: _row_count(db) > 150, 120, what="first results")
        w3 = start_worker_process(paths[2], log_path=logs[2])         # joins late
        wait_for(lambda: _row_count(db) > 450, 120, what="more results")
        w1.send_signal(signal.SIGTERM)                                  # leaves mid-stream
        assert w1.wait(60) == 0
        wait_for(lambda: _row_count(db) >= n, 180, what="all results")
        ends = end_offsets(kafka_bootstrap, topic)
        seen: list = []

        def at_end() -> bool:
            seen[:] = [group_offsets(kafka_bootstrap, cfg.kafka.group_id)]
            return {p: v[0] for (_t, p), v in seen[0].items()} == ends
        try:
            wait_for(at_end, 60, interval=1, what="commits at log end")
        except TimeoutError:
            raise AssertionError(f"committed {seen} != ends {ends}\n" +
                                 "\n".join(p.read_text()[-3000:] for p in logs)) from None
    finally:
        for w in (w1, w2, locals().get("w3")):
            if w is not None and w.poll() is None:
                w.send_signal(signal.SIGTERM)
        codes = [w.wait(60) for w in (w2, locals().get("w3")) if w is not None]
    assert codes == [0, 0], (codes, [p.read_text()[-1500:] for p in logs])
    rows = sqlite_rows(db)
    keys = [(r["model"], r["postid"], r["seqid"]) for r in rows]
    assert len(keys) == len(set(keys)) == n                              # exactly one row per input
    assert all(r["status"] == "ok" for r in rows)
    assert sum("assigned" in p.read_text() for p in logs) == 3


def test_sigterm_during_a_batch_exits_0_and_restart_leaves_no_gap(tmp_path, kafka_bootstrap, topic):
    n = 60
    produce(kafka_bootstrap, topic, _requests(n))
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **_noop(batch_ms=1500), **{
        "model.max_batch": 10, "engine.shutdown_grace_s": 3.0})
    path = write_config_file(tmp_path / "w.toml", cfg)
    proc = start_worker_process(path, log_path=tmp_path / "w.log")
    wait_for(lambda: len(jsonl_results(tmp_path / "results.jsonl")) >= 10, 90, what="first batch")
    proc.send_signal(signal.SIGTERM)                  # a batch is in predict() now
    assert proc.wait(60) == 0, (tmp_path / "w.log").read_text()[-3000:]
    # it stopped at the end of the grace period, not when all the work was done (6 x 1.5 s > 3 s)
    assert "stopping with" in (tmp_path / "w.log").read_text()
    done_before = {r["postid"] for r in jsonl_results(tmp_path / "results.jsonl")}
    assert 0 < len(done_before) < n

    restart = start_worker_process(path, "--until-end", log_path=tmp_path / "w2.log")
    assert restart.wait(180) == 0, (tmp_path / "w2.log").read_text()[-3000:]
    got = {r["source"]["offset"] for r in jsonl_results(tmp_path / "results.jsonl")}
    assert got == set(range(n))                       # no gap
    assert group_offsets(kafka_bootstrap, cfg.kafka.group_id)[(topic, 0)][0] == n


def test_backpressure_caps_inflight_messages_and_pauses(tmp_path, kafka_bootstrap, topic):
    produce(kafka_bootstrap, topic, _requests(300))
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **_noop(item_ms=5), **{
        "engine.max_inflight_messages": 20, "model.max_batch": 4, "engine.pause_after_s": 0.0})
    w = ThreadWorker(cfg, until_end=True)
    peak, paused_seen = [0], [False]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            if w.engine is not None:
                peak[0] = max(peak[0], len(w.engine.inflight))
                paused_seen[0] |= w.engine.paused
            time.sleep(0.002)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    stats = w.wait(180)
    stop.set()
    assert stats["done"] == 300
    assert 0 < peak[0] <= 20 and paused_seen[0]


def test_start_at_replays_from_a_time_and_until_end_stops(tmp_path, kafka_bootstrap, topic):
    produce(kafka_bootstrap, topic, _requests(5, "old"))
    time.sleep(1.0)
    cut = int(time.time() * 1000)
    time.sleep(0.5)
    produce(kafka_bootstrap, topic, _requests(4, "new"))
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **_noop())
    stats = ThreadWorker(cfg, until_end=True, start=cut).wait()
    assert stats["done"] == 4
    assert sorted(r["postid"] for r in jsonl_results(tmp_path / "results.jsonl")) == [f"new{i}" for i in range(4)]
    # the same group again, from the beginning: everything is replayed
    stats = ThreadWorker(cfg, until_end=True, start="beginning").wait()
    assert stats["done"] == 9
