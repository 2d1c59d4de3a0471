"""Statistics over padded batches that ignore the padding.

A clip must give the same result alone or inside a batch of longer clips, so
every per-clip statistic (max, mean, std) is taken over its valid frames only.
"""
from __future__ import annotations

import torch

__all__ = ["frame_mask", "masked_max", "masked_mean", "masked_std"]


def frame_mask(valid: torch.Tensor, length: int) -> torch.Tensor:
    """(B, length) bool, True where the frame index is below ``valid`` (B,)."""
    return torch.arange(length, device=valid.device)[None, :] < valid[:, None]


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the last dim where ``mask``; ``-inf`` for an all-masked row."""
    return x.masked_fill(~mask, float("-inf")).amax(dim=-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    count = mask.sum(dim=-1).clamp(min=1)
    return (x * mask).sum(dim=-1) / count


def masked_std(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = masked_mean(x, mask)
    return masked_mean((x - mean[..., None]) ** 2, mask).sqrt()
