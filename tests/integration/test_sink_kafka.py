"""The Kafka sinks against a real broker, checked with Kafka's own console consumer."""
from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections import defaultdict

import pytest

from sidepath.core.errors import TransientSinkError
from sidepath.sinks import open_dead_letter_sink, open_sink
from sidepath.sinks.base import DeadLetter, Result, SourceRef
from sidepath.worker.dev.local_kafka import kafka_tool
from tests.kafka_util import create_topic, end_offsets, private_broker, read_all

pytestmark = pytest.mark.kafka


def result(i: int, *, post: str | None = None, model: str = "age", **results) -> Result:
    return Result(post or f"p{i}", f"u{i}", f"s{i}", model, "2.1", "", {"age": i, **results},
                  SourceRef("posts", 0, i), {"infer": 0.5})


def test_results_are_readable_with_kafkas_console_consumer(kafka_bootstrap, topic):
    sink = open_sink(f"kafka://{kafka_bootstrap}/{topic}")
    batch = [result(i) for i in range(8)] + [result(1, model="tempo")]
    assert sink.write(batch) == []
    sink.close()
    out = kafka_tool("consume", "--bootstrap-server", kafka_bootstrap, "--topic", topic, "--from-beginning",
                     "--max-messages", str(len(batch)), "--timeout-ms", "60000",
                     "--formatter-property", "print.key=true", "--formatter-property", "print.headers=true",
                     "--formatter-property", "key.separator=|", "--formatter-property", "headers.separator=;",
                     timeout=120).stdout
    seen = []
    for line in out.splitlines():
        headers, key, value = line.split("|", 2)
        seen.append((key, dict(h.split(":", 1) for h in headers.split(";")), json.loads(value)))
    assert [(k, v) for k, _, v in seen] == [(r.postid, r.to_dict()) for r in batch]
    assert seen[-1][1] == {"model": "tempo", "model_version": "2.1", "content-type": "application/json"}


@pytest.mark.parametrize("topic", [3], indirect=True)
def test_results_of_one_post_stay_in_one_partition_in_order(kafka_bootstrap, topic):
    sink = open_sink(f"kafka://{kafka_bootstrap}/{topic}")
    batch = [Result(f"post-{p}", "u", str(seq), "age", "1", results={"seq": seq})
             for seq in range(10) for p in range(12)]
    for i in range(0, len(batch), 25):
        assert sink.write(batch[i:i + 25]) == []
    sink.close()
    by_post: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for m in read_all(kafka_bootstrap, topic, expect=len(batch)):
        by_post[m.key().decode()].append((m.partition(), json.loads(m.value())["results"]["seq"]))
    assert len(by_post) == 12
    assert {p for msgs in by_post.values() for p, _ in msgs} == {0, 1, 2}   # keys do spread
    for msgs in by_post.values():
        assert len({p for p, _ in msgs}) == 1
        assert [s for _, s in msgs] == list(range(10))


def test_a_message_too_large_for_the_topic_is_rejected_alone(kafka_bootstrap):
    name = f"small-{os.urandom(4).hex()}"
    create_topic(kafka_bootstrap, name, 1, {"max.message.bytes": "4096"})
    sink = open_sink(f"kafka://{kafka_bootstrap}/{name}")
    batch = [result(i) for i in range(10)]
    # random bytes do not compress: this one stays far over 4096 bytes
    batch[4] = result(4, blob=base64.b64encode(os.urandom(12_000)).decode())
    rejected = sink.write(batch)
    assert [r.result for r in rejected] == [batch[4]]
    assert "MSG_SIZE_TOO_LARGE" in rejected[0].error and "max.message.bytes" in rejected[0].error
    assert sink.write([result(20)]) == []          # the producer is still usable
    sink.close()
    keys = [m.key().decode() for m in read_all(kafka_bootstrap, name, expect=10, timeout_s=20)]
    assert keys == [r.postid for r in batch if r is not batch[4]] + ["p20"]


def letter(i: int, value: bytes | None = None) -> DeadLetter:
    return DeadLetter(f"key-{i}".encode(), value if value is not None else f'{{"postid": {i}}}'.encode(),
                      (("traceparent", b"00-abc"),), 1_700_000_000_000 + i, SourceRef("posts", 1, 40 + i),
                      "sidepath", "decode", "DecodeError", f"not a video ({i})", attempts=2, model="age")


