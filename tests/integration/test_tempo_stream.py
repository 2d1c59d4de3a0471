"""`sidepath run` with the tempo model over a topic of generated music videos writes BPM and beats."""
from __future__ import annotations

import json

import pytest

from sidepath.worker.dev.demo_media import make_video
from tests.kafka_util import produce
from tests.worker_util import ThreadWorker, sqlite_rows, worker_config

pytestmark = pytest.mark.kafka


def test_tempo_model_over_music_videos_writes_bpm_and_beats(tmp_path, kafka_bootstrap, topic):
    bpms = {"v90": 90.0, "v120": 120.0, "v140": 140.0}
    for name, bpm in bpms.items():
        make_video(tmp_path / f"{name}.mp4", seconds=12, size=(160, 120), bpm=bpm, seed=int(bpm))
    make_video(tmp_path / "silent.mp4", seconds=4, size=(160, 120), audio=False)
    reqs = [{"postid": n, "uid": "u", "seqid": 1, "video": str(tmp_path / f"{n}.mp4")} for n in bpms]
    reqs.append({"postid": "silent", "uid": "u", "seqid": 1, "video": str(tmp_path / "silent.mp4")})
    produce(kafka_bootstrap, topic, reqs)
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{"model.name": "tempo", "model.max_batch": 8})
    stats = ThreadWorker(cfg, until_end=True).wait(300)
    assert stats["done"] == 4

    rows = {r["postid"]: r for r in sqlite_rows(tmp_path / "results.db")}
    for name, bpm in bpms.items():
        assert rows[name]["status"] == "ok", rows[name]["msg"]
        res = json.loads(rows[name]["results"])
        assert res["bpm"] == pytest.approx(bpm, rel=0.04), res
        beats = res["beats"]
        assert len(beats) >= 0.7 * 12 * bpm / 60
        # beats sit on the clicks: every beat within 60 ms of the click grid (clicks at k * 60 / bpm)
        period = 60.0 / bpm
        assert all(min(b % period, period - b % period) < 0.06 for b in beats[2:-1]), beats
        assert 0.0 <= res["confidence"] <= 1.0 and res["candidates"]
    # a video without a soundtrack: a clear per-message error, not a crash
    assert rows["silent"]["status"] == "error" and "audio" in rows["silent"]["msg"]
