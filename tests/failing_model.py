"""``FailingModel``: a model that fails on purpose, for tests of the engine's isolation.

An item is "bad" when its frames are exactly ``fail_width`` pixels wide (a
marker that survives JPEG/H.264 encoding, unlike pixel values).  Depending on
``fail_in`` the model raises ``ModelError`` in ``predict`` for any batch that
holds a bad item (as a real model does: the whole call fails, the engine must
find the culprit), in ``prepare`` for the bad item alone, or ``FatalError`` in
``load``.  Not registered as an entry point: use
``model.name = "tests.failing_model:FailingModel"``.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from sidepath.core.errors import ConfigError, FatalError, ModelError
from sidepath.decoders.base import DecodeSpec, Media
from sidepath.models.base import ModelBase

__all__ = ["FailingModel"]

_STAGES = ("predict", "prepare", "load", "never")


class FailingModel(ModelBase):
    name = "failing"
    version = "1"
    input_kind = "frames"
    batch_unit = "clip"
    options = {
        "fail_width": (13, "frames this many pixels wide mark a bad item"),
        "fail_in": ("predict", "where to fail: predict | prepare | load | never"),
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.opts["fail_in"] not in _STAGES:
            raise ConfigError("model.options.fail_in", self.opts["fail_in"], f"use one of {', '.join(_STAGES)}")
        self._lock = threading.Lock()
        #: sizes of every predict call, in order (for tests of batch splitting)
        self.calls: list[int] = []

    def decode_spec(self) -> DecodeSpec:
        return DecodeSpec(frames=True, audio=False)

    def load(self, device: Any) -> None:
        if self.opts["fail_in"] == "load":
            raise FatalError("failing model: load fails on purpose (fail_in=load)")
        super().load(device)

    def prepare(self, media: Media) -> dict[str, Any]:
        width = 0 if media.frames is None or media.frames.ndim != 4 else int(media.frames.shape[2])
        bad = width == int(self.opts["fail_width"])
        if bad and self.opts["fail_in"] == "prepare":
            raise ModelError(f"failing model: frames {width} px wide are rejected on purpose (fail_in=prepare)")
        frames = 0 if media.frames is None else int(media.frames.shape[0])
        return {"width": width, "frames": frames, "bad": bad}

    def predict(self, batch: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            self.calls.append(len(batch))
        if self.opts["fail_in"] == "predict" and any(item["bad"] for item in batch):
            raise ModelError(f"failing model: a batch of {len(batch)} holds an item "
                             f"{self.opts['fail_width']} px wide (fail_in=predict)")
        return [{"width": item["width"], "frames": item["frames"]} for item in batch]
