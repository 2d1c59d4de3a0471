"""Exactly-once Kafka-to-Kafka (``sinks.exactly_once``) against the real broker.

The decisive case: one message is held in the model while every later one
finishes, then the worker is killed with SIGKILL.  At-least-once has written
the later results already and redoes them after the restart (duplicates, shown
here as the contrast); exactly-once holds them back, because the committed
offset cannot pass the held message, so the restart's transactions carry each
result once.
"""
from __future__ import annotations

import base64
import json
import signal
import time
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer

from sidepath.core.logs import librdkafka_logging
from sidepath.worker.dev.local_kafka import free_ports, group_offsets
from tests.kafka_util import create_topic, private_broker, produce
from tests.worker_util import ThreadWorker, start_worker_process, wait_for, worker_config, write_config_file

pytestmark = pytest.mark.kafka

PAYLOAD = base64.b64encode(b"x" * 32).decode()


def _results(bootstrap: str, topic: str, *, committed_only: bool = True, settle_s: float = 3.0) -> list[dict]:
    """Every result on the topic: read_committed (what downstream readers see) or everything."""
    c = Consumer({**librdkafka_logging(), "bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed" if committed_only else "read_uncommitted"})
    c.subscribe([topic])
    out, quiet_since = [], time.monotonic()
    try:
        while time.monotonic() - quiet_since < settle_s:
            msgs = [m for m in c.consume(500, 0.3) if m.error() is None]
            if msgs:
                quiet_since = time.monotonic()
            out.extend({**json.loads(m.value()), "_partition": m.partition()} for m in msgs)
    finally:
        c.close()
    return out


