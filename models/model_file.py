"""Loading a user's model file: TorchScript, torch.export (.pt2), or a parts manifest.

Every failure is one ``FatalError`` line naming the path and the fix, raised at
start (``load``), never at the first message.  The format is read from the
archive's entries, not trusted from the file name: the most common mistake, a
``torch.save`` checkpoint (weights or a pickled module) where a program was
expected, gets its own message.
"""
from __future__ import annotations

import hashlib
import logging
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sidepath.models.parts import MANIFEST_SUFFIX, merge_parts
from sidepath.worker.errors import FatalError

__all__ = ["LoadedProgram", "load_program", "sniff_format", "file_sha256"]

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
            module = torch.export.load(str(path)).module()
    except Exception as exc:  # noqa: BLE001 - any failure here is a bad file: one line, then exit
        raise FatalError(f"model file {path} cannot be loaded as {kind} ({_first_line(exc)}); "
                         f"it may be corrupt or from a newer torch than {torch.__version__}: copy it again "
                         "or re-export it") from None
    return module, kind


def load_program(path: str | Path, device: torch.device) -> LoadedProgram:
    """Load a model file (or merge and verify its parts first) onto ``device``."""
    p = Path(path).expanduser()
    if p.name.endswith(MANIFEST_SUFFIX):
        if not p.is_file():
            raise FatalError(f"model parts manifest {p} not found; set model.options.path to the "
                             f"{MANIFEST_SUFFIX} file written by `sidepath model split`, next to its parts")
        with tempfile.TemporaryDirectory(prefix="sidepath-model-") as tmp:
            merged = merge_parts(p, Path(tmp))
            log.info("merged model parts of %s into a verified temporary copy", p)
            module, kind = _load_file(merged, device)
            return LoadedProgram(module, kind, file_sha256(merged))
    module, kind = _load_file(p, device)
    return LoadedProgram(module, kind, file_sha256(p))
