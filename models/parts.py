"""Model files split into parts with a SHA-256 manifest, and merged back with checks.

A workaround for stores that cap file sizes (the old Git LFS limit): ``split``
writes ``FILE.part-0001 ...`` and ``FILE.manifest.json``; ``merge`` verifies the
size and SHA-256 of every part and of the whole before it renames the result
into place, so a half-downloaded part never becomes a model file.

Manifest::

    {"format": "sidepath-model-parts/1", "file": "model.pt", "size": 123,
     "sha256": "...", "part_size": 52428800,
     "parts": [{"name": "model.pt.part-0001", "size": 52428800, "sha256": "..."}, ...]}
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sidepath.core.errors import ConfigError, FatalError

__all__ = ["MANIFEST_SUFFIX", "FORMAT", "Part", "Manifest", "parse_part_size", "split_file",
           "find_manifest", "read_manifest", "verify_parts", "merge_parts", "iter_verified"]

MANIFEST_SUFFIX = ".manifest.json"
FORMAT = "sidepath-model-parts/1"
_PART_RE = re.compile(r"^(?P<file>.+)\.part-(?P<n>\d{4,})$")
_CHUNK = 4 * 2**20
_SIZE_RE = re.compile(r"^(\d+)\s*(|b|k|kb|ki|kib|m|mb|mi|mib|g|gb|gi|gib)$", re.IGNORECASE)
_MULT = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    path: Path             # the manifest file; parts live next to it
    file: str
    size: int
    sha256: str
    part_size: int
    parts: tuple[Part, ...]

    def part_path(self, part: Part) -> Path:
        return self.path.parent / part.name


def parse_part_size(text: str) -> int:
    """``50M`` -> 52428800.  K, M, G are binary (KiB, MiB, GiB); a bare number is bytes."""
    m = _SIZE_RE.match(str(text).strip())
    if not m or int(m.group(1)) == 0:
        raise ConfigError("--part-size", text, "use a positive size such as 50M, 1G or 1048576 (bytes)")
    return int(m.group(1)) * _MULT[m.group(2)[:1].lower()]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def split_file(path: str | os.PathLike[str], part_size: int, out_dir: str | os.PathLike[str] | None = None) -> Path:
    """Cut ``path`` into parts of at most ``part_size`` bytes; returns the manifest's path."""
    src = Path(path)
    if not src.is_file():
        raise ConfigError("FILE", str(src), "not a file; give the model file to split")
    out = Path(out_dir) if out_dir is not None else src.parent
    out.mkdir(parents=True, exist_ok=True)
    whole, index = hashlib.sha256(), 0
    parts: list[dict[str, Any]] = []
    with open(src, "rb") as fh:
        while True:
            index += 1
            name = f"{src.name}.part-{index:04d}"
            digest, size = hashlib.sha256(), 0
            tmp = out / (name + ".tmp")
            with open(tmp, "wb") as part:
                while size < part_size:
                    chunk = fh.read(min(_CHUNK, part_size - size))
                    if not chunk:
                        break
                    part.write(chunk)
                    digest.update(chunk)
                    whole.update(chunk)
                    size += len(chunk)
            if size == 0 and parts:
                tmp.unlink()
                break
            os.replace(tmp, out / name)
            parts.append({"name": name, "size": size, "sha256": digest.hexdigest()})
            if size < part_size:
                break
    manifest = {"format": FORMAT, "file": src.name, "size": sum(int(p["size"]) for p in parts),
                "sha256": whole.hexdigest(), "part_size": part_size, "parts": parts}
    dest = out / (src.name + MANIFEST_SUFFIX)
    _write_atomic(dest, (json.dumps(manifest, indent=2) + "\n").encode())
    return dest


