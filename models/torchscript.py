"""``torchscript``: run a user's own exported model over video frames or images.

The model file is a TorchScript archive (``torch.jit.script/trace(...).save``),
a ``torch.export`` program (``.pt2``, exported with a dynamic batch dimension)
or the manifest of its parts (``sidepath model split``).  It receives a float
batch (N, 3, H, W) built from the options below and returns (N, ...) outputs
(or a tuple / dict of them: ``output`` picks one); ``postprocess`` and
``aggregate`` turn them into one result per message.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sidepath.core.errors import ConfigError, FatalError, ModelError
from sidepath.models.frames import FrameModel, PreparedFrames
from sidepath.models.model_file import load_program, parse_sha256
from sidepath.models.outputs import AGGREGATES, POSTPROCESS, head, summarise
from sidepath.models.preprocess import RESIZE_MODES, parse_size

__all__ = ["TorchScriptModel"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"model.options.{key}", value, f"use one of {', '.join(choices)}")
    return str(value)


def _triple(key: str, value: Any, *, positive: bool) -> tuple[float, float, float]:
    try:
        values = json.loads(value) if isinstance(value, str) else value
        values = [float(values)] * 3 if isinstance(values, (int, float)) else [float(v) for v in values]
        if len(values) == 1:
            values *= 3
        if len(values) != 3 or (positive and min(values) <= 0):
            raise ValueError
    except (TypeError, ValueError):
        rule = "three numbers > 0" if positive else "three numbers"
        raise ConfigError(f"model.options.{key}", value, f"use {rule} on the 0..1 pixel scale, "
                          "e.g. [0.485, 0.456, 0.406]") from None
    return values[0], values[1], values[2]


def _labels(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    text = str(value or "").strip()
    if not text:
        return ()
    if text.startswith("["):
        try:
            return tuple(str(v) for v in json.loads(text))
        except ValueError:
            raise ConfigError("model.options.labels", text, "not a JSON list; use [\"cat\", \"dog\"] "
                              "or the path of a text file with one label per line") from None
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError("model.options.labels", text, "labels file not found; give a text file with one "
                          "label per line, or a list")
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())


class TorchScriptModel(FrameModel):
    name = "torchscript"
    version = "1"
    precision_mode = "cast"       # autocast does not reach inside a scripted graph
    options = {
        "path": ("", "TorchScript (.pt), torch.export (.pt2) file, or a parts manifest (.manifest.json)"),
        "name": ("", "model name in results (default torchscript); give each model of one worker its own"),
        "version": ("", "model_version in results (default sha256:<first 12 hex of the file>)"),
        "sha256": ("", "expected SHA-256 of the model file (the merged file, for a manifest): checked before "
                       "loading; empty = not checked"),
        "input_size": ("224", "input in pixels: 224 or HxW such as 256x192"),
        "resize": ("letterbox", "letterbox (pad, keep aspect) | stretch | crop (centre)"),
        "mean": ([0.485, 0.456, 0.406], "per-channel mean on the 0..1 scale, subtracted"),
        "std": ([0.229, 0.224, 0.225], "per-channel std on the 0..1 scale; [1, 1, 1] feeds plain 0..1 pixels"),
        "channel_order": ("RGB", "RGB | BGR (OpenCV-trained models)"),
        "channels_last": (False, "NHWC memory layout (faster convolutions on tensor-core GPUs)"),
        "postprocess": ("softmax", "softmax (classes, with labels) | regression (raw values) | embedding (L2)"),
        "labels": ("", "class names: a list, or a text file with one per line"),
        "top_k": (5, "classes listed per result (softmax)"),
        "all_scores": (False, "also list every class probability (softmax)"),
        "aggregate": ("mean", "per video: mean | max | median | frames (one entry per frame)"),
        "output": ("", "when the model returns a tuple or dict: its index or key (default: the first)"),
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        o = self.opts
        if not str(o["path"]).strip():
            raise ConfigError("model.options.path", o["path"], "the torchscript model needs the path of your "
                              "model file (TorchScript .pt, torch.export .pt2 or a parts manifest)")
        if o["name"]:
            if not _NAME.match(str(o["name"])):
                raise ConfigError("model.options.name", o["name"], "use letters, digits, '_', '.', '-' (max 64)")
            self.name = str(o["name"])
        self.input_size = parse_size(o["input_size"], key="model.options.input_size")
        self.resize_mode = _choice("resize", o["resize"], RESIZE_MODES)
        self.mean = _triple("mean", o["mean"], positive=False)
        self.std = _triple("std", o["std"], positive=True)
        self.channel_order = _choice("channel_order", str(o["channel_order"]).upper(), ("RGB", "BGR"))
        self.channels_last = bool(o["channels_last"])
        self.postprocess = _choice("postprocess", o["postprocess"], POSTPROCESS)
        self.aggregate = _choice("aggregate", o["aggregate"], AGGREGATES)
        self.labels = _labels(o["labels"])
        self.top_k = int(o["top_k"])
        if self.top_k < 1:
            raise ConfigError("model.options.top_k", o["top_k"], "must be 1 or more")
        self.module: Any = None
        self.path = Path(str(o["path"])).expanduser()
        self.sha256 = parse_sha256(o["sha256"])

    def load(self, device: Any) -> None:
        super().load(device)
        program = load_program(self.path, self.device, sha256=self.sha256)
        self.module = self.place(program.module, channels_last=self.channels_last)
        self.version = str(self.opts["version"]) or f"sha256:{program.sha256[:12]}"
        log.info("loaded %s model %s (%s) as %s version %s", program.kind, self.path,
                 f"{self.input_size[0]}x{self.input_size[1]} {self.channel_order}", self.name, self.version)

    def warmup(self) -> None:
        try:
            super().warmup()
        except Exception as exc:  # noqa: BLE001 - a model that cannot run a blank batch is unusable
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise FatalError(f"model file {self.path} failed on a warm-up batch of {self.max_batch} frames of "
                             f"{self.input_size[0]}x{self.input_size[1]} ({text}); check input_size and output, "
                             "and export .pt2 files with a dynamic batch dimension") from None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x)
        key = self.opts["output"]
        if isinstance(out, (tuple, list)):
            out = out[int(key) if str(key).strip() else 0]
        elif isinstance(out, dict):
            out = out[key] if key else next(iter(out.values()))
        if not isinstance(out, torch.Tensor) or out.ndim < 1 or out.shape[0] != x.shape[0]:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelError(f"model {self.name} returned {shape} for a batch of {x.shape[0]}; "
                             "it must return (N, ...) with one row per frame")
        return out

    def head(self, raw: torch.Tensor) -> torch.Tensor:
        return head(raw, self.postprocess)

    def summarise(self, rows: np.ndarray, item: PreparedFrames) -> dict[str, Any]:
        return summarise(rows, item.timestamps_s, postprocess=self.postprocess, how=self.aggregate,
                         labels=self.labels, top_k=self.top_k, all_scores=bool(self.opts["all_scores"]))
