"""Yielding to the live flow on a real broker: a second consumer group stands for the review pipeline.
When it falls behind (lag over live.max_lag) sidepath pauses within a few seconds, takes nothing while
it is behind, says so once, and resumes once it caught up (live.resume_lag); one result per message."""
from __future__ import annotations

import logging
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from sidepath.core.logs import librdkafka_logging
from tests.kafka_util import create_topic, produce
from tests.worker_util import ThreadWorker, jsonl_results, wait_for, worker_config

pytestmark = pytest.mark.kafka

PAYLOAD = {"uid": "u", "seqid": 1, "data": "eA=="}


class ReviewFlow:
    """The live pipeline's consumer group: reads the topic and commits what it has read."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.topic, self.group = topic, group
        self.consumer = Consumer({**librdkafka_logging(), "bootstrap.servers": bootstrap, "group.id": group,
                                  "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest"})
        md = self.consumer.list_topics(topic, timeout=10).topics[topic]
        self.consumer.assign([TopicPartition(topic, p, 0) for p in md.partitions])

    def catch_up(self, timeout_s: float = 30) -> None:
        """Read to the end and commit it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            parts = self.consumer.assignment()
            ends = {p.partition: self.consumer.get_watermark_offsets(p, timeout=10)[1] for p in parts}
            for m in self.consumer.consume(500, 0.2):
                assert m.error() is None
            pos = {p.partition: p.offset for p in self.consumer.position(parts)}
            if all(pos.get(p, -1) >= e for p, e in ends.items()):
                self.consumer.commit(offsets=[TopicPartition(self.topic, p, max(o, 0)) for p, o in pos.items()],
                                     asynchronous=False)
                return
        raise TimeoutError("review flow did not catch up")

    def close(self) -> None:
        self.consumer.close()


def test_worker_yields_while_the_review_group_is_behind(tmp_path, kafka_bootstrap, caplog):
    topic = f"yield-{time.time_ns()}"
    create_topic(kafka_bootstrap, topic, 2)
    review = ReviewFlow(kafka_bootstrap, topic, f"review-{uuid.uuid4().hex[:8]}")
    produce(kafka_bootstrap, topic, [{"postid": f"a{i}", **PAYLOAD} for i in range(40)])
    review.catch_up()
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{
        "live.group_id": review.group, "live.max_lag": 50,
        "live.resume_lag": 10, "live.check_interval_s": 0.5, "engine.max_messages_per_s": 40,
        "model.options": {"frames": False}})
    out = tmp_path / "results.jsonl"
    caplog.set_level(logging.INFO, logger="sidepath.worker.engine.pacing")
    w = ThreadWorker(cfg)
    try:
        wait_for(lambda: len(jsonl_results(out)) >= 40, 60, what="the first 40 results")
        assert w.metric("sidepath_yielding") == 0
        produce(kafka_bootstrap, topic, [{"postid": f"b{i}", **PAYLOAD} for i in range(300)])   # review falls behind
        t0 = time.monotonic()
        wait_for(lambda: w.metric("sidepath_yielding") == 1, 10, interval=0.05, what="yielding")
        assert time.monotonic() - t0 < 5
        taken = w.engine.stats.taken
        time.sleep(3)
        assert w.engine.stats.taken == taken, "took messages while yielding"
        assert taken < 340                          # it stopped with a backlog left
        assert w.engine.health.ready()[0]
        review.catch_up()
        wait_for(lambda: w.metric("sidepath_yielding") == 0, 10, interval=0.05, what="resumed")
        wait_for(lambda: len(jsonl_results(out)) >= 340, 60, what="every result")
    finally:
        w.stop()
        review.close()
    ids = [r["postid"] for r in jsonl_results(out)]
    assert sorted(ids) == sorted([f"a{i}" for i in range(40)] + [f"b{i}" for i in range(300)])   # one each
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("yielding to the live pipeline")]
    assert len(said) == 1, said

