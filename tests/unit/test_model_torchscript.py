"""The TorchScript adapter with users' models scripted/exported in the test (seeded), on CPU.

Tolerance: fp32 on CPU, outputs compared with atol 1e-5 (batched vs one at a
time, and against the eager module fed by an independent preprocessing).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sidepath.core.errors import ConfigError, FatalError, ModelError
from sidepath.decoders.base import Media
from sidepath.decoders.image import resize_letterbox, to_float_chw
from sidepath.models import create_model
from sidepath.models.parts import split_file

ATOL = 1e-5
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Classifier(nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * 4       # sharper logits: a clear top class


class Embedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 5, stride=4), nn.Tanh(), nn.AdaptiveMaxPool2d(2),
                                  nn.Flatten(), nn.Linear(32, 12))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.body(x)
        return z, z.sum(dim=1)       # a tuple: the adapter takes the first by default


class ChannelMeans(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class FixedInput(nn.Module):
    """Only accepts 16x16 inputs (flatten + linear), like many real classifiers."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 16 * 16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def _seeded(cls: type[nn.Module], seed: int = 1234) -> nn.Module:
    torch.manual_seed(seed)
    return cls().eval()


def _script(module: nn.Module, path: Path, *, trace: bool = False) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)      # torch.jit is deprecated in new torch
        prog = torch.jit.trace(module, torch.zeros(1, 3, 32, 32)) if trace else torch.jit.script(module)
        prog.save(str(path))
    return path


def _frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w, yy / h, (xx + yy) / (h + w)], axis=-1) * 255
    frames = [np.clip(base * rng.uniform(0.3, 1.0, 3) + rng.normal(0, 20, (h, w, 3)), 0, 255) for _ in range(n)]
    return np.asarray(frames, np.uint8)


def _media(frames: np.ndarray) -> Media:
    return Media(frames=frames, timestamps_s=tuple(float(i) for i in range(len(frames))), kind="video")


MEDIA = [_media(_frames(3, 48, 64, 1)), _media(_frames(1, 40, 40, 2)), _media(_frames(2, 64, 30, 3)),
         _media(_frames(4, 32, 32, 4))]


def _adapter(path: Path, max_batch: int = 16, **options):
    model = create_model("torchscript", max_batch=max_batch, options={"path": str(path), **options})
    model.load(torch.device("cpu"))
    return model


def _one_at_a_time(model, media):
    return [model.predict([model.prepare(m)])[0] for m in media]


def _batched(model, media):
    return model.predict([model.prepare(m) for m in media])


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory) -> Path:
    return _script(_seeded(Classifier), tmp_path_factory.mktemp("ts") / "classifier.pt")


def test_classifier_gives_same_scores_batched_as_one_at_a_time(classifier_file):
    model = _adapter(classifier_file, input_size=32, labels=["cat", "dog", "car", "tree"], all_scores=True)
    single, batched = _one_at_a_time(model, MEDIA), _batched(model, MEDIA)
    assert [r["frames"] for r in batched] == [3, 1, 2, 4]
    for a, b in zip(single, batched):
        np.testing.assert_allclose(a["scores"], b["scores"], atol=ATOL)
        assert a["label"] == b["label"]
        assert abs(sum(b["scores"]) - 1) < 1e-5


def test_classifier_matches_the_eager_module_with_independent_preprocessing(classifier_file):
    labels = ["cat", "dog", "car", "tree"]
    model = _adapter(classifier_file, input_size=32, labels=labels, top_k=2, all_scores=True)
    eager = _seeded(Classifier)
    for m, got in zip(MEDIA, _batched(model, MEDIA)):
        x = torch.from_numpy(to_float_chw(resize_letterbox(m.frames, 32), IMAGENET_MEAN, IMAGENET_STD))
        with torch.no_grad():
            expected = torch.softmax(eager(x), dim=1).mean(dim=0).numpy()
        np.testing.assert_allclose(got["scores"], expected, atol=ATOL)
        best = int(np.argmax(expected))
        assert got["label"] == labels[best] and got["top"][0]["index"] == best
        assert len(got["top"]) == 2 and got["top"][0]["score"] >= got["top"][1]["score"]


