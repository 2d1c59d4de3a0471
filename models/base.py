"""The model contract.

A model declares what it needs (``input_kind``: ``frames`` for video frames or
an image, ``audio`` for a soundtrack), how the batcher should count work
(``batch_unit``: ``frame`` or ``clip``) and how much fits one call
(``max_batch``).  The engine calls, in this order:

1. ``load(device)`` once at start (then a warm-up ``predict``), in the runner
   thread.  A bad model file raises ``FatalError``: the worker exits with one line.
2. ``prepare(media)`` per message in a decode-pool thread: CPU preprocessing
   (resize, normalise) that returns the model's own input for one item.  It
   must be thread-safe.  ``ModelError`` here dead-letters that message only.
3. ``units(prepared)``: how many batch units the item costs (frames, or 1).
4. ``predict(batch)`` in the runner thread with several items; returns one
   JSON-serialisable dict per item, in order.  If it raises, the engine splits
   the batch to find the bad item and dead-letters only that one.
"""
from __future__ import annotations

from typing import Any, ClassVar, Protocol, Sequence, runtime_checkable

from sidepath.decoders.base import DecodeSpec, Media

__all__ = ["Model", "ModelBase"]


@runtime_checkable
class Model(Protocol):
    name: str
    version: str
    input_kind: str      # frames | audio
    batch_unit: str      # frame | clip
    max_batch: int

    def decode_spec(self) -> DecodeSpec: ...

    def load(self, device: Any) -> None: ...

    def prepare(self, media: Media) -> Any: ...

    def units(self, prepared: Any) -> int: ...

    def predict(self, batch: Sequence[Any]) -> list[dict[str, Any]]: ...


class ModelBase:
    """Convenience base: options as keyword arguments, sane defaults."""

    name: ClassVar[str] = "base"
    version: ClassVar[str] = "0"
    input_kind: ClassVar[str] = "frames"
    batch_unit: ClassVar[str] = "frame"
    #: option name -> (default, help); listed by ``sidepath models``.
    options: ClassVar[dict[str, tuple[Any, str]]] = {}

    def __init__(self, *, max_batch: int = 32, **options: Any) -> None:
        from sidepath.worker.errors import ConfigError

        unknown = set(options) - set(self.options)
        if unknown:
            key = sorted(unknown)[0]
            raise ConfigError(f"model.options.{key}", options[key],
                              f"model {self.name!r} takes only {sorted(self.options) or 'no options'}")
        self.max_batch = int(max_batch)
        self.opts = {k: options.get(k, default) for k, (default, _help) in self.options.items()}
        self.device: Any = "cpu"

    def decode_spec(self) -> DecodeSpec:
        return DecodeSpec(frames=self.input_kind == "frames", audio=self.input_kind == "audio")

    def load(self, device: Any) -> None:
        self.device = device

    def units(self, prepared: Any) -> int:
        if self.batch_unit == "frame" and hasattr(prepared, "shape"):
            return max(1, int(prepared.shape[0]))
        return 1
