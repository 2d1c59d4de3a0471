"""One message end to end on the real broker: request -> fetch + decode -> model -> JSONL + SQLite -> commit."""
from __future__ import annotations

import json

import pytest

from sidepath.worker.dev.demo_media import make_image, make_video
from sidepath.worker.dev.local_kafka import group_offsets
from tests.kafka_util import end_offsets, produce
from tests.worker_util import ThreadWorker, jsonl_results, sqlite_rows, worker_config

pytestmark = pytest.mark.kafka


def test_results_in_jsonl_and_sqlite_and_offsets_at_log_end(tmp_path, kafka_bootstrap, topic):
    img = make_image(tmp_path / "a.jpg", seed=1)
    vid = make_video(tmp_path / "b.mp4", seconds=3, seed=2)
    reqs = [{"postid": f"p{i}", "uid": "u", "seqid": i, **({"video": str(vid)} if i % 2 else {"image": str(img)})}
            for i in range(6)]
    produce(kafka_bootstrap, topic, reqs)
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{"model.name": "fingerprint"})
    stats = ThreadWorker(cfg, until_end=True).wait()
    assert stats["fatal"] is None and stats["done"] == 6

    lines = jsonl_results(tmp_path / "results.jsonl")
    assert sorted(r["postid"] for r in lines) == [f"p{i}" for i in range(6)]
    assert all(r["msg"] == "" and r["model"] == "fingerprint" and r["results"] for r in lines)
    videos = [r for r in lines if int(r["seqid"]) % 2]
    assert all(r["results"]["timestamps_s"] == [0.0, 1.0, 2.0] for r in videos), videos[0]["results"]  # 1 fps
    rows = sqlite_rows(tmp_path / "results.db")
    assert sorted(r["postid"] for r in rows) == [f"p{i}" for i in range(6)]

    ends = end_offsets(kafka_bootstrap, topic)
    committed = group_offsets(kafka_bootstrap, cfg.kafka.group_id)     # Kafka's own tool
    assert {p: v[0] for (t, p), v in committed.items()} == ends
    assert all(v[2] == 0 for v in committed.values())


def test_malformed_messages_get_error_results_and_the_stream_goes_on(tmp_path, kafka_bootstrap, topic):
    img = make_image(tmp_path / "a.jpg")
    good = lambda i: {"postid": f"ok{i}", "uid": "u", "seqid": 1, "image": str(img)}  # noqa: E731
    values = [
        json.dumps(good(0)),
        "this is not json",
        json.dumps({"uid": "u", "seqid": 1, "image": str(img)}),                    # no postid
        json.dumps({"postid": "dead", "uid": "u", "seqid": 1, "image": "http://127.0.0.1:9/x.jpg"}),
        json.dumps(good(1)),
    ]
    produce(kafka_bootstrap, topic, values)
    cfg = worker_config(tmp_path, kafka_bootstrap, topic)
    stats = ThreadWorker(cfg, until_end=True).wait()
    assert stats["done"] == 5 and stats["errors"] == 3

    by_offset = {r["source"]["offset"]: r for r in jsonl_results(tmp_path / "results.jsonl")}
    assert len(by_offset) == 5
    assert by_offset[0]["msg"] == "" and by_offset[4]["msg"] == ""
    assert by_offset[1]["stage"] == "parse" and "not JSON" in by_offset[1]["msg"]
    assert by_offset[2]["stage"] == "parse" and "postid" in by_offset[2]["msg"]
    assert by_offset[3]["stage"] == "fetch" and by_offset[3]["postid"] == "dead"
    letters = jsonl_results(tmp_path / "dead-letters.jsonl")
    assert sorted(d["source"]["offset"] for d in letters) == [1, 2, 3]
    assert {d["stage"] for d in letters} == {"parse", "fetch"}
    assert len(sqlite_rows(tmp_path / "results.db")) == 5        # one row per input, errors included
    committed = group_offsets(kafka_bootstrap, cfg.kafka.group_id)
    assert committed[(topic, 0)][0] == 5
