"""The model contract.

A model declares what it needs (``input_kind``: ``frames`` for video frames or
an image, ``audio`` for a soundtrack), how the batcher should count work
(``batch_unit``: ``frame`` or ``clip``) and how much fits one call
(``max_batch``).  The engine calls, in this order:

1. ``load(device)`` once at start, then ``warmup()``, in the runner thread.  A
   bad model file raises ``FatalError``: the worker exits with one line.
2. ``prepare(media)`` per message in a decode-pool thread: CPU preprocessing
   (resize, normalise) that returns the model's own input for one item.  It
   must be thread-safe.  ``ModelError`` here dead-letters that message only.
3. ``units(prepared)``: how many batch units the item costs (frames, or 1).
4. ``predict(batch)`` in the runner thread with several items; returns one
   JSON-serialisable dict per item, in order.  If it raises, the engine splits
   the batch to find the bad item and dead-letters only that one.

Several instances of one model may run in one process (one runner thread
each, on their own CUDA stream): instances share no mutable state.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

from sidepath.core.errors import ConfigError
from sidepath.decoders.base import DecodeSpec, Media
from sidepath.models.device import PRECISIONS, resolve_precision
from sidepath.models.staging import HostStager, Staged

__all__ = ["Model", "ModelBase"]

log = logging.getLogger(__name__)


@runtime_checkable
class Model(Protocol):
    name: str
    version: str
    input_kind: str      # frames | audio
    batch_unit: str      # frame | clip
    max_batch: int

    def decode_spec(self) -> DecodeSpec: ...

    def load(self, device: Any) -> None: ...

    def warmup(self) -> None: ...

    def prepare(self, media: Media) -> Any: ...

    def units(self, prepared: Any) -> int: ...

    def predict(self, batch: Sequence[Any]) -> list[dict[str, Any]]: ...


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _coerce_option(model: str, key: str, value: Any, default: Any, help_: str) -> Any:
    """Options set through SIDEPATH_* variables arrive as strings: convert scalars to the default's type."""
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    try:
        if isinstance(default, bool):
            if value.strip().lower() not in _TRUE + _FALSE:
                raise ValueError(value)
            return value.strip().lower() in _TRUE
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        raise ConfigError(f"model.options.{key}", value,
                          f"model {model!r} expects a {type(default).__name__} here ({help_})") from None
    return value


