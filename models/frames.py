"""FrameModel: the base for models that look at video frames or images.

Several messages' frames go through the network as one tensor batch:

    prepare (decode thread)   resize every frame to the input size, uint8
    stage   (runner thread)   concatenate the items' frames, upload (pinned, async on CUDA)
    run     (runner thread)   normalise on the device, forward, per-frame head (in chunks
                              of ``effective_max_batch`` frames, measured at warm-up:
                              models/batching.py), split the rows back per item,
                              summarise each item

``predict(batch)`` is ``run(stage(batch))``.  A runner that calls
``stage`` for the next batch before ``run`` of the current one overlaps the
copy with the compute (see bench/gpu_models.py).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sidepath.core.errors import ModelError
from sidepath.decoders.base import DecodeSpec, Media
from sidepath.models.base import ModelBase
from sidepath.models.preprocess import resize_frames
from sidepath.models.staging import Staged

__all__ = ["FrameModel", "PreparedFrames", "StagedBatch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PreparedFrames:
    """One message's frames at the model's input size."""

    pixels: np.ndarray                  # (n, h, w, 3) uint8 RGB, C-contiguous
    timestamps_s: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.pixels.shape)

    def __len__(self) -> int:
        return int(self.pixels.shape[0])


@dataclass(frozen=True, slots=True)
class StagedBatch:
    items: tuple[PreparedFrames, ...]
    staged: Staged


class FrameModel(ModelBase):
    """Subclasses implement ``forward`` (and usually ``summarise``); the rest is shared."""

    input_kind = "frames"
    batch_unit = "frame"

    #: preprocessing; subclasses set these from their options in ``__init__``
    input_size: tuple[int, int] = (224, 224)      # (height, width)
    resize_mode: str = "letterbox"
    mean: tuple[float, ...] | None = (0.485, 0.456, 0.406)    # on the 0..1 scale
    std: tuple[float, ...] | None = (0.229, 0.224, 0.225)
    channel_order: str = "RGB"
    channels_last: bool = False

    def decode_spec(self) -> DecodeSpec:
        # decoders may shrink big frames early: twice the input side keeps enough detail
        return DecodeSpec(frames=True, audio=False, max_side=2 * max(self.input_size))

    def load(self, device: Any) -> None:
        super().load(device)
        scale = torch.full((3,), 1 / 255.0) if self.std is None else 1 / (255.0 * torch.tensor(self.std))
        shift = torch.zeros(3) if self.mean is None else -torch.tensor(self.mean) / \
            (torch.ones(3) if self.std is None else torch.tensor(self.std))
        self._scale = scale.view(1, 3, 1, 1).to(self.device)
        self._shift = shift.view(1, 3, 1, 1).to(self.device)
        self._settle()

    def warmup(self) -> None:
        super().warmup()
        mode = self.batch_tuning
        if mode == "on" or (mode == "auto" and self.device.type == "cpu"):
            self.tune_batch()

    def tune_batch(self, *, rounds: int = 5, budget_s: float = 2.0) -> int:
        """Time the forward path at batch 1, 2, 4, ... max_batch; run chunks of the best size."""
        from sidepath.models.batching import batch_sizes, choose_batch, time_batches

        t0 = time.monotonic()
        blank = self.prepare(self._blank_media(self.decode_spec(), frames=self.max_batch))
        saved = self.effective_max_batch
        self.effective_max_batch = self.max_batch      # measure each size whole, not in chunks

        def run(b: int) -> None:
            self.predict([PreparedFrames(blank.pixels[:b], blank.timestamps_s[:b])])
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)

        try:
            run(1)                        # first calls at a new size pay for kernel selection
            timings = time_batches(run, batch_sizes(self.max_batch), rounds=rounds, budget_s=budget_s)
        except Exception as exc:  # noqa: BLE001 - e.g. a model file exported for one fixed batch size
            self.effective_max_batch = saved
            log.warning("model %s: batch sizes below max_batch %d failed (%s); the network takes whole batches",
                        self.name, self.max_batch, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
            return self.effective_max_batch
        self.effective_max_batch = choose_batch(timings)
        log.info("model %s: network batch %d of max_batch %d (frames/s by batch: %s; measured in %.2f s)",
                 self.name, self.effective_max_batch, self.max_batch,
                 ", ".join(f"{b}: {b / s:.0f}" for b, s in sorted(timings.items())), time.monotonic() - t0)
        return self.effective_max_batch

    # -- decode thread ------------------------------------------------------
    def prepare(self, media: Media) -> PreparedFrames:
        frames = media.frames
        if frames is None or len(frames) == 0:
            raise ModelError(f"model {self.name} needs video or image frames but the {media.kind} "
                             "message has none; send a video or image")
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ModelError(f"model {self.name} needs RGB uint8 frames (N, H, W, 3), got "
                             f"{frames.dtype} {tuple(frames.shape)}")
        ts = tuple(media.timestamps_s) if len(media.timestamps_s) == len(frames) \
            else tuple(float(i) for i in range(len(frames)))
        return PreparedFrames(resize_frames(frames, self.input_size, self.resize_mode), ts)

    # -- runner thread ------------------------------------------------------
    def predict(self, batch: Sequence[PreparedFrames]) -> list[dict[str, Any]]:
        return self.run(self.stage(batch))

    def stage(self, batch: Sequence[PreparedFrames]) -> StagedBatch:
        items = tuple(batch)
        pixels = items[0].pixels if len(items) == 1 else np.concatenate([p.pixels for p in items])
        return StagedBatch(items, self.upload(pixels))

    def run(self, staged: StagedBatch) -> list[dict[str, Any]]:
        with self.inference():
            pixels = staged.staged.wait(self.stream)
            # the network takes at most effective_max_batch frames at a time (measured at warm-up;
            # on CPU a whole batch of 32 runs slower per frame than chunks of a few): each frame's
            # row depends only on that frame, so the chunking does not change the outputs
            step = max(1, self.effective_max_batch)
            rows = np.concatenate([self.head(self.forward(self.normalize(pixels[i:i + step]))).float().cpu().numpy()
                                   for i in range(0, int(pixels.shape[0]), step)])
        out, start = [], 0
        for item in staged.items:
            n = len(item)
            item_rows = rows[start:start + n]
            if not np.isfinite(item_rows).all():
                # NaN/inf is not JSON and means nothing downstream: fail (the engine isolates the item)
                raise ModelError(f"model {self.name} produced non-finite outputs (NaN or inf) for an item of "
                                 f"{n} frames")
            out.append(self.summarise(item_rows, item))
            start += n
        return out

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, h, w, 3) uint8 on the device -> (N, 3, h, w) float, mean/std, channel order, layout."""
        x = pixels.permute(0, 3, 1, 2)        # a view: NCHW shape with channels_last strides
        if self.channel_order == "BGR":
            x = x.flip(1)
        dtype = self.dtype if self.precision_mode == "cast" else torch.float32
        x = x.to(dtype) * self._scale.to(dtype) + self._shift.to(dtype)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=memory_format)

    # -- to implement -------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) normalised frames -> (N, ...) raw outputs."""
        raise NotImplementedError

    def head(self, raw: torch.Tensor) -> torch.Tensor:
        """(N, ...) raw outputs -> (N, D) per-frame rows; default: flattened as they are."""
        return raw.float().reshape(raw.shape[0], -1)

    def summarise(self, rows: np.ndarray, item: PreparedFrames) -> dict[str, Any]:
        """(n, D) rows of one item -> its JSON result."""
        from sidepath.models.outputs import floats

        return {"frames": len(item), "values": floats(rows.mean(axis=0))}
