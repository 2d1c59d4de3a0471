"""FrameModel: frames of several items in one tensor batch, split back and summarised per item."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from sidepath.core.errors import ConfigError, ModelError
from sidepath.decoders.base import Media
from sidepath.models.frames import FrameModel, PreparedFrames
from sidepath.models.outputs import aggregate, summarise
from sidepath.models.preprocess import cv2_resize_frames, parse_size, resize_frames


class ChannelMeanModel(FrameModel):
    """Per frame: the mean of each channel on the 0..1 scale; easy to compute by hand."""

    name = "channel-mean"
    options = {"aggregate": ("mean", "mean | max | median | frames")}
    input_size = (8, 8)
    resize_mode = "stretch"
    mean = None
    std = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(x.shape[0]))
        return x.mean(dim=(2, 3))

    def summarise(self, rows: np.ndarray, item: PreparedFrames) -> dict[str, Any]:
        return summarise(rows, item.timestamps_s, postprocess="regression", how=self.opts["aggregate"])


def _model(**options) -> ChannelMeanModel:
    m = ChannelMeanModel(**options)
    m.calls = []
    m.load(torch.device("cpu"))
    return m


def _flat(values: list[int], ts: tuple[float, ...] | None = None) -> Media:
    """One frame per value, every pixel (v, 2v, 3v)."""
    frames = np.stack([np.full((8, 8, 3), (v, 2 * v, 3 * v), np.uint8) for v in values])
    return Media(frames=frames, timestamps_s=ts if ts is not None else tuple(float(i) for i in range(len(values))))


@pytest.mark.parametrize("how", ["mean", "max", "median"])
def test_items_of_different_lengths_share_one_forward_and_get_their_own_result(how):
    model = _model(aggregate=how)
    items = [[10, 20, 60], [40], [5, 15], [30, 31, 32, 33]]
    outs = model.predict([model.prepare(_flat(v)) for v in items])
    assert model.calls == [10]                  # one forward for all frames
    fold = {"mean": np.mean, "max": np.max, "median": np.median}[how]
    for values, out in zip(items, outs):
        v = fold(values) / 255
        assert out["frames"] == len(values)
        np.testing.assert_allclose(out["values"], [v, 2 * v, 3 * v], atol=1e-6)


def test_per_frame_list_keeps_order_and_timestamps():
    model = _model(aggregate="frames")
    a, b = model.predict([model.prepare(_flat([1, 2, 3], (0.0, 1.0, 2.0))),
                          model.prepare(_flat([9, 8], (10.5, 11.5)))])
    assert [f["t"] for f in a["per_frame"]] == [0.0, 1.0, 2.0]
    assert [f["t"] for f in b["per_frame"]] == [10.5, 11.5]
    np.testing.assert_allclose([f["values"][0] for f in b["per_frame"]], [9 / 255, 8 / 255], atol=1e-6)


def test_missing_timestamps_become_frame_indices():
    model = _model(aggregate="frames")
    media = Media(frames=_flat([1, 2]).frames, timestamps_s=())
    (out,) = model.predict([model.prepare(media)])
    assert [f["t"] for f in out["per_frame"]] == [0.0, 1.0]


def test_media_without_frames_is_a_model_error_for_that_message():
    model = _model()
    with pytest.raises(ModelError) as err:
        model.prepare(Media(audio=np.zeros(100, np.float32), sample_rate=22050, kind="audio"))
    assert "needs video or image frames" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ModelError, match="RGB uint8"):
        model.prepare(Media(frames=np.zeros((1, 8, 8), np.float32)))


def test_units_are_frames():
    model = _model()
    assert model.units(model.prepare(_flat([1, 2, 3]))) == 3


def test_bgr_and_mean_std_normalisation_on_device():
    class Identity(ChannelMeanModel):
        mean = (0.5, 0.5, 0.5)
        std = (0.25, 0.5, 1.0)
        channel_order = "BGR"

    m = Identity()
    m.calls = []
    m.load(torch.device("cpu"))
    (out,) = m.predict([m.prepare(_flat([51]))])
    rgb = np.array([51, 102, 153]) / 255
    expected = (rgb[::-1] - 0.5) / np.array([0.25, 0.5, 1.0])
    np.testing.assert_allclose(out["values"], expected, atol=1e-5)


def test_aggregate_and_summaries():
    rows = np.array([[0.1, 0.9], [0.3, 0.7], [0.8, 0.2]], np.float32)
    np.testing.assert_allclose(aggregate(rows, "median"), [0.3, 0.7])
    np.testing.assert_allclose(aggregate(rows, "max"), [0.8, 0.9])
    with pytest.raises(ValueError):
        aggregate(rows, "sum")
    soft = summarise(rows, (), postprocess="softmax", how="mean", labels=["no", "yes"], top_k=1)
    assert soft["label"] == "yes" and soft["top"] == [{"index": 1, "label": "yes", "score": 0.6}]
    assert "scores" not in soft
    emb = summarise(rows, (), postprocess="embedding", how="max")
    assert abs(np.linalg.norm(emb["embedding"]) - 1) < 1e-6 and emb["dim"] == 2


def test_decoders_resize_and_the_cv2_fallback_agree():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 37, 91, 3), dtype=np.uint8)
    for mode in ("letterbox", "stretch", "crop"):
        for size in [(32, 32), (48, 20), (100, 120)]:
            ours, shared = cv2_resize_frames(frames, size, mode), resize_frames(frames, size, mode)
            assert shared.shape == (2, *size, 3) and shared.flags.c_contiguous
            np.testing.assert_array_equal(ours, shared)


@pytest.mark.parametrize(("value", "expected"), [(224, (224, 224)), ("224", (224, 224)),
                                                 ("256x192", (256, 192)), ([96, 64], (96, 64))])
def test_parse_size(value, expected):
    assert parse_size(value, key="k") == expected


@pytest.mark.parametrize("value", ["big", "0", [1, 2, 3], True, "10x20x30", 9000])
def test_parse_size_rejects(value):
    with pytest.raises(ConfigError):
        parse_size(value, key="model.options.size")
