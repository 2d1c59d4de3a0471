"""``fingerprint``: a perceptual hash of every frame and of the whole video, for near-duplicates.

Per frame (on the device, over the whole batch): grayscale 32x32, 2-D DCT as
two matrix products, the top-left 8x8 low frequencies, each bit set where the
coefficient exceeds the median of the 63 AC coefficients (DC excluded from the
median).  The video hash thresholds the mean of the frames' 8x8 blocks the same
way.  Re-encoding, resizing or mild colour changes flip few of the 64 bits;
different content flips about half.  Compare with ``hamming_distance``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from sidepath.models.frames import FrameModel, PreparedFrames

__all__ = ["FingerprintModel", "dct_matrix", "hamming_distance", "frame_set_distance", "HASH_BITS"]

HASH_BITS = 64
_SIDE, _LOW = 32, 8


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix D (n, n): coefficients of a block X are D @ X @ D.T."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d.float()


def _bits(blocks: torch.Tensor) -> torch.Tensor:
    """(N, 64) low-frequency coefficients -> (N, 64) bits, thresholded at the AC median."""
    median = blocks[:, 1:].median(dim=1, keepdim=True).values
    return blocks > median


def _hex(bits: np.ndarray) -> str:
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def hamming_distance(a: str, b: str) -> int:
    """Bits that differ between two hex hashes (0 = identical, ~32 = unrelated for 64 bits)."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def frame_set_distance(a: Sequence[str], b: Sequence[str]) -> float:
    """Mean over frames of the distance to the closest frame of the other video, both ways.

    Robust to different frame counts and small time shifts, where comparing
    frame i with frame i is not.
    """
    if not a or not b:
        raise ValueError("both videos need at least one frame hash")
    ab = [min(hamming_distance(x, y) for y in b) for x in a]
    ba = [min(hamming_distance(y, x) for x in a) for y in b]
    return (sum(ab) / len(ab) + sum(ba) / len(ba)) / 2


class FingerprintModel(FrameModel):
    name = "fingerprint"
    version = "1"
    options: ClassVar[dict[str, tuple[Any, str]]] = {}
    half_ok = False                      # thresholded outputs: always fp32
    input_size = (_SIDE, _SIDE)
    resize_mode = "stretch"              # the hash looks at the whole frame, aspect ignored
    mean = None
    std = None

    def load(self, device: Any) -> None:
        super().load(device)
        self._dct = dct_matrix(_SIDE).to(self.device)
        self._gray = torch.tensor([0.299, 0.587, 0.114], device=self.device).view(1, 3, 1, 1)
        self._settle()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gray = (x.float() * self._gray).sum(dim=1)                     # (N, 32, 32)
        coeffs = self._dct @ gray @ self._dct.T                        # (N, 32, 32)
        return coeffs[:, :_LOW, :_LOW].reshape(x.shape[0], _LOW * _LOW)

    def head(self, raw: torch.Tensor) -> torch.Tensor:
        # rows: 64 bits, then the 64 coefficients the video hash is built from
        return torch.cat([_bits(raw).float(), raw.float()], dim=1)

    def summarise(self, rows: np.ndarray, item: PreparedFrames) -> dict[str, Any]:
        bits, blocks = rows[:, :HASH_BITS] > 0.5, rows[:, HASH_BITS:]
        video_bits = _bits(torch.from_numpy(blocks.mean(axis=0, keepdims=True))).numpy()[0]
        return {
            "hash": _hex(video_bits),
            "frame_hashes": [_hex(b) for b in bits],
            "timestamps_s": [round(float(t), 3) for t in item.timestamps_s],
            "frames": len(item),
            "bits": HASH_BITS,
        }
