"""Tempo from the onset envelope: windowed autocorrelation with a tempo prior.

The tempogram is the autocorrelation of Hann-windowed stretches of the onset
envelope (FFT based), each normalised by its zero lag.  Averaged over the
windows that hold audio, it gives the global tempo: a log-normal prior around
``prior_bpm`` and a sum over the lag's multiples (the bar repeats the beat)
pick the metrical level; a parabola through the peak gives a sub-frame period,
without which a hop of 512 samples only offers 117.45 or 123.05 BPM near 120.
Window by window, a Viterbi path near the global period follows tempo ramps and
steps (``local_periods``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .tempo_masked import frame_mask

__all__ = ["PeriodConfig", "Tempogram", "tempogram", "pick_period", "local_periods"]


@dataclass(frozen=True, slots=True)
class PeriodConfig:
    window_s: float = 8.9
    min_bpm: float = 40.0
    max_bpm: float = 240.0
    prior_bpm: float = 120.0
    prior_octaves: float = 1.0
    harmonics: tuple[float, ...] = (1.0, 0.5, 0.5, 0.5)
    local_octaves: float = 0.45        # how far the local tempo may stray from the global one
    local_steps: int = 91
    change_cost: float = 4.0           # Viterbi cost per octave of tempo change between windows
    local: bool = True
    grid_steps: int = 512


@dataclass(frozen=True, slots=True)
class Tempogram:
    windows: torch.Tensor      # (B, W, win) normalised autocorrelation per window
    keep: torch.Tensor         # (B, W) float, 1 where the window centre lies inside the clip
    hop: int                   # frames between window centres
    mean: torch.Tensor         # (B, win) average over kept windows


def tempogram(env: torch.Tensor, valid: torch.Tensor, win: int, unbias: bool = False, smooth: float = 1.0) -> Tempogram:
    n = env.shape[-1]
    hop = max(1, win // 8)
    padded = torch.nn.functional.pad(env, (win // 2, win // 2 + hop))
    frames = padded.unfold(-1, win, hop)                               # (B, W, win)
    centers = torch.arange(frames.shape[1], device=env.device) * hop
    in_clip = frame_mask(valid, n).to(env.dtype)
    in_clip = torch.nn.functional.pad(in_clip, (0, max(0, int(centers[-1]) + 1 - n)))
    keep = in_clip[:, centers]
    taper = torch.hann_window(win, periodic=False, device=env.device, dtype=env.dtype)
    spec = torch.fft.rfft(frames * taper, n=2 * win)
    acf = torch.fft.irfft(spec.real.square() + spec.imag.square(), n=2 * win)[..., :win]
    if unbias:
        # the taper's own autocorrelation shrinks long lags; divide it out (up to half a window)
        tspec = torch.fft.rfft(taper, n=2 * win)
        tacf = torch.fft.irfft(tspec.real.square() + tspec.imag.square(), n=2 * win)[:win]
        tacf = (tacf / tacf[0]).clamp(min=float(tacf[win // 2] / tacf[0]))
        acf = acf / tacf
    acf = acf / acf[..., :1].clamp(min=1e-10)
    if smooth > 0:
        # peaks of impulsive music are a frame or two wide: smooth them so that fractional
        # lags (and their multiples) can be read off by interpolation
        radius = int(3 * smooth + 0.5)
        k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, device=env.device, dtype=env.dtype) / smooth) ** 2)
        k = (k / k.sum()).view(1, 1, -1)
        shape = acf.shape
        flat = torch.nn.functional.pad(acf.reshape(-1, 1, shape[-1]), (radius, radius), mode="replicate")
        acf = torch.nn.functional.conv1d(flat, k).reshape(shape)
    weight = keep / keep.sum(dim=1, keepdim=True).clamp(min=1)
    return Tempogram(acf, keep, hop, (acf * weight[..., None]).sum(dim=1))


def _harmonic_sum(acf: torch.Tensor, lags: torch.Tensor, harmonics: tuple[float, ...]) -> torch.Tensor:
    """sum_k w_k * acf(k * lag) at fractional ``lags`` (linear interpolation), acf clamped at 0."""
    n = acf.shape[-1]
    pos = acf.clamp(min=0)
    out = torch.zeros(lags.shape, dtype=acf.dtype, device=acf.device)
    for k, w in enumerate(harmonics, start=1):
        if w == 0:
            continue
        x = (lags * k).clamp(0, n - 1.001)
        lo = x.floor().long()
        frac = x - lo
        val = pos.gather(-1, lo) * (1 - frac) + pos.gather(-1, lo + 1) * frac
        out = out + w * torch.where(lags * k < n - 1, val, torch.zeros_like(val))
    return out


def _prior(bpm: torch.Tensor, cfg: PeriodConfig) -> torch.Tensor:
    inside = (bpm >= cfg.min_bpm) & (bpm <= cfg.max_bpm)
    weight = torch.exp(-0.5 * (torch.log2(bpm / cfg.prior_bpm) / cfg.prior_octaves) ** 2)
    return torch.where(inside, weight, torch.zeros_like(weight))


def _parabola(y0: torch.Tensor, y1: torch.Tensor, y2: torch.Tensor) -> torch.Tensor:
    denom = y0 - 2 * y1 + y2
    safe = torch.where(denom < 0, denom, -torch.ones_like(denom))
    return torch.where(denom < 0, 0.5 * (y0 - y2) / safe, torch.zeros_like(denom)).clamp(-0.5, 0.5)


def pick_period(mean_acf: torch.Tensor, fps: float, cfg: PeriodConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Global period in frames (B,) and the tempo salience (B, G) over a log-spaced BPM grid (G,)."""
    bsz = mean_acf.shape[0]
    grid_bpm = torch.exp(torch.linspace(math.log(cfg.min_bpm), math.log(cfg.max_bpm), cfg.grid_steps,
                                        device=mean_acf.device, dtype=mean_acf.dtype))
    lags = (60.0 * fps / grid_bpm).expand(bsz, -1).contiguous()
    salience = _harmonic_sum(mean_acf, lags, cfg.harmonics) * _prior(grid_bpm, cfg)[None, :]
    best = salience.argmax(dim=-1).clamp(1, cfg.grid_steps - 2)
    near = torch.stack([salience.gather(-1, (best + d)[:, None])[:, 0] for d in (-1, 0, 1)])
    pos = best.to(mean_acf.dtype) + _parabola(near[0], near[1], near[2])
    step = (math.log(cfg.max_bpm) - math.log(cfg.min_bpm)) / (cfg.grid_steps - 1)
    bpm = torch.exp(math.log(cfg.min_bpm) + step * pos)
    return 60.0 * fps / bpm, grid_bpm, salience