def find_manifest(manifest_or_part: str | os.PathLike[str]) -> Path:
    """The manifest itself, the manifest of a part (``model.pt.part-0001``) or of a file name."""
    p = Path(manifest_or_part)
    if p.name.endswith(MANIFEST_SUFFIX):
        candidate = p
    else:
        m = _PART_RE.match(p.name)
        candidate = p.with_name((m.group("file") if m else p.name) + MANIFEST_SUFFIX)
    if not candidate.is_file():
        raise ConfigError("MANIFEST", str(p), f"no manifest found at {candidate}; copy the "
                          f"{MANIFEST_SUFFIX} file written by `sidepath model split` next to the parts")
    return candidate


def _plain_file_name(name: str) -> bool:
    """A bare file name: no folder part (either slash), not absolute, not '.' or '..', no NUL."""
    return (bool(name) and name not in (".", "..") and "\x00" not in name
            and "/" not in name and "\\" not in name and Path(name).name == name)


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, expected {FORMAT!r}")
        parts = tuple(Part(str(d["name"]), int(d["size"]), str(d["sha256"])) for d in doc["parts"])
        manifest = Manifest(p, str(doc["file"]), int(doc["size"]), str(doc["sha256"]), int(doc["part_size"]), parts)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FatalError(f"model parts manifest {p} is not readable ({exc}); "
                         "write it again with `sidepath model split`") from None
    # a manifest names files next to itself (parts) or in the output folder (the merged file),
    # never elsewhere: an absolute path or '..' would let a manifest write or read anywhere
    for what, name in [("file", manifest.file), *(("part", part.name) for part in parts)]:
        if not _plain_file_name(name):
            raise FatalError(f"model parts manifest {p} names {what} {name!r} outside its folder; "
                             "refusing it; write it again with `sidepath model split`")
    if not parts or sum(x.size for x in parts) != manifest.size:
        raise FatalError(f"model parts manifest {p}: part sizes do not add up to {manifest.size} bytes; "
                         "write it again with `sidepath model split`")
    return manifest


def iter_verified(manifest: Manifest) -> Iterator[bytes]:
    """The file's bytes, part by part; FatalError at the first part that is missing or differs."""
    whole = hashlib.sha256()
    for part in manifest.parts:
        path = manifest.part_path(part)
        if not path.is_file():
            raise FatalError(f"model part {path} is missing ({len(manifest.parts)} parts in {manifest.path}); "
                             "download or copy every part next to the manifest")
        actual = path.stat().st_size
        if actual != part.size:
            raise FatalError(f"model part {path} has {actual} bytes, the manifest says {part.size}; "
                             "download it again (truncated or replaced)")
        digest = hashlib.sha256()
        chunks = []
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                chunks.append(chunk)
        if digest.hexdigest() != part.sha256:
            raise FatalError(f"model part {path} fails its checksum (sha256 {digest.hexdigest()[:16]}..., "
                             f"expected {part.sha256[:16]}...); download it again")
        for chunk in chunks:
            whole.update(chunk)
            yield chunk
    if whole.hexdigest() != manifest.sha256:
        raise FatalError(f"merged model {manifest.file} fails its checksum (expected sha256 "
                         f"{manifest.sha256[:16]}...); the manifest {manifest.path} does not match its parts")


def verify_parts(manifest_or_part: str | os.PathLike[str]) -> Manifest:
    """Check every part without writing anything; returns the manifest."""
    manifest = read_manifest(find_manifest(manifest_or_part))
    for _ in iter_verified(manifest):
        pass
    return manifest


def _copy_verified(manifest: Manifest, fh: BinaryIO) -> None:
    for chunk in iter_verified(manifest):
        fh.write(chunk)


def merge_parts(manifest_or_part: str | os.PathLike[str], out: str | os.PathLike[str], *,
                force: bool = False) -> Path:
    """Verify and join the parts into ``out`` (written beside it, renamed when whole)."""
    manifest = read_manifest(find_manifest(manifest_or_part))
    dest = Path(out)
    if dest.is_dir():
        dest = dest / manifest.file
    if dest.exists() and not force:
        raise ConfigError("-o", str(dest), "file exists; pass --force to overwrite it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.merging-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            _copy_verified(manifest, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
