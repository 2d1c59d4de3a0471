"""The batch size a frame model's network runs at: chosen from timings at warm-up, applied by chunking.

No test here depends on wall-clock speed: the chooser gets timing tables, the
timer a fake clock, and the model tests check outputs and chunk sizes.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sidepath.core.errors import ConfigError
from sidepath.decoders.base import Media
from sidepath.models import batching, create_model
from sidepath.models.batching import batch_sizes, choose_batch, time_batches

ATOL = 1e-5


def test_batch_sizes_are_powers_of_two_up_to_max_batch():
    assert batch_sizes(32) == [1, 2, 4, 8, 16, 32]
    assert batch_sizes(24) == [1, 2, 4, 8, 16, 24]
    assert batch_sizes(1) == [1]


def test_cpu_like_timings_pick_the_middle_not_the_largest_batch():
    # seconds per call measured on 2 CPU cores (embedding net, 224x224): 32 images fall out of the caches
    per_image = {1: 1 / 1025, 2: 1 / 1140, 4: 1 / 1219, 8: 1 / 1266, 16: 1 / 1191, 32: 1 / 704}
    table = {b: b * s for b, s in per_image.items()}
    assert choose_batch(table) == 4            # within 5% of the best (8), smaller
    assert choose_batch(table, tolerance=0.0) == 8


def test_gpu_like_timings_pick_the_largest_batch():
    table = {1: 1.0e-3, 2: 1.05e-3, 4: 1.1e-3, 8: 1.3e-3, 16: 1.8e-3, 32: 3.0e-3}
    assert choose_batch(table) == 32


def test_batch_one_wins_when_batching_only_costs():
    assert choose_batch({1: 1.0, 2: 2.4, 4: 5.0}) == 1


def test_choose_batch_needs_timings():
    with pytest.raises(ValueError):
        choose_batch({})
    with pytest.raises(ValueError):
        choose_batch({4: 0.0})


def test_time_batches_interleaves_sizes_and_keeps_the_best_round():
    now = [0.0]
    calls: list[int] = []
    cost = {1: [5.0, 1.0, 2.0], 2: [3.0, 9.0, 2.5]}        # per round: a noisy first round for size 1

    def run(b: int) -> None:
        calls.append(b)
        now[0] += cost[b][sum(1 for c in calls if c == b) - 1]

    best = time_batches(run, [1, 2], rounds=3, budget_s=100, clock=lambda: now[0])
    assert calls == [1, 2, 1, 2, 1, 2]
    assert best == {1: 1.0, 2: 2.5}


def test_time_batches_stops_after_the_budget_but_measures_every_size_once():
    now = [0.0]

    def run(b: int) -> None:
        now[0] += 10.0

    best = time_batches(run, [1, 2, 4], rounds=5, budget_s=1.0, clock=lambda: now[0])
    assert best == {1: 10.0, 2: 10.0, 4: 10.0}


# -- frame models -------------------------------------------------------------

def _media(seed: int, n: int) -> Media:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, 8, 12, 3), dtype=np.uint8).repeat(8, axis=1).repeat(8, axis=2)
    return Media(frames=frames, timestamps_s=tuple(float(i) for i in range(n)), kind="video")


MEDIA = [_media(1, 2), _media(2, 1), _media(3, 3), _media(4, 1), _media(5, 4)]   # 11 frames


def _model(max_batch: int = 16, **kwargs):
    model = create_model("embedding", max_batch=max_batch, options={"size": 64, "aggregate": "frames"}, **kwargs)
    model.load(torch.device("cpu"))
    return model


def _vectors(model, media):
    """One (frames, dim) array per item: aggregate "frames" keeps every frame's row."""
    return [np.asarray([f["embedding"] for f in r["per_frame"]])
            for r in model.predict([model.prepare(m) for m in media])]


def test_chunked_network_gives_the_same_outputs_and_never_exceeds_the_chunk(monkeypatch):
    model = _model()
    whole = _vectors(model, MEDIA)
    single = [v for m in MEDIA for v in _vectors(model, [m])]
    seen: list[int] = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda x: (seen.append(int(x.shape[0])), forward(x))[1])
    model.effective_max_batch = 3                      # 11 frames: chunks of 3, 3, 3, 2 across item borders
    chunked = _vectors(model, MEDIA)
    assert seen == [3, 3, 3, 2]
    for a, b, c in zip(whole, chunked, single):
        np.testing.assert_allclose(b, a, atol=ATOL)
        np.testing.assert_allclose(b, c, atol=ATOL)


def test_warmup_on_cpu_picks_the_chosen_size(monkeypatch):
    model = _model(max_batch=8)
    measured: list[list[int]] = []

    def fake_timer(run, sizes, **kw):
        measured.append(list(sizes))
        for b in sizes:
            run(b)                                     # each size really runs once
        return {1: 1.0, 2: 1.0, 4: 1.0, 8: 8.0}        # 4 frames per call for the price of 1

    monkeypatch.setattr(batching, "time_batches", fake_timer)
    model.warmup()
    assert measured == [[1, 2, 4, 8]]
    assert model.max_batch == 8 and model.effective_max_batch == 4


def test_warmup_picks_a_size_within_bounds_for_real():
    model = _model(max_batch=8)
    model.warmup()
    assert model.effective_max_batch in batch_sizes(8)


def test_batch_tuning_off_keeps_max_batch(monkeypatch):
    monkeypatch.setattr(batching, "time_batches", lambda *a, **k: pytest.fail("must not measure"))
    model = _model(max_batch=8, batch_tuning="off")
    model.warmup()
    assert model.effective_max_batch == 8


def test_batch_tuning_is_checked():
    with pytest.raises(ConfigError) as err:
        create_model("embedding", batch_tuning="sometimes")
    assert err.value.key == "model.batch_tuning"


def test_a_model_that_fails_below_max_batch_keeps_whole_batches():
    model = _model(max_batch=4)
    forward = model.forward

    def fixed_batch(x):
        if x.shape[0] != 4:
            raise RuntimeError("exported for batch 4 only")
        return forward(x)

    model.forward = fixed_batch
    model.effective_max_batch = 4
    model.tune_batch()
    assert model.effective_max_batch == 4
