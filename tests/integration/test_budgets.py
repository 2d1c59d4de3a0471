"""Consumption budgets on a real broker: engine.max_messages_per_s and engine.max_bytes_per_s hold
over 30 s with a backlog ten times larger, and the worker holds only a budget's worth in memory."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.kafka_util import create_topic, produce
from tests.worker_util import ThreadWorker, jsonl_results, wait_for, worker_config

pytestmark = pytest.mark.kafka

WINDOW_S = 30.0


def _values(n: int, size: int) -> list[bytes]:
    """n requests of exactly ``size`` bytes each (a padding field fills them up)."""
    out = []
    for i in range(n):
        doc = {"postid": f"p{i:08d}", "uid": "u", "seqid": 1, "data": "eA==", "pad": ""}
        doc["pad"] = "x" * (size - len(json.dumps(doc)))
        v = json.dumps(doc).encode()
        assert len(v) == size
        out.append(v)
    return out


def _start(tmp_path: Path, bootstrap: str, name: str, n: int, size: int, **budget: float) -> ThreadWorker:
    topic = f"{name}-{time.time_ns()}"
    create_topic(bootstrap, topic, 2)
    produce(bootstrap, topic, _values(n, size))
    out = tmp_path / name
    out.mkdir()
    cfg = worker_config(out, bootstrap, topic, **{f"engine.{k}": v for k, v in budget.items()},
                        **{"model.options": {"frames": False}})
    return ThreadWorker(cfg)


def test_message_and_byte_budgets_hold_within_ten_percent(tmp_path, kafka_bootstrap):
    msg_rate, size, byte_rate = 50.0, 1000, 40_000.0          # the byte budget: 40 messages/s of 1000 bytes
    backlog = int(msg_rate * WINDOW_S * 10)
    by_count = _start(tmp_path, kafka_bootstrap, "by-count", backlog, 200, max_messages_per_s=msg_rate)
    by_bytes = _start(tmp_path, kafka_bootstrap, "by-bytes", int(byte_rate / size * WINDOW_S * 10), size,
                      max_bytes_per_s=byte_rate)
    files = {"count": tmp_path / "by-count" / "results.jsonl", "bytes": tmp_path / "by-bytes" / "results.jsonl"}
    try:
        wait_for(lambda: all(len(jsonl_results(f)) > 0 for f in files.values()), 90, what="first results")
        time.sleep(3)                                   # past the start-up (assignment, the first fetch)
        start = {k: len(jsonl_results(f)) for k, f in files.items()}
        t0 = time.monotonic()
        held_msgs = held_bytes = 0
        while time.monotonic() - t0 < WINDOW_S:         # what the workers hold while they wait
            for w in (by_count, by_bytes):
                held_msgs = max(held_msgs, len(w.engine.inflight))
                held_bytes = max(held_bytes, w.engine.inflight_bytes)
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        end = {k: len(jsonl_results(f)) for k, f in files.items()}
        budget_held = by_count.metric("sidepath_budget_held")
    finally:
        by_count.stop()
        by_bytes.stop()
    msgs_per_s = (end["count"] - start["count"]) / elapsed
    print(f"achieved over {elapsed:.1f} s: {msgs_per_s:.2f} messages/s (budget {msg_rate:g})")
    bytes_per_s = (end["bytes"] - start["bytes"]) * size / elapsed
    print(f"achieved over {elapsed:.1f} s: {bytes_per_s:.0f} bytes/s (budget {byte_rate:g})")
    assert msg_rate * 0.9 <= msgs_per_s <= msg_rate * 1.1, msgs_per_s
    assert byte_rate * 0.9 <= bytes_per_s <= byte_rate * 1.1, bytes_per_s
    # the backlog stays in Kafka: the workers hold at most a couple of seconds of budget, not the backlog
    assert held_msgs <= 3 * msg_rate, held_msgs
    assert held_bytes <= 3 * byte_rate, held_bytes
    assert end["count"] < backlog / 2
    assert budget_held is not None
