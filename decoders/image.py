"""Batched image helpers for model preprocessing: resize, letterbox, crop, normalise.

All take frames as RGB uint8 ``(N, H, W, 3)`` (what ``Media.frames`` holds) and
return a new array; they are thread-safe and OpenCV releases the GIL while it
resizes, so a model's ``prepare`` may call them from the decode threads.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["resize_letterbox", "resize_max_side", "resize_center_crop", "to_float_chw", "scaled_size",
           "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check(frames: np.ndarray) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = getattr(frames, "shape", type(frames).__name__)
        raise ValueError(f"expected RGB frames of shape (N, H, W, 3), got {shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {frames.dtype}")
    return frames


def _size_hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


def _interp(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> int:
    # INTER_AREA averages when shrinking (no aliasing); it degrades to nearest when enlarging
    return cv2.INTER_AREA if dst_hw[0] * dst_hw[1] < src_hw[0] * src_hw[1] else cv2.INTER_LINEAR


def _resize_all(frames: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    n, h, w = frames.shape[:3]
    if (h, w) == hw:
        return frames.copy()
    out = np.empty((n, hw[0], hw[1], 3), np.uint8)
    interp = _interp((h, w), hw)
    for i in range(n):
        out[i] = cv2.resize(frames[i], (hw[1], hw[0]), interpolation=interp)
    return out


def scaled_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(h, w) scaled down so that max(h, w) <= max_side, keeping the aspect ratio; never enlarged."""
    if max_side <= 0 or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_max_side(frames: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink frames so that their longer side is at most ``max_side`` (aspect kept)."""
    frames = _check(frames)
    return _resize_all(frames, scaled_size(frames.shape[1], frames.shape[2], max_side))


def resize_letterbox(frames: np.ndarray, size: int | Sequence[int], letterbox: bool = True,
                     pad_value: int = 0) -> np.ndarray:
    """Fit frames into ``size`` x ``size`` (or an (h, w) pair).

    With ``letterbox`` the aspect ratio is kept and the borders are filled with
    ``pad_value`` (the image is centred); without it the frames are stretched.
    """
    frames = _check(frames)
    th, tw = _size_hw(size)
    if not letterbox:
        return _resize_all(frames, (th, tw))
    n, h, w = frames.shape[:3]
    scale = min(th / h, tw / w)
    nh, nw = min(th, max(1, round(h * scale))), min(tw, max(1, round(w * scale)))
    out = np.full((n, th, tw, 3), pad_value, np.uint8)
    y0, x0 = (th - nh) // 2, (tw - nw) // 2
    out[:, y0:y0 + nh, x0:x0 + nw] = _resize_all(frames, (nh, nw))
    return out


def resize_center_crop(frames: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Resize so that the frames cover ``size`` then crop the centre (the usual classifier input)."""
    frames = _check(frames)
    th, tw = _size_hw(size)
    n, h, w = frames.shape[:3]
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    resized = _resize_all(frames, (nh, nw))
    y0, x0 = (nh - th) // 2, (nw - tw) // 2
    return np.ascontiguousarray(resized[:, y0:y0 + th, x0:x0 + tw])


def to_float_chw(frames: np.ndarray, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> np.ndarray:
    """float32 ``(N, 3, H, W)`` in [0, 1], then ``(x - mean) / std`` per channel when given."""
    frames = _check(frames)
    out = frames.astype(np.float32).transpose(0, 3, 1, 2) * np.float32(1 / 255)
    if mean is not None:
        out -= np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    if std is not None:
        out /= np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray(out)
