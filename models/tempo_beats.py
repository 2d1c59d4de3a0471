"""Beat tracking by dynamic programming (Ellis 2007), vectorised over the batch.

``C[t] = score[t] + max(0, max_tau C[t - tau] - tightness * log(tau / P[t])^2)``
with tau in [P[t]/2, 2 P[t]] and ``P[t]`` the local period.  Every predecessor
lies at least min(P)/2 frames back, so a block of that many frames depends only
on frames before the block: one gather + max per block over the whole batch,
about 2T/P steps for T frames instead of T.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["dp_beats"]


def dp_beats(score: torch.Tensor, valid: torch.Tensor, period: torch.Tensor, tightness: float) -> list[np.ndarray]:
    """Beat frames per clip (int arrays) for local ``score`` (B, T) and ``period`` (B, T) in frames."""
    bsz, n = score.shape
    device, dtype = score.device, score.dtype
    inside = torch.arange(n, device=device)[None, :] < valid[:, None]
    # padded frames must not shrink the block: give them the clip's largest period
    period = torch.where(inside, period, period.masked_fill(~inside, 0).amax(dim=1, keepdim=True))
    tau_min = torch.clamp(torch.round(period / 2), min=1)
    tau_max = torch.round(2 * period)
    k_max = int(tau_max.max())
    taus = torch.arange(1, k_max + 1, device=device, dtype=dtype)
    log_taus = torch.log(taus)
    cum = torch.zeros(bsz, n, device=device, dtype=dtype)
    back = torch.full((bsz, n), -1, device=device, dtype=torch.long)
    block = max(1, int(tau_min.min()))
    for start in range(0, n, block):
        t = torch.arange(start, min(start + block, n), device=device)
        p = period[:, t]                                                     # (B, L)
        penalty = -tightness * (log_taus[None, None, :] - torch.log(p)[..., None]) ** 2
        allowed = (taus >= tau_min[:, t, None]) & (taus <= tau_max[:, t, None])
        src = t[:, None] - taus.long()[None, :]                              # (L, K)
        allowed = allowed & (src >= 0)[None]
        cand = (cum[:, src.clamp(min=0)] + penalty).masked_fill(~allowed, float("-inf"))
        best, arg = cand.max(dim=-1)                                         # (B, L)
        link = best > 0
        cum[:, t] = score[:, t] + torch.where(link, best, torch.zeros_like(best))
        back[:, t] = torch.where(link, t[None, :] - 1 - arg, torch.full_like(arg, -1))
    cum_np, back_np = cum.cpu().numpy(), back.cpu().numpy()
    valid_np, period_np = valid.cpu().numpy(), period.cpu().numpy()
    out: list[np.ndarray] = []
    for b in range(bsz):
        end = int(valid_np[b])
        lo = max(0, end - int(round(period_np[b, end - 1])))
        t = lo + int(np.argmax(cum_np[b, lo:end]))
        beats = []
        while t >= 0:
            beats.append(t)
            t = int(back_np[b, t])
        out.append(np.array(beats[::-1], dtype=np.int64))
    return out
