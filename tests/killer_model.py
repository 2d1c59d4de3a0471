"""A test-only model that kills its own process (SIGKILL) when it sees a marked message.

It stands for a native decoder that segfaults, or a kernel OOM kill: nothing can be caught.
Used by name: ``model.name = "tests.killer_model:KillerModel"``; a message is a killer when its
image is exactly ``kill_width`` pixels wide (a marker that survives encoding and decoding).
"""
from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from typing import Any

from sidepath.decoders.base import DecodeSpec, Media
from sidepath.models.base import ModelBase


class KillerModel(ModelBase):
    name = "killer"
    version = "1"
    input_kind = "frames"
    batch_unit = "clip"
    options = {"kill_width": (13, "predict SIGKILLs the process when an image is this many pixels wide")}

    def decode_spec(self) -> DecodeSpec:
        return DecodeSpec(frames=True, audio=False)

    def warmup(self) -> None:
        """Nothing to warm up."""

    def prepare(self, media: Media) -> tuple[int, bool]:
        width = 0 if media.frames is None or media.frames.ndim != 4 else int(media.frames.shape[2])
        return width, width == int(self.opts["kill_width"])

    def units(self, prepared: Any) -> int:
        return 1

    def predict(self, batch: Sequence[tuple[int, bool]]) -> list[dict[str, Any]]:
        if any(kill for _n, kill in batch):
            os.kill(os.getpid(), signal.SIGKILL)
        return [{"width": w} for w, _kill in batch]
