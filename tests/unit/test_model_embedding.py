"""The built-in embedding model: deterministic without a download, batch-invariant, instance-safe.

Tolerance: fp32 on CPU, atol 1e-5.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from sidepath.decoders.base import Media
from sidepath.models import create_model
from sidepath.models.embedding import seeded_embedding_net

ATOL = 1e-5


def _media(seed: int, n: int, h: int = 72, w: int = 96) -> Media:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, h // 8, w // 8, 3), dtype=np.uint8).repeat(8, axis=1).repeat(8, axis=2)
    return Media(frames=frames, timestamps_s=tuple(float(i) for i in range(n)), kind="video")


MEDIA = [_media(1, 2), _media(2, 1), _media(3, 3, 64, 64), _media(4, 1, 120, 40)]


def _model(**options):
    model = create_model("embedding", max_batch=16, options={"size": 64, **options})
    model.load(torch.device("cpu"))
    return model


def _vectors(model, media):
    return np.asarray([r["embedding"] for r in model.predict([model.prepare(m) for m in media])])


def test_batched_equals_one_at_a_time():
    model = _model()
    batched = _vectors(model, MEDIA)
    single = np.concatenate([_vectors(model, [m]) for m in MEDIA])
    np.testing.assert_allclose(batched, single, atol=ATOL)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_same_seed_same_vectors_in_every_instance_other_seed_differs():
    a, b = _vectors(_model(seed=5), MEDIA), _vectors(_model(seed=5), MEDIA)
    np.testing.assert_array_equal(a, b)
    c = _vectors(_model(seed=6), MEDIA)
    assert np.max(np.abs(a - c)) > 0.05


def test_seeding_leaves_the_global_rng_alone():
    torch.manual_seed(42)
    expected = torch.rand(3)
    torch.manual_seed(42)
    seeded_embedding_net(seed=1, width=4)
    assert torch.equal(torch.rand(3), expected)


def test_version_names_the_weights():
    assert _model(seed=3, dim=32).version == "1-s3-w32-d32"


def test_channels_last_gives_the_same_vectors():
    nhwc, nchw = _model(channels_last=True), _model(channels_last=False)
    assert nhwc.channels_last and not nchw.channels_last
    np.testing.assert_allclose(_vectors(nhwc, MEDIA), _vectors(nchw, MEDIA), atol=ATOL)


def test_channels_last_auto_means_nhwc_on_cpu():
    assert _model().channels_last is True                  # the default, auto, on CPU
    assert _model(channels_last="auto").channels_last is True
    assert _model(channels_last="false").channels_last is False


def test_per_frame_vectors_and_mean_aggregation_agree():
    frames = _model(aggregate="frames").predict([_model().prepare(MEDIA[2])])[0]
    mean = _vectors(_model(), [MEDIA[2]])[0]
    per_frame = np.asarray([f["embedding"] for f in frames["per_frame"]])
    assert per_frame.shape == (3, 128) and [f["t"] for f in frames["per_frame"]] == [0.0, 1.0, 2.0]
    expected = per_frame.mean(axis=0)
    np.testing.assert_allclose(mean, expected / np.linalg.norm(expected), atol=ATOL)


def test_several_instances_in_threads_match_sequential_results():
    expected = _vectors(_model(), MEDIA)
    models = [_model() for _ in range(3)]
    got: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(3):
            got[i] = _vectors(models[i], MEDIA)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(3):
        np.testing.assert_allclose(got[i], expected, atol=ATOL)


def test_units_count_frames_and_warmup_runs_a_full_batch():
    model = _model()
    assert [model.units(model.prepare(m)) for m in MEDIA] == [2, 1, 3, 1]
    model.warmup()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fp16_on_cuda_is_close_to_fp32():
    a = create_model("embedding", options={"size": 64}, precision="fp32")
    b = create_model("embedding", options={"size": 64, "channels_last": True}, precision="fp16")
    for m in (a, b):
        m.load(torch.device("cuda"))
    va, vb = _vectors(a, MEDIA), _vectors(b, MEDIA)
    assert np.min(np.sum(va * vb, axis=1)) > 0.999
    np.testing.assert_allclose(va, _vectors(_model(), MEDIA), atol=1e-3)     # GPU fp32 vs CPU fp32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_staging_ahead_gives_the_same_results_as_predict_on_cuda():
    from sidepath.models.staging import HostStager

    model = create_model("embedding", options={"size": 64}, precision="fp32")
    model.load(torch.device("cuda"))
    batches = [[model.prepare(m) for m in MEDIA[:2]], [model.prepare(m) for m in MEDIA[2:]], [model.prepare(MEDIA[0])]]
    expected = [np.asarray([r["embedding"] for r in model.predict(b)]) for b in batches]
    staged = [model.stage(b) for b in batches]         # three uploads in flight over two pinned buffers
    for s, e in zip(staged, expected):
        np.testing.assert_allclose([r["embedding"] for r in model.run(s)], e, atol=1e-4)
    stager = HostStager(torch.device("cuda"))
    arrays = [np.full((1000,), i, np.uint8) for i in range(5)]
    uploads = [stager.upload(a) for a in arrays]
    for a, u in zip(arrays, uploads):
        assert torch.equal(u.wait().cpu(), torch.from_numpy(a))


def test_staging_on_cpu_uses_the_array_in_place():
    from sidepath.models.staging import HostStager

    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    staged = HostStager(torch.device("cpu")).upload(a)
    assert staged.ready is None and staged.wait().data_ptr() == a.ctypes.data
