"""Model files come from outside: loading one never runs code, and a known digest is checked first."""
from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from sidepath.core.errors import ConfigError, FatalError
from sidepath.models import create_model
from sidepath.models.model_file import load_program
from sidepath.models.parts import split_file


class _WritesCanary:
    """A pickle that, when loaded without weights-only semantics, writes a file."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):
        return (exec, (f"open({str(self.canary)!r}, 'w').write('code ran')",))


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def _export(path: Path) -> Path:
    torch.manual_seed(0)
    torch.export.save(torch.export.export(_Tiny(), (torch.zeros(2, 3),)), str(path))
    return path


def _rewrite(src: Path, dest: Path, replace: dict[str, bytes]) -> Path:
    """Copy the zip, swapping the entries whose names end with a key of ``replace``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            for suffix, new in replace.items():
                if info.filename.endswith(suffix):
                    data = new
            zout.writestr(info, data)
    return dest


def _malicious(tmp_path: Path, where: str, canary: Path) -> Path:
    good = _export(tmp_path / "good.pt2")
    evil = pickle.dumps(_WritesCanary(canary), protocol=2)
    if where == "sample_inputs":
        # torch retries this one with torch.load(weights_only=False) when the safe load fails
        replace = {"data/sample_inputs/model.pt": evil}
    else:
        # a weight stored as a pickle: torch loads it with weights_only=False outright
        with zipfile.ZipFile(good) as zf:
            name = next(n for n in zf.namelist() if n.endswith("model_weights_config.json"))
            config = json.loads(zf.read(name))
        config["config"]["lin.weight"]["use_pickle"] = True
        replace = {"data/weights/model_weights_config.json": json.dumps(config).encode(),
                   "data/weights/weight_0": evil}
    return _rewrite(good, tmp_path / f"evil-{where}.pt2", replace)


@pytest.mark.parametrize("where", ["sample_inputs", "weights"])
def test_a_pt2_archive_with_a_code_running_pickle_is_refused_and_runs_nothing(tmp_path, where):
    canary = tmp_path / "canary.txt"
    path = _malicious(tmp_path, where, canary)
    with pytest.raises(FatalError, match=r"is refused: it holds a pickle that is not plain weights .*"
                                         r"weights-only semantics"):
        load_program(path, torch.device("cpu"))
    assert not canary.exists(), "the model file ran code while loading"


def test_the_same_archive_through_the_torchscript_model_and_parts(tmp_path):
    canary = tmp_path / "canary.txt"
    path = _malicious(tmp_path, "sample_inputs", canary)
    manifest = split_file(path, 2048, tmp_path / "parts")
    model = create_model("torchscript", options={"path": str(manifest)})
    with pytest.raises(FatalError, match="is refused"):
        model.load(torch.device("cpu"))
    assert not canary.exists()


def test_a_plain_pt2_still_loads(tmp_path):
    program = load_program(_export(tmp_path / "ok.pt2"), torch.device("cpu"))
    assert program.kind == "export"
    assert program.module(torch.ones(2, 3)).shape == (2, 2)


def test_an_expected_digest_is_checked_before_loading(tmp_path):
    canary = tmp_path / "canary.txt"
    path = _malicious(tmp_path, "sample_inputs", canary)
    good = _export(tmp_path / "ok.pt2")
    good_digest = hashlib.sha256(good.read_bytes()).hexdigest()
    assert load_program(good, torch.device("cpu"), sha256=good_digest).sha256 == good_digest
    with pytest.raises(FatalError, match=r"has sha256 [0-9a-f]{16}\.\.\., model.options.sha256 expects "
                                         r"[0-9a-f]{16}\.\.\.; refusing to load it"):
        load_program(path, torch.device("cpu"), sha256=good_digest)
    manifest = split_file(path, 2048, tmp_path / "parts")
    model = create_model("torchscript", options={"path": str(manifest), "sha256": f"sha256:{good_digest}"})
    with pytest.raises(FatalError, match="refusing to load it"):
        model.load(torch.device("cpu"))
    assert not canary.exists()
    assert not list((tmp_path / "parts").glob("*.pt2"))   # refused before the parts were merged


def test_a_malformed_digest_is_a_config_error():
    with pytest.raises(ConfigError, match="model.options.sha256"):
        create_model("torchscript", options={"path": "x.pt2", "sha256": "abc"})