def test_traced_embedding_model_with_tuple_output_batched_equals_single(tmp_path):
    path = _script(_seeded(Embedder, seed=99), tmp_path / "embedder.pt", trace=True)
    model = _adapter(path, input_size="40x48", postprocess="embedding", aggregate="median")
    single, batched = _one_at_a_time(model, MEDIA), _batched(model, MEDIA)
    for a, b in zip(single, batched):
        assert b["dim"] == 12
        np.testing.assert_allclose(a["embedding"], b["embedding"], atol=ATOL)
        assert abs(np.linalg.norm(b["embedding"]) - 1) < 1e-5


def test_per_frame_results_carry_timestamps(classifier_file):
    model = _adapter(classifier_file, input_size=32, aggregate="frames", postprocess="regression")
    media = Media(frames=_frames(3, 32, 32, 5), timestamps_s=(0.5, 1.5, 2.5), kind="video")
    (out,) = model.predict([model.prepare(media)])
    assert out["frames"] == 3 and [f["t"] for f in out["per_frame"]] == [0.5, 1.5, 2.5]
    assert all(len(f["values"]) == 4 for f in out["per_frame"])


@pytest.mark.parametrize(("order", "resize", "expected"), [
    ("RGB", "stretch", [1.0, 0.0, 0.0]),
    ("BGR", "stretch", [0.0, 0.0, 1.0]),
    ("RGB", "letterbox", [0.5, 0.0, 0.0]),    # a 1:2 frame fills half of a square input
    ("RGB", "crop", [1.0, 0.0, 0.0]),
])
def test_channel_order_resize_and_plain_pixel_scale(tmp_path, order, resize, expected):
    path = _script(ChannelMeans(), tmp_path / "means.pt")
    model = _adapter(path, input_size=64, mean=[0, 0, 0], std=[1, 1, 1], channel_order=order, resize=resize,
                     postprocess="regression")
    red = np.zeros((1, 100, 200, 3), np.uint8)
    red[..., 0] = 255
    (out,) = model.predict([model.prepare(Media(frames=red, timestamps_s=(0.0,)))])
    np.testing.assert_allclose(out["values"], expected, atol=1e-3)


def test_torch_export_program_loads_and_matches_torchscript(tmp_path, classifier_file):
    eager = _seeded(Classifier)
    program = torch.export.export(eager, (torch.zeros(2, 3, 32, 32),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=256)},))
    torch.export.save(program, str(tmp_path / "classifier.pt2"))
    exported = _adapter(tmp_path / "classifier.pt2", input_size=32, all_scores=True)
    exported.warmup()
    scripted = _adapter(classifier_file, input_size=32, all_scores=True)
    for a, b in zip(_batched(exported, MEDIA), _batched(scripted, MEDIA)):
        np.testing.assert_allclose(a["scores"], b["scores"], atol=ATOL)


def test_loads_from_a_parts_manifest_and_reports_the_file_hash(tmp_path, classifier_file):
    manifest = split_file(classifier_file, 4096, tmp_path / "parts")
    from_parts = _adapter(manifest, input_size=32, all_scores=True)
    whole = _adapter(classifier_file, input_size=32, all_scores=True)
    assert from_parts.version == whole.version and whole.version.startswith("sha256:")
    for a, b in zip(_batched(from_parts, MEDIA), _batched(whole, MEDIA)):
        assert a["scores"] == b["scores"]


def test_a_corrupted_part_fails_at_load_naming_the_part(tmp_path, classifier_file):
    manifest = split_file(classifier_file, 4096, tmp_path)
    part = tmp_path / "classifier.pt.part-0002"
    data = bytearray(part.read_bytes())
    data[100] ^= 0xFF
    part.write_bytes(bytes(data))
    model = create_model("torchscript", options={"path": str(manifest)})
    with pytest.raises(FatalError) as err:
        model.load(torch.device("cpu"))
    assert str(part) in str(err.value) and "download it again" in str(err.value)
    assert "\n" not in str(err.value)


def _load_error(path: Path) -> str:
    model = create_model("torchscript", options={"path": str(path)})
    with pytest.raises(FatalError) as err:
        model.load(torch.device("cpu"))
    text = str(err.value)
    assert "\n" not in text and str(path) in text, text
    return text


