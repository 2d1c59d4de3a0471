"""Beat tracking by dynamic programming (Ellis 2007), vectorised over the batch.

``C[t] = score[t] + max(0, max_tau C[t - tau] - tightness * log(tau / P[t])^2)``
with tau in [P[t]/2, 2 P[t]] and ``P[t]`` the local period.  Every predecessor
lies at least min(P)/2 frames back, so a block of that many frames depends only
on frames before the block: one strided view + add + max per block over the
whole batch, about 2T/P steps for T frames instead of T.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["dp_beats"]

TRIM_RADIUS = 2          # frames either side of a beat searched for its onset
TRIM_FRACTION = 0.1      # of the onset strength of the strong beats (90th percentile; a long
                         # silent intro must not drag the reference down)


def dp_beats(score: torch.Tensor, valid: torch.Tensor, period: torch.Tensor, tightness: float,
             onset: torch.Tensor | None = None) -> list[np.ndarray]:
    """Beat frames per clip (int arrays) for local ``score`` (B, T) and ``period`` (B, T) in frames.

    ``onset`` (default: ``score``) decides which leading and trailing beats have no onset.
    """
    bsz, n = score.shape
    device, dtype = score.device, score.dtype
    inside = torch.arange(n, device=device)[None, :] < valid[:, None]
    # padded frames must not shrink the block: give them the clip's largest period
    period = torch.where(inside, period, period.masked_fill(~inside, 0).amax(dim=1, keepdim=True))
    tau_min = torch.clamp(torch.round(period / 2), min=1)
    tau_max = torch.round(2 * period)
    lo, hi = int(tau_min.min()), int(tau_max.max())
    width = hi - lo + 1
    # candidate intervals, longest first, to match the sliding window over C below
    taus = torch.arange(hi, lo - 1, -1, device=device, dtype=dtype)
    penalty = -tightness * (torch.log(taus)[None, None, :] - torch.log(period)[..., None]) ** 2   # (B, T, K)
    allowed = (taus >= tau_min[..., None]) & (taus <= tau_max[..., None])
    penalty = penalty.masked_fill(~allowed, float("-inf"))
    # C with ``hi`` frames of -inf in front: links before the start are impossible
    cum = torch.full((bsz, hi + n), float("-inf"), device=device, dtype=dtype)
    best_all = torch.empty(bsz, n, device=device, dtype=dtype)
    arg_all = torch.empty(bsz, n, device=device, dtype=torch.long)
    block = lo
    for start in range(0, n, block):
        stop = min(start + block, n)
        # window l of the view holds C[t - hi .. t - lo] for t = start + l (C[x] sits at hi + x)
        view = cum[:, start:stop - 1 + width].unfold(-1, width, 1)
        best, arg = (view + penalty[:, start:stop]).max(dim=-1)
        best_all[:, start:stop] = best
        arg_all[:, start:stop] = arg
        cum[:, hi + start:hi + stop] = score[:, start:stop] + best.clamp(min=0)
    link = best_all > 0
    back = torch.where(link, torch.arange(n, device=device)[None, :] - taus.long()[arg_all], -1)
    cum_np, back_np = cum[:, hi:].cpu().numpy(), back.cpu().numpy()
    onset_np = (score if onset is None else onset).cpu().numpy()
    valid_np, period_np = valid.cpu().numpy(), period.cpu().numpy()
    out: list[np.ndarray] = []
    for b in range(bsz):
        end = int(valid_np[b])
        first = max(0, end - int(round(period_np[b, end - 1])))
        t = first + int(np.argmax(cum_np[b, first:end]))
        beats = []
        while t >= 0:
            beats.append(t)
            t = int(back_np[b, t])
        out.append(_trim(np.array(beats[::-1], dtype=np.int64), onset_np[b, :end]))
    return out


def _trim(beats: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Drop leading and trailing beats with no onset near them.

    Along a perfectly periodic chain the DP loses nothing by carrying on, so it
    extrapolates beats into a silent intro or outro; cut them.
    """
    if beats.size == 0:
        return beats
    lo = np.clip(beats - TRIM_RADIUS, 0, score.size - 1)
    hi = np.clip(beats + TRIM_RADIUS + 1, 1, score.size)
    strength = np.array([score[a:b].max() for a, b in zip(lo, hi)])
    strong = np.flatnonzero(strength >= TRIM_FRACTION * np.percentile(strength, 90))
    if strong.size == 0:
        return beats[:0]
    return beats[strong[0]:strong[-1] + 1]
