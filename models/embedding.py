"""``embedding``: a small convolutional embedding network with seeded weights.

No download: the weights come from a seeded generator, so every instance,
process and machine with the same (seed, width, dim) computes the same
vectors.  It is untrained: use it to exercise and measure the runtime, or as
the template of a real embedding model, not for semantic similarity.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from sidepath.core.errors import ConfigError
from sidepath.models.base import _coerce_option
from sidepath.models.frames import FrameModel, PreparedFrames
from sidepath.models.outputs import AGGREGATES, summarise
from sidepath.models.preprocess import parse_size

__all__ = ["EmbeddingNet", "seeded_embedding_net", "EmbeddingModel"]


class EmbeddingNet(nn.Module):
    """Four stride-2 3x3 conv + ReLU stages, global average pooling, a linear projection, L2 norm."""

    def __init__(self, *, dim: int = 128, width: int = 32) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans, chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.project = nn.Linear(chans[-1], dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.pool(self.features(x)).flatten(1)
        return nn.functional.normalize(self.project(z), dim=1)


def seeded_embedding_net(*, seed: int = 0, dim: int = 128, width: int = 32) -> EmbeddingNet:
    """He-normal weights from a private generator: deterministic, and thread-safe because
    the global RNG (torch.manual_seed) that other instances may be using is left alone."""
    gen = torch.Generator().manual_seed(int(seed))
    with torch.device("meta"):              # no default init: it would draw from the global RNG
        meta = EmbeddingNet(dim=dim, width=width)
    net: EmbeddingNet = meta.to_empty(device="cpu")
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * math.sqrt(2 / fan_in))
                if module.bias is not None:
                    module.bias.zero_()
    net.eval()
    return net


class EmbeddingModel(FrameModel):
    name = "embedding"
    version = "1"
    options = {
        "size": (224, "input side in pixels (frames are letterboxed to size x size)"),
        "dim": (128, "embedding dimension"),
        "width": (32, "channels of the first conv stage (doubles at each of 4 stages)"),
        "seed": (0, "weight seed; the same seed gives the same vectors everywhere"),
        "aggregate": ("mean", "per video: mean | max | median (re-normalised) | frames (one vector per frame)"),
        "channels_last": ("auto", "NHWC memory layout: true | false | auto (true on CPU, where oneDNN "
                                  "convolutions run it faster; false on CUDA)"),
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input_size = parse_size(self.opts["size"], key="model.options.size")
        for key in ("dim", "width"):
            if int(self.opts[key]) < 1:
                raise ConfigError(f"model.options.{key}", self.opts[key], "must be greater than 0")
        if self.opts["aggregate"] not in AGGREGATES:
            raise ConfigError("model.options.aggregate", self.opts["aggregate"], f"use one of {', '.join(AGGREGATES)}")
        cl = self.opts["channels_last"]
        self._channels_last_auto = isinstance(cl, str) and cl.strip().lower() == "auto"
        if not self._channels_last_auto:
            cl = _coerce_option(self.name, "channels_last", cl, False, "true, false or auto")
            if not isinstance(cl, bool):
                raise ConfigError("model.options.channels_last", cl, "use true, false or auto")
            self.channels_last = cl
        # results from different weights must not look like the same model version
        self.version = f"1-s{int(self.opts['seed'])}-w{int(self.opts['width'])}-d{int(self.opts['dim'])}"
        self.net: nn.Module | None = None

    def load(self, device: Any) -> None:
        super().load(device)
        if self._channels_last_auto:
            # NHWC on CPU: oneDNN's convolutions run it 1.2x (batch 1) to 2-3x (batch 16) faster than
            # NCHW in fp32 (docs/models.md); CUDA keeps NCHW, its old default, until measured there
            self.channels_last = self.device.type == "cpu"
        net = seeded_embedding_net(seed=int(self.opts["seed"]), dim=int(self.opts["dim"]),
                                   width=int(self.opts["width"]))
        self.net = self.place(net, channels_last=self.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.net is not None, "load() first"
        return self.net(x)

    def head(self, raw: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(raw.float(), dim=1)     # again in fp32 after autocast

    def summarise(self, rows: np.ndarray, item: PreparedFrames) -> dict[str, Any]:
        return summarise(rows, item.timestamps_s, postprocess="embedding", how=str(self.opts["aggregate"]))