def test_corrupt_model_file_fails_at_load_with_one_clear_line(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(np.random.default_rng(0).bytes(5000))
    text = _load_error(bad)
    assert "not a zip" in text and "torch.jit.script" in text


def test_truncated_model_file_fails_at_load(tmp_path, classifier_file):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(classifier_file.read_bytes()[: classifier_file.stat().st_size // 2])
    assert "corrupt" in _load_error(cut)


def test_damaged_archive_member_fails_at_load(tmp_path, classifier_file):
    import zipfile

    damaged = tmp_path / "damaged.pt"
    with zipfile.ZipFile(classifier_file) as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                data = b"\x80\x02garbage" + data[20:]
            dst.writestr(info, data)
    assert "cannot be loaded as torchscript" in _load_error(damaged)


def test_missing_model_file_fails_at_load(tmp_path):
    assert "not found" in _load_error(tmp_path / "nope.pt")


def test_a_state_dict_checkpoint_is_named_as_such(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(_seeded(Classifier).state_dict(), path)
    assert "torch.save() checkpoint" in _load_error(path)


def test_model_that_rejects_the_input_size_fails_at_warmup(tmp_path):
    path = _script(_seeded(FixedInput), tmp_path / "fixed.pt")
    model = _adapter(path, input_size=32, max_batch=4)
    with pytest.raises(FatalError) as err:
        model.warmup()
    assert "warm-up" in str(err.value) and "input_size" in str(err.value) and "\n" not in str(err.value)
    _adapter(path, input_size=16, max_batch=4).warmup()      # the right size works


def test_model_returning_the_wrong_batch_size_raises_model_error(tmp_path):
    class Collapse(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=0, keepdim=True).flatten(1)

    model = _adapter(_script(Collapse(), tmp_path / "collapse.pt"), input_size=8, postprocess="regression")
    with pytest.raises(ModelError, match="one row per frame"):
        _batched(model, MEDIA[:2])


@pytest.mark.parametrize(("options", "key"), [
    ({}, "path"),
    ({"path": "m.pt", "resize": "squash"}, "resize"),
    ({"path": "m.pt", "postprocess": "sigmoid"}, "postprocess"),
    ({"path": "m.pt", "aggregate": "sum"}, "aggregate"),
    ({"path": "m.pt", "std": [0.2, 0, 0.2]}, "std"),
    ({"path": "m.pt", "input_size": "wide"}, "input_size"),
    ({"path": "m.pt", "labels": "/no/such/labels.txt"}, "labels"),
    ({"path": "m.pt", "name": "bad name!"}, "name"),
])
def test_bad_options_are_config_errors_naming_the_key(options, key):
    with pytest.raises(ConfigError) as err:
        create_model("torchscript", options=options)
    assert err.value.key == f"model.options.{key}"


def test_labels_from_a_file_and_a_custom_result_name(tmp_path, classifier_file):
    (tmp_path / "labels.txt").write_text("cat\ndog\n\ncar\ntree\n")
    model = _adapter(classifier_file, input_size=32, labels=str(tmp_path / "labels.txt"), name="animals",
                     version="2024-06")
    assert (model.name, model.version) == ("animals", "2024-06")
    (out,) = _batched(model, MEDIA[:1])
    assert out["label"] in ("cat", "dog", "car", "tree")


def test_non_finite_outputs_fail_the_item_instead_of_writing_nan(tmp_path):
    class LogOfShifted(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(x.mean(dim=(2, 3)) - 0.5)      # NaN for dark frames

    model = _adapter(_script(LogOfShifted(), tmp_path / "log.pt"), input_size=8, mean=[0, 0, 0], std=[1, 1, 1],
                     postprocess="regression")
    bright = Media(frames=np.full((1, 8, 8, 3), 255, np.uint8), timestamps_s=(0.0,))
    dark = Media(frames=np.zeros((1, 8, 8, 3), np.uint8), timestamps_s=(0.0,))
    assert np.isfinite(model.predict([model.prepare(bright)])[0]["values"]).all()
    with pytest.raises(ModelError, match="non-finite"):
        model.predict([model.prepare(bright), model.prepare(dark)])