def local_periods(tg: Tempogram, period: torch.Tensor, n_frames: int, cfg: PeriodConfig) -> torch.Tensor:
    """Period per frame (B, T): a smooth path through the windows' tempograms near ``period``."""
    bsz, n_win, _ = tg.windows.shape
    rel = torch.linspace(-cfg.local_octaves, cfg.local_octaves, cfg.local_steps,
                         device=period.device, dtype=period.dtype)
    grid = period[:, None] * torch.exp2(rel)[None, :]                          # (B, J) candidate periods
    lags = grid[:, None, :].expand(bsz, n_win, -1).contiguous()
    emit = _harmonic_sum(tg.windows, lags, cfg.harmonics) * tg.keep[..., None]  # (B, W, J)
    step_cost = cfg.change_cost * (rel[:, None] - rel[None, :]).abs()           # (J_from, J_to)
    score = emit[:, 0]
    back = []
    for w in range(1, n_win):
        cand = score[:, :, None] - step_cost[None]
        best, arg = cand.max(dim=1)
        score = best + emit[:, w]
        back.append(arg)
    j = score.argmax(dim=-1)
    path = [j]
    for arg in reversed(back):
        j = arg.gather(-1, j[:, None])[:, 0]
        path.append(j)
    idx = torch.stack(path[::-1], dim=1)                                        # (B, W)
    # sub-step refinement with a parabola over the emission
    e0 = emit.gather(-1, (idx - 1).clamp(min=0)[..., None])[..., 0]
    e1 = emit.gather(-1, idx[..., None])[..., 0]
    e2 = emit.gather(-1, (idx + 1).clamp(max=cfg.local_steps - 1)[..., None])[..., 0]
    step = rel[1] - rel[0]
    octave = rel[idx] + step * _parabola(e0, e1, e2)
    per_window = period[:, None] * torch.exp2(octave)                           # (B, W)
    # frames between window centres take a linear blend
    pos = torch.arange(n_frames, device=period.device, dtype=period.dtype) / tg.hop
    lo = pos.floor().long().clamp(max=n_win - 1)
    hi = (lo + 1).clamp(max=n_win - 1)
    frac = (pos - lo).clamp(0, 1)
    return per_window[:, lo] * (1 - frac) + per_window[:, hi] * frac