def test_dead_letters_keep_the_original_message_and_name_the_failure(kafka_bootstrap, topic):
    dlq = open_dead_letter_sink(f"kafka://{kafka_bootstrap}/{topic}")
    letters = [letter(i) for i in range(3)]
    dlq.write_letters(letters)
    dlq.close()
    got = read_all(kafka_bootstrap, topic, expect=3)
    assert [(m.key(), m.value()) for m in got] == [(d.key, d.value) for d in letters]
    headers = dict(got[2].headers())
    assert headers["traceparent"] == b"00-abc"
    assert headers["sidepath.dlq.stage"] == b"decode"
    assert headers["sidepath.dlq.offset"] == b"42"
    assert headers["sidepath.dlq.exception.class"] == b"DecodeError"
    assert headers["sidepath.dlq.timestamp_ms"] == b"1700000000002"


def test_a_dead_letter_too_large_for_its_topic_keeps_the_failure_without_the_value(kafka_bootstrap):
    name = f"dlq-small-{os.urandom(4).hex()}"
    create_topic(kafka_bootstrap, name, 1, {"max.message.bytes": "4096"})
    dlq = open_dead_letter_sink(f"kafka://{kafka_bootstrap}/{name}")
    big = os.urandom(20_000)
    dlq.write_letters([letter(0), letter(1, value=big)])
    dlq.close()
    got = read_all(kafka_bootstrap, name, expect=2, timeout_s=20)
    assert [m.key() for m in got] == [b"key-0", b"key-1"]
    assert got[1].value() is None
    assert dict(got[1].headers())["sidepath.dlq.value_dropped_bytes"] == b"20000"


@pytest.fixture(scope="module")
def own_broker():
    """A broker of this module's own, to stop and start without disturbing the shared one."""
    with private_broker("sidepath-kafka-restart-") as broker:
        yield broker


@pytest.mark.slow
@pytest.mark.parametrize("hard", [False, True], ids=["sigterm", "sigkill"])
def test_broker_restart_mid_stream_loses_and_duplicates_nothing(own_broker, hard):
    """Writes fail as transient while the broker is away; retried, every result lands once, in order."""
    broker = own_broker
    name = f"results-{'kill' if hard else 'term'}"
    create_topic(broker.bootstrap, name, 1)
    sink = open_sink(f"kafka://{broker.bootstrap}/{name}?timeout_s=2")
    try:
        batches: list[list[Result]] = []
        transient: list[str] = []
        errors: list[BaseException] = []
        few_written, restarted = threading.Event(), threading.Event()

        def writer() -> None:                        # writes on through the outage until 4 batches after it
            try:
                after = 0
                while after < 4:
                    n = len(batches)
                    batch = [result(n * 20 + i) for i in range(20)]
                    batches.append(batch)
                    while True:                      # what the engine's retry loop does: the same batch again
                        try:
                            assert sink.write(batch) == []
                            break
                        except TransientSinkError as exc:
                            transient.append(str(exc))
                            time.sleep(0.5)
                    if n == 4:
                        few_written.set()
                    after += restarted.is_set()
                    time.sleep(0.05)
            except BaseException as exc:             # noqa: BLE001 - reported below
                errors.append(exc)

        t = threading.Thread(target=writer)
        t.start()
        assert few_written.wait(60)
        broker.stop(hard=hard)                       # while batches are in flight
        time.sleep(4)
        broker.start()
        restarted.set()
        t.join(180)
        assert not t.is_alive()
        assert not errors, errors
        assert transient and all("not acknowledged" in m for m in transient)
        expected = [r.postid for batch in batches for r in batch]
        got = [m.key().decode() for m in read_all(broker.bootstrap, name, expect=len(expected))]
        # unacknowledged messages stayed queued in the idempotent producer and were not produced again
        assert got == expected
        assert end_offsets(broker.bootstrap, name) == {0: len(expected)}
    finally:
        sink.close()
        if broker.pid() is None:
            broker.start()
