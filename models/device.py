"""Device choice, precision and GPU memory: the parts of the runtime that touch CUDA.

``pick_device("auto")`` takes the first visible GPU, else the CPU.  Device
numbers are relative to ``CUDA_VISIBLE_DEVICES`` (torch applies it), so a pod
that sees one GPU always says ``cuda:0``.
"""
from __future__ import annotations

import logging
import os
import re

import torch

from sidepath.core.errors import ConfigError
from sidepath.models.precisions import PRECISIONS

__all__ = [
    "pick_device", "resolve_precision", "apply_memory_budget", "gpu_memory_used",
    "parse_quantity", "PRECISIONS",
]

log = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _visible() -> str:
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    return "unset" if value is None else repr(value)


def pick_device(spec: str = "auto") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a ``torch.device``; ConfigError if it is not there."""
    spec = str(spec).strip().lower()
    if not _DEVICE.match(spec):
        raise ConfigError("model.device", spec, "use auto, cpu, cuda or cuda:N")
    if spec == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if spec == "auto":
        return torch.device("cuda", 0) if available else torch.device("cpu")
    if not available:
        raise ConfigError("model.device", spec,
                          f"no CUDA device is visible (CUDA_VISIBLE_DEVICES={_visible()}); "
                          "use device=auto or cpu, or run on a GPU node")
    index = int(spec.split(":")[1]) if ":" in spec else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError("model.device", spec,
                          f"only {count} CUDA device(s) visible (CUDA_VISIBLE_DEVICES={_visible()}); "
                          f"use cuda:0..cuda:{count - 1}; numbers are relative to CUDA_VISIBLE_DEVICES")
    return torch.device("cuda", index)


def resolve_precision(requested: str, device: torch.device, *, half_ok: bool = True) -> torch.dtype:
    """The compute dtype: reduced precision only on CUDA; ``auto`` = fp16 where the model allows it."""
    if requested not in PRECISIONS:
        raise ConfigError("model.precision", requested, f"use one of {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        if requested in ("fp16", "bf16"):
            log.info("precision %s applies to CUDA only; running fp32 on %s", requested, device)
        return torch.float32
    if requested == "auto":
        return torch.float16 if half_ok else torch.float32
    if requested == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError("model.precision", requested,
                          f"{torch.cuda.get_device_name(device)} has no bf16 support; use fp16 or fp32")
    return _DTYPES[requested]


_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$")


def parse_quantity(text: str | int, *, key: str = "deploy.gpu_memory") -> int:
    """A Kubernetes memory quantity (``16Gi``, ``500M``, ``1073741824``) in bytes."""
    m = _QUANTITY.match(str(text).strip())
    if not m:
        raise ConfigError(key, text, "use a Kubernetes quantity such as 16Gi, 8000Mi or a number of bytes")
    return int(float(m.group(1)) * _UNITS[m.group(2) or ""])


def apply_memory_budget(device: torch.device | str, budget: str | int) -> int:
    """Cap this process's CUDA caching allocator at ``budget`` bytes; returns the budget in bytes.

    On CPU it only validates the quantity.  ``0`` means no cap.  Beyond the cap
    torch raises an out-of-memory error, which the runner answers by halving the
    batch, so that a pod never takes memory its neighbours on the GPU were promised.
    """
    nbytes = parse_quantity(budget)
    device = torch.device(device)
    if device.type != "cuda" or nbytes == 0:
        return nbytes
    total = torch.cuda.get_device_properties(device).total_memory
    if nbytes >= total:
        log.warning("gpu memory budget %s is not below the %.1f GiB of %s; no cap applied",
                    budget, total / 2**30, device)
        return nbytes
    torch.cuda.set_per_process_memory_fraction(nbytes / total, device)
    log.info("gpu memory capped at %s (%.1f%% of %s)", budget, 100 * nbytes / total, device)
    return nbytes


def gpu_memory_used(device: torch.device | str | None = None) -> int:
    """Bytes the caching allocator holds on ``device`` (0 on CPU): what the budget caps."""
    if device is not None and torch.device(device).type != "cuda":
        return 0
    if not torch.cuda.is_available():
        return 0
    return int(torch.cuda.memory_reserved(device))