class ModelBase:
    """Convenience base: options as keyword arguments, device, precision, inference context.

    Subclasses set ``options`` (name -> (default, help)), read ``self.opts``,
    build their network in ``load`` after calling ``super().load(device)`` and
    run it inside ``with self.inference():``.
    """

    name: str = "base"
    version: str = "0"
    input_kind: ClassVar[str] = "frames"
    batch_unit: ClassVar[str] = "frame"
    #: option name -> (default, help); listed by ``sidepath models``.
    options: ClassVar[dict[str, tuple[Any, str]]] = {}
    #: may reduced precision be used at all?  (False for models whose outputs
    #: are thresholded, such as hashes: they always run fp32)
    half_ok: ClassVar[bool] = True
    #: reduced precision by ``autocast`` (eager modules) or by casting weights
    #: and inputs (``cast``: TorchScript, where autocast does not reach inside)
    precision_mode: ClassVar[str] = "autocast"
    #: measure the best batch size at warm-up: auto | on | off (see models/batching.py);
    #: models that honour it (frame models) run the network in chunks of ``effective_max_batch``
    batch_tuning: str = "auto"

    device: torch.device
    max_batch: int
    effective_max_batch: int           # frames/clips per forward pass (<= max_batch; set by warm-up)
    dtype: torch.dtype                 # the compute dtype, known after load()
    stream: Any                        # this instance's CUDA stream (None on CPU)

    def __init__(self, *, max_batch: int = 32, precision: str = "auto", **options: Any) -> None:
        unknown = set(options) - set(self.options)
        if unknown:
            key = sorted(unknown)[0]
            raise ConfigError(f"model.options.{key}", options[key],
                              f"model {self.name!r} takes only {sorted(self.options) or 'no options'}")
        if precision not in PRECISIONS:
            raise ConfigError("model.precision", precision, f"use one of {', '.join(PRECISIONS)}")
        if int(max_batch) < 1:
            raise ConfigError("model.max_batch", max_batch, "must be greater than 0")
        self.max_batch = int(max_batch)
        self.effective_max_batch = self.max_batch      # frame models' warm-up may lower it
        self.precision = precision
        self.opts = {k: _coerce_option(self.name, k, options[k], default, help_) if k in options else default
                     for k, (default, help_) in self.options.items()}
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.stream = None
        self.stager: HostStager | None = None

    # -- lifecycle ---------------------------------------------------------
    def decode_spec(self) -> DecodeSpec:
        return DecodeSpec(frames=self.input_kind == "frames", audio=self.input_kind == "audio")

    def load(self, device: Any) -> None:
        """Pick the device, the compute dtype and (on CUDA) this instance's own streams."""
        self.device = torch.device(device)
        self.dtype = resolve_precision(self.precision, self.device, half_ok=self.half_ok)
        if not self.half_ok and self.dtype != torch.float32:
            log.info("model %s needs fp32; precision %s ignored", self.name, self.precision)
            self.dtype = torch.float32
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            self.stream = torch.cuda.Stream(self.device)
        self.stager = HostStager(self.device)

    def warmup(self) -> None:
        """One full batch of blank input, so the first real message does not pay for
        lazy initialisation (allocator growth, kernel selection)."""
        t0 = time.monotonic()
        spec = self.decode_spec()
        if self.batch_unit == "frame":
            items = [self._blank_media(spec, frames=self.max_batch)]
        else:
            items = [self._blank_media(spec, frames=1) for _ in range(self.max_batch)]
        self.predict([self.prepare(m) for m in items])
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        log.info("model %s %s warmed up on %s (%s) in %.2f s", self.name, self.version, self.device,
                 str(self.dtype).replace("torch.", ""), time.monotonic() - t0)

    @staticmethod
    def _blank_media(spec: DecodeSpec, *, frames: int) -> Media:
        side = 64
        pixels = np.zeros((frames, side, side, 3), np.uint8) if spec.frames else None
        audio = np.zeros(spec.sample_rate, np.float32) if spec.audio else None
        return Media(frames=pixels, timestamps_s=tuple(float(i) for i in range(frames)) if spec.frames else (),
                     audio=audio, sample_rate=spec.sample_rate if spec.audio else None,
                     kind="video" if spec.frames else "audio")

    def prepare(self, media: Media) -> Any:
        raise NotImplementedError

    def predict(self, batch: Sequence[Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def units(self, prepared: Any) -> int:
        if self.batch_unit == "frame" and hasattr(prepared, "shape"):
            return max(1, int(prepared.shape[0]))
        return 1

    # -- helpers for subclasses ---------------------------------------------
    def place(self, module: torch.nn.Module, *, channels_last: bool = False) -> torch.nn.Module:
        """Move a network to this instance's device (and dtype in ``cast`` mode), frozen."""
        if hasattr(module, "eval") and not isinstance(module, torch.fx.GraphModule):
            module.eval()      # exported programs refuse eval(); they are exported in eval mode
        module = module.to(self.device)
        if self.precision_mode == "cast" and self.dtype != torch.float32:
            module = module.to(self.dtype)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        for p in module.parameters():
            p.requires_grad_(False)
        self._settle()
        return module

    def upload(self, array: np.ndarray) -> Staged:
        """Copy a host array to the device (pinned, non-blocking on CUDA; in place on CPU)."""
        if self.stager is None:
            self.stager = HostStager(self.device)
        return self.stager.upload(array)

    def _settle(self) -> None:
        """Finish work queued on the default stream (weights, constants) before this
        instance's own stream reads the tensors it produced."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """This instance's stream, ``inference_mode`` and (on CUDA, autocast mode) mixed precision."""
        with contextlib.ExitStack() as stack:
            if self.stream is not None:
                stack.enter_context(torch.cuda.stream(self.stream))
            stack.enter_context(torch.inference_mode())
            if self.device.type == "cuda" and self.dtype != torch.float32 and self.precision_mode == "autocast":
                stack.enter_context(torch.autocast("cuda", dtype=self.dtype))
            yield
