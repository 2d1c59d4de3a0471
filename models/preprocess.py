"""CPU preprocessing that runs in decode threads: resize frames to a model's input.

Frames stay uint8 here: normalising on the device moves four times fewer
bytes over PCIe than float32 would.  The decoders' resize helpers
(``sidepath.decoders.image``) do the work, so a model sees frames resized the
same way everywhere; OpenCV directly if that module is absent.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from sidepath.core.errors import ConfigError

__all__ = ["RESIZE_MODES", "parse_size", "resize_frames", "cv2_resize_frames"]

RESIZE_MODES = ("letterbox", "stretch", "crop")


def parse_size(value: Any, *, key: str) -> tuple[int, int]:
    """``224`` | ``"224"`` | ``"256x192"`` (height x width) | ``[256, 192]`` -> (height, width)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, (int, float)):
            h = w = int(value)
        elif isinstance(value, str):
            parts = value.lower().replace(" ", "").split("x")
            h, w = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
            if len(parts) > 2:
                raise ValueError
        else:
            h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(key, value, "use a size in pixels: 224, \"256x192\" (height x width) or [256, 192]") \
            from None
    if not (1 <= h <= 8192 and 1 <= w <= 8192):
        raise ConfigError(key, value, "each side must be between 1 and 8192 pixels")
    return h, w


def _interpolation(src: tuple[int, int], dst: tuple[int, int]) -> int:
    # area averaging when shrinking (no aliasing), bilinear when enlarging
    return cv2.INTER_AREA if dst[0] * dst[1] < src[0] * src[1] else cv2.INTER_LINEAR


def _cv2_frame(frame: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    h, w = size
    fh, fw = frame.shape[:2]
    if mode == "stretch":
        stretched: np.ndarray = cv2.resize(frame, (w, h), interpolation=_interpolation((fh, fw), (h, w)))
        return stretched
    scale = min(h / fh, w / fw) if mode == "letterbox" else max(h / fh, w / fw)
    if mode == "letterbox":
        nh, nw = min(h, max(1, round(fh * scale))), min(w, max(1, round(fw * scale)))
    else:
        nh, nw = max(h, round(fh * scale)), max(w, round(fw * scale))
    resized: np.ndarray = cv2.resize(frame, (nw, nh), interpolation=_interpolation((fh, fw), (nh, nw)))
    if mode == "crop":
        top, left = (nh - h) // 2, (nw - w) // 2
        return resized[top:top + h, left:left + w]
    out = np.zeros((h, w, 3), np.uint8)
    top, left = (h - nh) // 2, (w - nw) // 2
    out[top:top + nh, left:left + nw] = resized
    return out


def cv2_resize_frames(frames: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """The OpenCV fallback of ``resize_frames`` (used when the decoders' helpers are absent)."""
    out = np.empty((frames.shape[0], size[0], size[1], 3), np.uint8)
    for i, frame in enumerate(frames):
        out[i] = _cv2_frame(frame, size, mode)
    return out


def _decoders_resize() -> Callable[[np.ndarray, tuple[int, int], str], np.ndarray] | None:
    try:
        from sidepath.decoders.image import resize_center_crop, resize_letterbox
    except ImportError:
        return None

    def resize(frames: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
        if mode == "crop":
            return resize_center_crop(frames, size)
        return resize_letterbox(frames, size, letterbox=mode == "letterbox")

    return resize


_shared_resize = _decoders_resize()


def resize_frames(frames: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, h, w, 3) uint8, C-contiguous; ``size`` = (height, width)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; use one of {', '.join(RESIZE_MODES)}")
    if tuple(frames.shape[1:3]) == tuple(size):
        return np.ascontiguousarray(frames)
    resize = _shared_resize or cv2_resize_frames
    return np.ascontiguousarray(resize(frames, (int(size[0]), int(size[1])), mode))
