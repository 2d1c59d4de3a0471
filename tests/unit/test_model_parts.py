"""Model files split into parts and merged back: `sidepath model split|verify|merge`."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from sidepath.core.errors import ConfigError, FatalError
from sidepath.models.parts import merge_parts, parse_part_size, read_manifest, split_file
from sidepath.worker.cli.models import model as model_cli


def _run(*args: str):
    return CliRunner().invoke(model_cli, list(args))


@pytest.fixture
def model_file(tmp_path) -> Path:
    import numpy as np

    path = tmp_path / "model.pt"
    path.write_bytes(np.random.default_rng(3).bytes(300_000))
    return path


def test_split_then_merge_from_the_first_part_restores_the_file(model_file, tmp_path):
    r = _run("split", str(model_file), "--part-size", "100K")
    assert r.exit_code == 0, r.output
    assert "wrote 3 parts" in r.output
    parts = sorted(tmp_path.glob("model.pt.part-*"))
    assert [p.stat().st_size for p in parts] == [102400, 102400, 95200]
    out = tmp_path / "restored" / "model.pt"
    r = _run("merge", str(parts[0]), "-o", str(out))
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == model_file.read_bytes()


def test_verify_accepts_good_parts(model_file):
    _run("split", str(model_file), "--part-size", "128K")
    r = _run("verify", f"{model_file}.manifest.json")
    assert r.exit_code == 0 and "3 parts of model.pt ok" in r.output


def test_a_corrupted_part_stops_the_merge_and_leaves_no_output(model_file, tmp_path):
    _run("split", str(model_file), "--part-size", "100K")
    part = tmp_path / "model.pt.part-0002"
    data = bytearray(part.read_bytes())
    data[5000] ^= 1
    part.write_bytes(bytes(data))
    out = tmp_path / "out.pt"
    r = _run("merge", f"{model_file}.manifest.json", "-o", str(out))
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and "model.pt.part-0002 fails its checksum" in r.output
    assert not out.exists() and not list(tmp_path.glob(".out.pt.merging-*"))


def test_a_missing_or_truncated_part_is_named(model_file, tmp_path):
    _run("split", str(model_file), "--part-size", "100K")
    part = tmp_path / "model.pt.part-0003"
    part.write_bytes(part.read_bytes()[:-1])
    r = _run("verify", str(tmp_path / "model.pt.part-0001"))
    assert r.exit_code == 1 and "part-0003 has 95199 bytes" in r.output
    part.unlink()
    r = _run("merge", str(tmp_path / "model.pt.part-0001"), "-o", str(tmp_path / "x.pt"))
    assert r.exit_code == 1 and "part-0003 is missing" in r.output


def test_existing_output_needs_force(model_file, tmp_path):
    _run("split", str(model_file), "--part-size", "1M")
    target = tmp_path / "existing.pt"
    target.write_bytes(b"old")
    r = _run("merge", f"{model_file}.manifest.json", "-o", str(target))
    assert r.exit_code == 2 and "--force" in r.output and target.read_bytes() == b"old"
    r = _run("merge", f"{model_file}.manifest.json", "-o", str(target), "--force")
    assert r.exit_code == 0 and target.read_bytes() == model_file.read_bytes()


@pytest.mark.parametrize("size", ["lots", "0", "-5M", "5X"])
def test_bad_part_size_is_a_usage_error(model_file, size):
    r = _run("split", str(model_file), "--part-size", size)
    assert r.exit_code == 2 and "is not a size" in r.output


def test_no_manifest_is_a_usage_error(tmp_path):
    r = _run("merge", str(tmp_path / "model.pt.part-0001"), "-o", str(tmp_path / "m.pt"))
    assert r.exit_code == 2 and "no manifest found" in r.output


def test_a_manifest_naming_files_outside_its_folder_is_refused(model_file, tmp_path):
    manifest = split_file(model_file, 200_000)
    doc = json.loads(manifest.read_text())
    doc["parts"][0]["name"] = "../../etc/passwd"
    manifest.write_text(json.dumps(doc))
    with pytest.raises(FatalError, match="outside its folder"):
        merge_parts(manifest, tmp_path / "out.pt")


def test_manifest_records_sizes_and_hashes(model_file):
    import hashlib

    m = read_manifest(split_file(model_file, 150_000))
    assert m.file == "model.pt" and m.size == 300_000 and m.part_size == 150_000
    assert m.sha256 == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert [p.name for p in m.parts] == ["model.pt.part-0001", "model.pt.part-0002"]


@pytest.mark.parametrize(("text", "expected"), [("50M", 50 * 2**20), ("1G", 2**30), ("512k", 512 * 1024),
                                                 ("100", 100), ("3MiB", 3 * 2**20), ("2 MB", 2 * 2**20)])
def test_parse_part_size(text, expected):
    assert parse_part_size(text) == expected


def test_parse_part_size_rejects_nonsense():
    with pytest.raises(ConfigError):
        parse_part_size("fifty")


@settings(max_examples=40, deadline=None)
@given(size=st.integers(min_value=0, max_value=3000), part_size=st.integers(min_value=100, max_value=1500))
def test_split_merge_round_trip_for_any_sizes(size, part_size):
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "f.bin"
        data = bytes((i * 31 + size) % 251 for i in range(size))
        src.write_bytes(data)
        m = read_manifest(split_file(src, part_size, Path(tmp) / "parts"))
        assert len(m.parts) == max(1, -(-size // part_size))
        assert all(p.size <= part_size for p in m.parts)
        assert merge_parts(m.path, Path(tmp) / "out.bin").read_bytes() == data


@pytest.mark.parametrize("bad_name", ["../escaped.pt", "../../escaped.pt", "sub/escaped.pt", "..", "",
                                      "ABSOLUTE", "..\\escaped.pt"])
def test_a_manifest_whose_file_escapes_the_output_folder_is_refused(model_file, tmp_path, bad_name):
    manifest = split_file(model_file, 200_000)
    doc = json.loads(manifest.read_text())
    outside = tmp_path / "outside-target.pt"
    doc["file"] = str(outside) if bad_name == "ABSOLUTE" else bad_name
    manifest.write_text(json.dumps(doc))
    out_dir = tmp_path / "out" / "deeper"
    out_dir.mkdir(parents=True)
    # `sidepath model merge` into a folder
    r = _run("merge", str(manifest), "-o", str(out_dir))
    assert r.exit_code != 0 and "outside its folder" in r.output, r.output
    # the worker's start merges into a temporary folder
    from sidepath.models.model_file import load_program
    with pytest.raises(FatalError, match=r"names file .* outside its folder; refusing it"):
        load_program(manifest, torch_device())
    assert not outside.exists()
    assert not (tmp_path / "out" / "escaped.pt").exists() and not (tmp_path / "escaped.pt").exists()
    assert list(out_dir.iterdir()) == []


def torch_device():
    import torch
    return torch.device("cpu")
