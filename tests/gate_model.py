"""A test-only model that blocks while a gate file exists (a hung model, on demand).

Used by name: ``model.name = "tests.gate_model:GateModel"``.  Besides ``gate`` (predict
blocks: a slow model), ``load_gate`` makes warm-up block (a model that loads for as long as
the test wants) and ``freeze`` makes ``prepare`` block; this model needs no decoding, so
prepare runs on the poll loop itself and the loop freezes while the health server answers.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sidepath.decoders.base import DecodeSpec, Media
from sidepath.models.base import ModelBase


class GateModel(ModelBase):
    name = "gate"
    version = "1"
    input_kind = "record"
    batch_unit = "clip"
    options = {"gate": ("", "predict blocks while this file exists"),
               "only": ("", "if set, only items whose raw message contains this text wait at the gate"),
               "load_gate": ("", "warm-up blocks while this file exists"),
               "freeze": ("", "prepare (on the poll loop) blocks while this file exists")}

    def decode_spec(self) -> DecodeSpec:
        return DecodeSpec(frames=False, audio=False)

    def warmup(self) -> None:
        _wait_while(self.opts["load_gate"])

    def prepare(self, media: Media) -> tuple[int, bool]:
        _wait_while(self.opts["freeze"])
        raw = media.raw or b""
        only = self.opts["only"]
        return len(raw), not only or only.encode() in raw

    def units(self, prepared: Any) -> int:
        return 1

    def predict(self, batch: Sequence[tuple[int, bool]]) -> list[dict[str, Any]]:
        gate = Path(self.opts["gate"]) if self.opts["gate"] else None
        while gate is not None and any(held for _n, held in batch) and gate.exists():
            time.sleep(0.05)
        return [{"bytes": n} for n, _held in batch]


def _wait_while(path: str) -> None:
    while path and Path(path).exists():
        time.sleep(0.05)
