"""Small helpers for tests that talk to the real broker through confluent-kafka."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from sidepath.core.logs import librdkafka_logging

if TYPE_CHECKING:
    from sidepath.worker.dev.local_kafka import Broker


@contextmanager
def private_broker(prefix: str = "sidepath-kafka-") -> Iterator[Broker]:
    """A real single-node broker on free loopback ports, of the caller alone (to stop, restart or
    share by a session); stopped and its files removed afterwards."""
    from sidepath.worker.dev.local_kafka import Broker

    broker = Broker(Path(tempfile.mkdtemp(prefix=prefix)))
    broker.format()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop(hard=True)
        shutil.rmtree(broker.workdir, ignore_errors=True)


def create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict[str, str] | None = None) -> None:
    admin = AdminClient({**librdkafka_logging(), "bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name]
    fut.result(30)
    deadline = time.monotonic() + 30        # wait until every partition has a leader
    while time.monotonic() < deadline:
        md = admin.list_topics(name, timeout=5).topics.get(name)
        if md and len(md.partitions) == partitions and all(p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topic {name} not ready")


def produce(bootstrap: str, topic: str, values: Iterable[bytes | str | dict], *, key: bytes | None = None,
            partition: int | None = None) -> int:
    p = Producer({**librdkafka_logging(), "bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    n = 0
    for v in values:
        if isinstance(v, dict):
            v = json.dumps(v)
        kwargs = {"partition": partition} if partition is not None else {}
        while True:
            try:
                p.produce(topic, v.encode() if isinstance(v, str) else v, key=key, **kwargs)
                break
            except BufferError:        # the local queue is full: let deliveries drain
                p.poll(0.1)
        n += 1
        if n % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0, "produce did not complete"
    return n


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    c = Consumer({**librdkafka_logging(), "bootstrap.servers": bootstrap, "group.id": "sidepath-test-probe",
                  "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions}
    finally:
        c.close()


def read_all(bootstrap: str, topic: str, *, timeout_s: float = 30, expect: int | None = None) -> list:
    """Every message of a topic from the beginning (a throwaway group that never commits)."""
    import uuid

    c = Consumer({**librdkafka_logging(), "bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    out, deadline = [], time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                if m.error() is None:
                    out.append(m)
            if expect is not None and len(out) >= expect:
                break
    finally:
        c.close()
    return out
