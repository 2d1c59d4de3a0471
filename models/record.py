"""``record``: copies each message as it is (used by ``sidepath drain``); no decoding, no device work."""
from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, ClassVar

from sidepath.decoders.base import DecodeSpec, Media
from sidepath.models.base import ModelBase

__all__ = ["RecordModel"]


class RecordModel(ModelBase):
    name = "record"
    version = "1"
    input_kind = "record"
    batch_unit = "clip"
    options: ClassVar[dict[str, tuple[Any, str]]] = {}

    def decode_spec(self) -> DecodeSpec:
        return DecodeSpec(frames=False, audio=False)

    def warmup(self) -> None:
        """Nothing to warm up."""

    def prepare(self, media: Media) -> dict[str, Any]:
        raw = media.raw or b""
        try:
            return {"value": json.loads(raw)}
        except (ValueError, RecursionError):
            return {"value_b64": base64.b64encode(raw).decode()}

    def units(self, prepared: Any) -> int:
        return 1

    def predict(self, batch: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(batch)