def _scrape(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _config(tmp_path, bootstrap, src, out, *, exactly_once: bool, gate, port: int = 0, **extra):
    return worker_config(tmp_path, bootstrap, src, **{
        "model.name": "tests.gate_model:GateModel", "model.options": {"gate": str(gate), "only": "HOLD"},
        "model.instances": 2, "model.max_batch": 1,            # the held message blocks one runner only
        "sinks.urls": [f"kafka://{bootstrap}/{out}"], "sinks.exactly_once": exactly_once,
        "engine.commit_interval_s": 0.2, "metrics.port": port, "metrics.host": "127.0.0.1", **extra})


@pytest.mark.parametrize("exactly_once", [True, False], ids=["exactly-once", "at-least-once"])
def test_kill_9_with_a_held_message(tmp_path, kafka_bootstrap, exactly_once):
    src, out = f"eos-in-{time.time_ns()}", f"eos-out-{time.time_ns()}"
    create_topic(kafka_bootstrap, src, 1)
    create_topic(kafka_bootstrap, out, 1)
    n, held = 30, 5
    produce(kafka_bootstrap, src, [{"postid": f"p{i}", "uid": "u", "seqid": 1, "data": PAYLOAD,
                                    **({"note": "HOLD"} if i == held else {})} for i in range(n)])
    gate = tmp_path / "gate"
    gate.touch()
    port = free_ports(1)[0]
    cfg = _config(tmp_path, kafka_bootstrap, src, out, exactly_once=exactly_once, gate=gate, port=port)
    path = write_config_file(tmp_path / "w.toml", cfg)
    log = tmp_path / "w.log"
    proc = start_worker_process(path, log_path=log)
    try:
        # every message but the held one has its result (ready, or written)
        def progressed() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            return _scrape(port, "sidepath_results_total") >= n - 1
        wait_for(progressed, 120, what="all but one result")
        wait_for(lambda: group_offsets(kafka_bootstrap, cfg.kafka.group_id).get((src, 0), (None,))[0] == held,
                 60, interval=0.5, what="commit up to the held message")
        before = {r["postid"] for r in _results(kafka_bootstrap, out)}
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    if exactly_once:
        # only the results below the committed offset are visible; the rest were held back
        assert before == {f"p{i}" for i in range(held)}, log.read_text()[-3000:]
    else:
        assert before == {f"p{i}" for i in range(n)} - {f"p{held}"}

    gate.unlink()
    cfg2 = _config(tmp_path, kafka_bootstrap, src, out, exactly_once=exactly_once, gate=gate)
    w = ThreadWorker(cfg2, until_end=True)
    stats = w.wait(120)
    assert stats["fatal"] is None and stats["done"] == n - held, stats
    rows = _results(kafka_bootstrap, out)
    ids = [r["postid"] for r in rows]
    assert set(ids) == {f"p{i}" for i in range(n)}
    assert all(r["msg"] == "" for r in rows)
    if exactly_once:
        assert sorted(ids) == sorted(set(ids)), "a result is visible twice"
    else:
        assert len(ids) == n + (n - held - 1)       # the contrast: every result after the held one, twice
    assert group_offsets(kafka_bootstrap, cfg.kafka.group_id)[(src, 0)][0] == n


def test_two_workers_rebalancing_each_result_once_in_offset_order(tmp_path, kafka_bootstrap):
    src, out = f"eos2-in-{time.time_ns()}", f"eos2-out-{time.time_ns()}"
    create_topic(kafka_bootstrap, src, 4)
    create_topic(kafka_bootstrap, out, 4)
    n = 400
    produce(kafka_bootstrap, src, [{"postid": f"p{i}", "uid": "u", "seqid": i, "data": PAYLOAD} for i in range(n)])
    base = {"model.name": "noop", "model.options": {"frames": False, "item_ms": 15}, "model.max_batch": 8,
            "sinks.urls": [f"kafka://{kafka_bootstrap}/{out}"], "sinks.exactly_once": True,
            "engine.commit_interval_s": 0.2}
    cfg = worker_config(tmp_path, kafka_bootstrap, src, **base)
    w1 = ThreadWorker(cfg)
    wait_for(lambda: len(_results(kafka_bootstrap, out, settle_s=0.5)) >= 60, 120, what="first results")
    w2 = ThreadWorker(worker_config(tmp_path / "b", kafka_bootstrap, src, **base, **{
        "sinks.dead_letter": f"file://{tmp_path}/dl2.jsonl"}))      # joins: partitions move mid-stream
    wait_for(lambda: sum(v[0] or 0 for v in group_offsets(kafka_bootstrap, cfg.kafka.group_id).values()) >= n,
             180, interval=1, what="commits at the log end")
    s1, s2 = w1.stop(), w2.stop()
    assert s1["fatal"] is None and s2["fatal"] is None
    assert s1["rebalances"] + s2["rebalances"] >= 3          # both took part
    rows = _results(kafka_bootstrap, out)
    ids = [r["postid"] for r in rows]
    assert len(ids) == len(set(ids)) == n
    # in each result partition, one source partition's results appear in offset order (transactions
    # write what they commit in order, and a partition's next owner starts after the last commit)
    by_part: dict[tuple[int, int], list[int]] = {}
    for r in rows:
        by_part.setdefault((r["_partition"], r["source"]["partition"]), []).append(r["source"]["offset"])
    assert all(offs == sorted(offs) for offs in by_part.values())


def test_a_result_too_large_for_the_topic_becomes_an_error_row(tmp_path, kafka_bootstrap, topic):
    out = f"eos-small-{time.time_ns()}"
    create_topic(kafka_bootstrap, out, 1, config={"max.message.bytes": "4000"})
    produce(kafka_bootstrap, topic, [
        {"postid": "small", "uid": "u", "seqid": 1, "data": PAYLOAD},
        {"postid": "big", "uid": "u", "seqid": 1, "data": PAYLOAD, "blob": "y" * 6000},   # carried into the result
        {"postid": "after", "uid": "u", "seqid": 1, "data": PAYLOAD}])
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{
        "model.name": "noop", "model.options": {"frames": False},
        "sinks.urls": [f"kafka://{kafka_bootstrap}/{out}"], "sinks.exactly_once": True})
    stats = ThreadWorker(cfg, until_end=True).wait(120)
    assert stats["fatal"] is None and stats["done"] == 3, stats
    rows = {r["postid"]: r for r in _results(kafka_bootstrap, out)}
    assert set(rows) == {"small", "big", "after"}
    assert rows["small"]["msg"] == rows["after"]["msg"] == ""
    assert rows["big"]["stage"] == "sink" and "too large" in rows["big"]["msg"]
    letters = [json.loads(line) for line in (tmp_path / "dead-letters.jsonl").read_text().splitlines()]
    assert [d["stage"] for d in letters] == ["sink"]
    assert group_offsets(kafka_bootstrap, cfg.kafka.group_id)[(topic, 0)][0] == 3



