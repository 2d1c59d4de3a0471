"""``noop``: takes any input, returns its size; measures the engine without a network.

The optional ``batch_ms`` / ``item_ms`` costs imitate a model whose call has a
fixed overhead (a GPU kernel launch, a remote call) plus a per-item part, so
engine benchmarks can show what batching buys without a GPU.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sidepath.decoders.base import DecodeSpec, Media
from sidepath.models.base import ModelBase

__all__ = ["NoopModel", "NoopItem"]


@dataclass(slots=True)
class NoopItem:
    kind: str
    frames: int
    audio_s: float
    width: int
    height: int


class NoopModel(ModelBase):
    name = "noop"
    version = "1"
    input_kind = "frames"
    batch_unit = "clip"
    options = {
        "frames": (True, "ask the decoders for frames"),
        "audio": (False, "ask the decoders for the soundtrack"),
        "batch_ms": (0.0, "simulated cost of one predict call, in milliseconds"),
        "item_ms": (0.0, "simulated cost per item, in milliseconds"),
    }

    def decode_spec(self) -> DecodeSpec:
        return DecodeSpec(frames=bool(self.opts["frames"]), audio=bool(self.opts["audio"]))

    def prepare(self, media: Media) -> NoopItem:
        frames = media.frames
        if frames is None and media.audio is None:      # the engine benchmark's case: nothing decoded
            return NoopItem(media.kind, 0, 0.0, 0, 0)
        n = 0 if frames is None else int(frames.shape[0])
        h, w = (0, 0) if frames is None or frames.ndim < 3 else (int(frames.shape[1]), int(frames.shape[2]))
        audio_s = 0.0 if media.audio is None or not media.sample_rate else len(media.audio) / media.sample_rate
        return NoopItem(media.kind, n, round(audio_s, 3), w, h)

    def predict(self, batch: Sequence[NoopItem]) -> list[dict[str, Any]]:
        cost_s = (float(self.opts["batch_ms"]) + float(self.opts["item_ms"]) * len(batch)) / 1000
        if cost_s > 0:
            time.sleep(cost_s)
        return [{"kind": it.kind, "frames": it.frames, "audio_s": it.audio_s, "width": it.width,
                 "height": it.height} for it in batch]
