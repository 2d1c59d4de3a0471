"""Models are found through the ``sidepath.models`` entry point group.

A package adds a model with, in its setup.cfg::

    [options.entry_points]
    sidepath.models =
        age = mypkg.age:AgeModel

or, without packaging, ``model.name = "mypkg.age:AgeModel"`` names the class
directly.  An entry point that fails to import is skipped (and logged) when
listing, so one broken plugin does not hide the others.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from sidepath.core.errors import ConfigError
from sidepath.models.base import Model

__all__ = ["ENTRY_POINT_GROUP", "available_models", "create_model", "model_class"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "sidepath.models"
_REQUIRED = ("name", "version", "input_kind", "batch_unit", "load", "prepare", "units", "predict", "decode_spec")


def _entry_points() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def _check(cls: Any, origin: str) -> type:
    missing = [a for a in _REQUIRED if not hasattr(cls, a)]
    if not isinstance(cls, type) or missing:
        raise TypeError(f"{origin} is not a model class (missing {', '.join(missing) or 'a class'})")
    return cls


def available_models(eps: Iterable[EntryPoint] | None = None) -> dict[str, type[Any]]:
    """Installed models by name; broken entry points are logged and left out."""
    found: dict[str, type] = {}
    for ep in _entry_points() if eps is None else eps:
        try:
            found[ep.name] = _check(ep.load(), f"entry point {ep.name} = {ep.value}")
        except Exception as exc:  # noqa: BLE001 - a plugin's import error must not hide the others
            log.warning("model %s (%s) cannot be loaded and is skipped: %s", ep.name, ep.value, exc)
    return found


def model_class(name: str, eps: Iterable[EntryPoint] | None = None) -> type:
    """The class registered as ``name``, or named by ``module:Class``; ConfigError otherwise."""
    eps = _entry_points() if eps is None else list(eps)
    for ep in eps:
        if ep.name == name:
            try:
                return _check(ep.load(), f"entry point {ep.name} = {ep.value}")
            except Exception as exc:  # noqa: BLE001 - reported as one line
                raise ConfigError("model.name", name, f"the model is registered ({ep.value}) but cannot be "
                                  f"imported: {exc}; reinstall the package that provides it") from None
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            return _check(getattr(importlib.import_module(module), attr), name)
        except (ImportError, AttributeError, TypeError) as exc:
            raise ConfigError("model.name", name, f"cannot import it ({exc}); give module.path:ClassName "
                              "of an installed module") from None
    names = sorted({ep.name for ep in eps})
    raise ConfigError("model.name", name, f"unknown model; installed: {', '.join(names) or 'none'} "
                      "(or give module.path:ClassName)")


def create_model(name: str, *, max_batch: int = 32, precision: str = "auto",
                 options: dict[str, Any] | None = None, batch_tuning: str | None = None) -> Model:
    """A new, not yet loaded instance; each call gives an independent one.

    ``batch_tuning`` (auto | on | off; None keeps the model's default, auto): whether warm-up
    measures the batch size the network runs fastest at (see models/batching.py)."""
    from sidepath.models.batching import BATCH_TUNING

    if batch_tuning is not None and batch_tuning not in BATCH_TUNING:
        raise ConfigError("model.batch_tuning", batch_tuning, f"use one of {', '.join(BATCH_TUNING)}")
    cls = model_class(name)
    try:
        model = cls(max_batch=max_batch, precision=precision, **dict(options or {}))
    except TypeError as exc:
        raise ConfigError("model.name", name, f"cannot create it ({exc}); a model class takes max_batch=, "
                          "precision= and its options as keyword arguments (subclass ModelBase)") from None
    if batch_tuning is not None:
        model.batch_tuning = batch_tuning      # an attribute, so model classes need not take it
    created: Model = model
    return created
