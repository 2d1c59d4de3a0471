"""Is there a pulse at all?  Confidence and the no-beat gate.

A dynamic-programming tracker always emits beats, so the decision comes first,
from two level-independent measures of the onset envelope:

- *metrical periodicity*: the mean of its unbiased, mean-removed
  autocorrelation at one, two and four periods (clamped at 0).  Music repeats
  at several metrical levels; speech and rain at most by chance at one.
- *sharpness*: the 99th percentile over the median (the 99th, because a click
  every 1.5 s is onsets in only 2% of the frames).  Noise, pads and legato
  strings give a flat envelope (up to 2.4); anything with attacks gives 3.7+.

``confidence = periodicity * clamp(sharpness - 2.6, 0, 1)``, and a clip whose
confidence is under the threshold, or whose peak is under -60 dBFS, gets no
tempo and no beats.
"""
from __future__ import annotations

import torch

from .tempo_masked import masked_mean

__all__ = ["periodicity_at", "sharpness", "peak_db", "confidence"]

SPARSE_SHARPNESS = 100.0
FLAT_SHARPNESS = 2.6        # noise and pads measure up to 2.4, legato strings 1.7-1.8
SHARPNESS_RAMP = 1.0        # speech measures 3.7 and more, music with attacks 5.8 and more


def _acf_unbiased(x: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    centred = (x - masked_mean(x, mask)[:, None]) * mask
    n = x.shape[-1]
    spec = torch.fft.rfft(centred, n=2 * n)
    acf = torch.fft.irfft(spec.real.square() + spec.imag.square(), n=2 * n)[..., :n]
    lags = torch.arange(n, device=x.device)
    acf = acf / (valid[:, None] - lags[None, :]).clamp(min=1)
    return acf / acf[:, :1].clamp(min=1e-10)


def periodicity_at(env: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor, period: torch.Tensor,
                   multiples: tuple[int, ...] = (1, 2, 4)) -> torch.Tensor:
    """Mean over ``multiples`` of the autocorrelation at k * period (best of the nearest three lags)."""
    acf = _acf_unbiased(env, mask, valid)
    n = acf.shape[-1]
    # lags at or beyond half the clip rest on too few frame pairs to mean anything
    usable = (valid // 2).clamp(min=2)
    total = torch.zeros_like(period)
    count = torch.zeros_like(period)
    for k in multiples:
        lag = (k * period).round().long()
        near = torch.stack([acf.gather(-1, (lag + d).clamp(1, n - 1)[:, None])[:, 0] for d in (-1, 0, 1)])
        ok = lag < usable
        total = total + torch.where(ok, near.amax(dim=0).clamp(min=0), torch.zeros_like(period))
        count = count + ok.to(period.dtype)
    return total / count.clamp(min=1)


def sharpness(env: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    ordered = env.masked_fill(~mask, float("inf")).sort(dim=-1).values
    last = (valid - 1).clamp(min=0).to(env.dtype)
    q99 = ordered.gather(-1, (last * 0.99).long()[:, None])[:, 0]
    q50 = ordered.gather(-1, (last * 0.5).long()[:, None])[:, 0]
    peak = env.masked_fill(~mask, 0).amax(dim=-1)
    # an envelope that is zero most of the time (clicks over digital silence) is as sharp as it gets
    sparse = torch.full_like(q99, SPARSE_SHARPNESS)
    return torch.where(q50 > 0, q99 / q50.clamp(min=1e-12), torch.where(peak > 0, sparse, torch.zeros_like(q99)))


def peak_db(audio: torch.Tensor) -> torch.Tensor:
    """Peak level in dBFS of each clip (the padding is zeros and cannot raise it)."""
    return 20.0 * torch.log10(audio.abs().amax(dim=-1) + 1e-12)


def confidence(periodicity: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
    return periodicity.clamp(0, 1) * ((sharp - FLAT_SHARPNESS) / SHARPNESS_RAMP).clamp(0, 1)
