"""A poison message in every stage is dead-lettered with its stage, and the stream goes on."""
from __future__ import annotations

import json

import pytest

from sidepath.worker.dev.local_kafka import group_offsets
from tests.fixtures.media import make_image
from tests.kafka_util import produce
from tests.worker_util import ThreadWorker, jsonl_results, worker_config

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def test_poison_in_every_stage_is_dead_lettered_and_later_messages_processed(
        tmp_path, kafka_bootstrap, topic, postgres_db):
    good_img = make_image("png", size=(64, 48), path=tmp_path / "good.png")
    make_image("png", size=(13, 48), path=tmp_path / "bad-width.png")   # FailingModel rejects 13 px wide
    (tmp_path / "not-an-image.jpg").write_bytes(b"hello, I am text")
    assert good_img
    req = lambda pid, ref: {"postid": pid, "uid": "u", "seqid": 1, "image": str(ref)}  # noqa: E731
    values = [
        json.dumps(req("g0", tmp_path / "good.png")),
        "{not json",                                                            # parse
        json.dumps(req("g1", tmp_path / "good.png")),
        json.dumps(req("fetch-poison", "file:///etc/passwd")),                  # fetch (outside file_roots)
        json.dumps(req("g2", tmp_path / "good.png")),
        json.dumps(req("decode-poison", tmp_path / "not-an-image.jpg")),        # decode
        json.dumps(req("g3", tmp_path / "good.png")),
        json.dumps(req("infer-poison", tmp_path / "bad-width.png")),            # infer (model raises)
        json.dumps(req("g4", tmp_path / "good.png")),
        json.dumps(req("sink\u0000poison", tmp_path / "good.png")),             # sink (PostgreSQL refuses NUL)
        json.dumps(req("g5", tmp_path / "good.png")),
    ]
    produce(kafka_bootstrap, topic, values)
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{
        "model.name": "tests.failing_model:FailingModel", "model.max_batch": 16, "model.max_wait_ms": 200,
        "sinks.urls": [postgres_db.url, f"file://{tmp_path}/results.jsonl"]})
    stats = ThreadWorker(cfg, until_end=True).wait()
    assert stats["fatal"] is None and stats["done"] == len(values)

    letters = {d["source"]["offset"]: d for d in jsonl_results(tmp_path / "dead-letters.jsonl")}
    assert {o: d["stage"] for o, d in letters.items()} == {1: "parse", 3: "fetch", 5: "decode", 7: "infer",
                                                          9: "sink"}
    assert "not JSON" in letters[1]["error"] and "/etc/passwd" in letters[3]["error"]
    rows = postgres_db.execute("SELECT postid, status FROM sidepath_results ORDER BY postid")
    ok = sorted(p for p, s in rows if s == "ok")
    assert ok == [f"g{i}" for i in range(6)]                  # every good message, before and after poison
    assert {p for p, s in rows if s == "error"} == {"@" + f"{topic}/0/1", "fetch-poison", "decode-poison",
                                                    "infer-poison"}
    assert group_offsets(kafka_bootstrap, cfg.kafka.group_id)[(topic, 0)][0] == len(values)
