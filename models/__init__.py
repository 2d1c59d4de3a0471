"""The model runtime: the contract, the registry and the device helpers.

    from sidepath.models import create_model, available_models, pick_device
    device = pick_device("auto")
    model = create_model("embedding", max_batch=32, precision="auto", options={"size": 224})
    model.load(device); model.warmup()
    outs = model.predict([model.prepare(media) for media in medias])

Torch is imported with the first use of a name that needs it, so that
``sidepath model split`` and config tools start fast.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Model", "ModelBase", "FrameModel", "PreparedFrames",
    "create_model", "available_models", "model_class",
    "pick_device", "resolve_precision", "apply_memory_budget", "gpu_memory_used",
]

_WHERE = {
    "Model": "base", "ModelBase": "base", "FrameModel": "frames", "PreparedFrames": "frames",
    "create_model": "registry", "available_models": "registry", "model_class": "registry",
    "pick_device": "device", "resolve_precision": "device", "apply_memory_budget": "device",
    "gpu_memory_used": "device",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"sidepath.models.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sidepath.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