def test_broker_stopped_and_restarted_mid_stream_each_result_once(tmp_path):
    """Transactions in flight when the broker goes away are aborted and tried again: nothing is lost,
    nothing is visible twice."""
    with private_broker("sidepath-eos-kafka-") as broker:
        b = broker.bootstrap
        src, out = "eos-bk-in", "eos-bk-out"
        create_topic(b, src, 2)
        create_topic(b, out, 2)
        n = 600
        reqs = [{"postid": f"p{i}", "uid": "u", "seqid": i, "data": PAYLOAD} for i in range(n)]
        produce(b, src, reqs[: n // 2])
        cfg = worker_config(tmp_path, b, src, **{
            "model.name": "noop", "model.options": {"frames": False, "item_ms": 20.0}, "model.max_batch": 8,
            "sinks.urls": [f"kafka://{b}/{out}"], "sinks.exactly_once": True, "engine.commit_interval_s": 0.2})
        w = ThreadWorker(cfg)
        # 20 ms per message: the first half takes 6 s of model time, so work is still finishing (and
        # transactions being attempted) while the broker is away
        wait_for(lambda: len(_results(b, out, settle_s=0.3)) >= 60, 120, what="first results")
        broker.stop()                         # controlled shutdown, then nothing listens
        time.sleep(3.0)
        broker.start()
        produce(b, src, reqs[n // 2:])
        wait_for(lambda: sum(v[0] or 0 for v in group_offsets(b, cfg.kafka.group_id).values()) >= n,
                 240, interval=1, what="commits at the log end")
        stats = w.stop()
        assert stats["fatal"] is None, stats
        assert w.metric("sidepath_commit_failures_total") >= 1     # the outage did abort transactions
        ids = [r["postid"] for r in _results(b, out)]
        assert sorted(ids) == sorted(f"p{i}" for i in range(n)), "lost or duplicated results"


def test_two_workers_sharing_a_transactional_id_one_line_and_still_once(tmp_path, kafka_bootstrap):
    """A misconfiguration: two live workers given one sinks.transactional_id.  The newer one fences
    the older, which stops with one line naming the fix; no result is visible twice."""
    src, out = f"eos-fence-in-{time.time_ns()}", f"eos-fence-out-{time.time_ns()}"
    create_topic(kafka_bootstrap, src, 2)
    create_topic(kafka_bootstrap, out, 2)
    n = 200
    reqs = [{"postid": f"p{i}", "uid": "u", "seqid": i, "data": PAYLOAD} for i in range(n)]
    produce(kafka_bootstrap, src, reqs[: n // 2])
    base = {"model.name": "noop", "model.options": {"frames": False, "item_ms": 20}, "model.max_batch": 4,
            "sinks.urls": [f"kafka://{kafka_bootstrap}/{out}"], "sinks.exactly_once": True,
            "sinks.transactional_id": "shared-by-mistake", "engine.commit_interval_s": 0.2}
    cfg = worker_config(tmp_path, kafka_bootstrap, src, **base)
    w1 = ThreadWorker(cfg)
    wait_for(lambda: len(_results(kafka_bootstrap, out, settle_s=0.3)) >= 20, 120, what="first results")
    w2 = ThreadWorker(worker_config(tmp_path / "b", kafka_bootstrap, src, **base, **{
        "sinks.dead_letter": f"file://{tmp_path}/dl2.jsonl"}))
    wait_for(lambda: w2.engine is not None and w2.engine.assigned_once, 120, what="the second worker's partitions")
    produce(kafka_bootstrap, src, reqs[n // 2:])      # work for both: the fenced one learns it at its next commit
    s1 = w1.wait(120)
    assert s1["fatal"] and "another process uses transactional.id 'shared-by-mistake'" in s1["fatal"], s1
    assert "give every worker its own sinks.transactional_id" in s1["fatal"]
    wait_for(lambda: sum(v[0] or 0 for v in group_offsets(kafka_bootstrap, cfg.kafka.group_id).values()) >= n,
             180, interval=1, what="the survivor commits at the log end")
    assert w2.stop()["fatal"] is None
    ids = [r["postid"] for r in _results(kafka_bootstrap, out)]
    assert sorted(ids) == sorted(f"p{i}" for i in range(n)), "lost or duplicated results"


def test_a_setting_librdkafka_refuses_is_one_config_line(kafka_bootstrap, topic):
    from sidepath.core.errors import ConfigError
    from sidepath.sinks.kafka_transaction import TransactionalResults

    with pytest.raises(ConfigError, match="librdkafka refused the settings") as e:
        TransactionalResults([f"kafka://{kafka_bootstrap}/{topic}?compression.type=bogus"],
                             transactional_id="sidepath-test-bogus")
    assert e.value.key == "sinks.urls"
