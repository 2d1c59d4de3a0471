"""The lag reader asks a real broker with its own client, which never joins the group."""
from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition

from sidepath.core.logs import librdkafka_logging
from sidepath.worker.ops.lag_reader import read_lag
from tests.kafka_util import create_topic, produce


def test_read_lag_gives_each_partitions_offsets_and_the_groups_total(kafka_bootstrap):
    topic, group = f"lag-reader-{time.time_ns()}", f"g-{time.time_ns()}"
    create_topic(kafka_bootstrap, topic, 3)
    produce(kafka_bootstrap, topic, ["a", "b", "c"], partition=0)
    produce(kafka_bootstrap, topic, ["d", "e"], partition=1)
    conf = {"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False}
    committer = Consumer({**librdkafka_logging(), **conf})
    committer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    committer.close()
    reader = Consumer({**librdkafka_logging(), **conf})
    try:
        # the pod owns partition 0 only; the total covers all three
        report = read_lag(reader, ((topic, 0),), "earliest")
        assert report is not None and report.topic == topic
        p0, p1, p2 = (report.partitions[(topic, p)] for p in range(3))
        assert (p0.committed, p0.high, p0.lag) == (1, 3, 2)
        assert (p1.committed, p1.high, p1.lag) == (None, 2, 2)      # earliest: all of it
        assert (p2.committed, p2.lag) == (None, 0)
        assert report.total == 4
        assert read_lag(reader, ((topic, 0),), "latest").total == 2   # latest: nothing before the start
    finally:
        reader.close()
