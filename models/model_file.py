"""Loading a user's model file: TorchScript, torch.export (.pt2), or a parts manifest.

Every failure is one ``FatalError`` line naming the path and the fix, raised at
start (``load``), never at the first message.  The format is read from the
archive's entries, not trusted from the file name: the most common mistake, a
``torch.save`` checkpoint (weights or a pickled module) where a program was
expected, gets its own message.

A model file comes from outside (a model supplier, a download): nothing in it may
run code while it loads (docs/security.md).  A torch.export archive holds pickles
(sample inputs, some weights), and torch itself retries a refused safe load with
``torch.load(weights_only=False)``; ``weights_only_loads`` sets torch's own
switch, ``TORCH_FORCE_WEIGHTS_ONLY_LOAD``, which wins over that explicit
``False``, for the duration of the load.  TorchScript archives are read by
torch's own restricted unpickler.  An expected SHA-256 (``model.options.sha256``)
is checked before a single byte is deserialised.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sidepath.core.errors import ConfigError, FatalError
from sidepath.models.parts import MANIFEST_SUFFIX, find_manifest, merge_parts, read_manifest

__all__ = ["LoadedProgram", "load_program", "sniff_format", "file_sha256", "weights_only_loads", "parse_sha256"]

log = logging.getLogger(__name__)

_SAVE_HINT = ("save it with torch.jit.script(model).save(PATH) / torch.jit.trace(...).save(PATH), "
              "or torch.export.save(torch.export.export(model, ...), PATH)")


@dataclass(frozen=True, slots=True)
class LoadedProgram:
    module: Any             # a callable torch module on the requested device
    kind: str               # torchscript | export
    sha256: str             # of the model file (merged, for a manifest)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


#: torch >= 2.4 reads it at every torch.load and lets it override an explicit weights_only=False
_FORCE_WEIGHTS_ONLY = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
_env_lock = threading.Lock()
_SHA256 = re.compile(r"^(sha256:)?([0-9a-fA-F]{64})$")


@contextmanager
def weights_only_loads() -> Iterator[None]:
    """Every ``torch.load`` inside runs with ``weights_only=True``, even where torch's own
    loaders ask for ``False``: a pickle can build tensors and plain containers, never call code."""
    with _env_lock:
        before = os.environ.get(_FORCE_WEIGHTS_ONLY)
        os.environ[_FORCE_WEIGHTS_ONLY] = "1"
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(_FORCE_WEIGHTS_ONLY, None)
            else:
                os.environ[_FORCE_WEIGHTS_ONLY] = before


def parse_sha256(value: object, *, key: str = "model.options.sha256") -> str | None:
    """``"sha256:ab12..."`` or ``"ab12..."`` (64 hex) -> lower-case hex; None when unset."""
    text = str(value or "").strip()
    if not text:
        return None
    m = _SHA256.match(text)
    if not m:
        raise ConfigError(key, text, "use the file's SHA-256 as 64 hex digits (sha256sum FILE), "
                                     "optionally prefixed with sha256:")
    return m.group(2).lower()


def _check_digest(path: Path, actual: str, expected: str | None) -> None:
    if expected is not None and actual != expected:
        raise FatalError(f"model file {path} has sha256 {actual[:16]}..., model.options.sha256 expects "
                         f"{expected[:16]}...; refusing to load it: copy the right file or correct the digest")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def sniff_format(path: Path) -> str:
    """``torchscript`` or ``export``, from the zip entries; FatalError for anything else."""
    if not path.exists():
        raise FatalError(f"model file {path} not found; set model.options.path to a TorchScript (.pt), "
                         f"torch.export (.pt2) file or a parts manifest ({MANIFEST_SUFFIX})")
    if not path.is_file():
        raise FatalError(f"model file {path} is not a file; set model.options.path to the model file itself")
    if not zipfile.is_zipfile(path):
        raise FatalError(f"model file {path} is not a TorchScript or torch.export archive (not a zip: corrupt, "
                         f"truncated or another format); {_SAVE_HINT}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise FatalError(f"model file {path} is a damaged archive ({_first_line(exc)}); copy it again") from None
    if any(n.endswith("archive_format") or "/models/" in n for n in names):
        return "export"
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return "torchscript"
    if any(n.endswith("/data.pkl") for n in names):
        raise FatalError(f"model file {path} is a torch.save() checkpoint (weights or a pickled module), not a "
                         f"program sidepath can run without your code; {_SAVE_HINT}")
    raise FatalError(f"model file {path} is a zip but not a TorchScript or torch.export archive; {_SAVE_HINT}")


def _load_file(path: Path, device: torch.device) -> tuple[Any, str]:
    kind = sniff_format(path)
    try:
        if kind == "torchscript":
            with warnings.catch_warnings():
                # torch >= 2.9 marks torch.jit as deprecated; loading users' files stays supported
                warnings.filterwarnings("ignore", message=r"`torch\.jit", category=FutureWarning)
                module = torch.jit.load(str(path), map_location=device)
        else:
            with weights_only_loads():
                module = torch.export.load(str(path)).module()
    except pickle.UnpicklingError as exc:
        # the safe unpickler met something other than tensors and plain data: code, maybe
        raise FatalError(f"model file {path} is refused: it holds a pickle that is not plain weights "
                         f"({_first_line(exc)}); sidepath loads model files with weights-only semantics, "
                         "so nothing in them can run code; re-export it with torch.export.save from plain "
                         "tensors") from None
    except Exception as exc:  # noqa: BLE001 - any failure here is a bad file: one line, then exit
        raise FatalError(f"model file {path} cannot be loaded as {kind} ({_first_line(exc)}); "
                         f"it may be corrupt or from a newer torch than {torch.__version__}: copy it again "
                         "or re-export it") from None
    return module, kind


def load_program(path: str | Path, device: torch.device, *, sha256: str | None = None) -> LoadedProgram:
    """Load a model file (or merge and verify its parts first) onto ``device``; with ``sha256``,
    the file (the merged one, for a manifest) must have that digest before anything is read."""
    p = Path(path).expanduser()
    if p.name.endswith(MANIFEST_SUFFIX):
        if not p.is_file():
            raise FatalError(f"model parts manifest {p} not found; set model.options.path to the "
                             f"{MANIFEST_SUFFIX} file written by `sidepath model split`, next to its parts")
        # the manifest's own digest first: a wrong file is refused before its parts are copied
        _check_digest(p, read_manifest(find_manifest(p)).sha256, sha256)
        with tempfile.TemporaryDirectory(prefix="sidepath-model-") as tmp:
            merged = merge_parts(p, Path(tmp))
            log.info("merged model parts of %s into a verified temporary copy", p)
            digest = file_sha256(merged)
            _check_digest(p, digest, sha256)
            module, kind = _load_file(merged, device)
            return LoadedProgram(module, kind, digest)
    if not p.is_file():
        sniff_format(p)             # says what is missing, and how to fix it
    digest = file_sha256(p)
    _check_digest(p, digest, sha256)
    module, kind = _load_file(p, device)
    return LoadedProgram(module, kind, digest)
