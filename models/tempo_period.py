"""Tempo from the onset envelope: windowed autocorrelation with a tempo prior.

The tempogram is the autocorrelation of mean-removed, Hann-windowed stretches
of the onset envelope (FFT based), each normalised by its zero lag.  Averaged
over the windows that hold audio, it gives the global tempo: the salience of a
lag is the sum of the autocorrelation at its multiples (a bar repeats the beat;
this is what settles 4/3 and octave confusions) times a log-normal prior around
``prior_bpm``; a parabola over a fine log-BPM grid refines the peak below a
frame.  Window by window, a Viterbi path near the global period follows tempo
ramps and steps (``local_periods``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .tempo_masked import frame_mask

__all__ = ["PeriodConfig", "Tempogram", "tempogram", "pick_period", "local_periods"]

#: a lag's multiples count in full only once the autocorrelation at the lag itself reaches this
FUNDAMENTAL_KNEE = 0.05


@dataclass(frozen=True, slots=True)
class PeriodConfig:
    window_s: float = 8.9
    min_bpm: float = 40.0
    max_bpm: float = 240.0
    prior_bpm: float = 120.0
    prior_octaves: float = 1.0
    harmonics: tuple[float, ...] = (1.0, 1.0, 0.5, 1.0)   # weights of acf(lag), acf(2 lag), ...
    grid_steps: int = 512              # log-spaced tempo grid over [min_bpm, max_bpm]
    smooth_frames: float = 1.0         # Gaussian smoothing of the autocorrelation along the lag
    local_octaves: float = 0.45        # how far the local tempo may stray from the global one
    local_steps: int = 91
    change_cost: float = 4.0           # Viterbi cost per octave of tempo change between windows


@dataclass(frozen=True, slots=True)
class Tempogram:
    windows: torch.Tensor      # (B, W, win) normalised autocorrelation per window
    keep: torch.Tensor         # (B, W) float, 1 where the window centre lies inside the clip
    hop: int                   # frames between window centres
    mean: torch.Tensor         # (B, win) average over kept windows

    def select(self, index: torch.Tensor) -> Tempogram:
        return Tempogram(self.windows[index], self.keep[index], self.hop, self.mean[index])


def tempogram(env: torch.Tensor, valid: torch.Tensor, win: int, smooth: float = 1.0) -> Tempogram:
    n = env.shape[-1]
    hop = max(1, win // 8)
    pad = (win // 2, win // 2 + hop)
    frames = torch.nn.functional.pad(env, pad).unfold(-1, win, hop)            # (B, W, win)
    inside = torch.nn.functional.pad(frame_mask(valid, n).to(env.dtype), pad).unfold(-1, win, hop)
    keep = inside[..., win // 2]                                                # window centre in the clip
    taper = torch.hann_window(win, periodic=False, device=env.device, dtype=env.dtype)
    # remove each window's mean over its frames inside the clip: a steady floor of onset
    # strength must not look like periodicity at every lag
    weight = taper * inside
    mean = (frames * weight).sum(-1, keepdim=True) / weight.sum(-1, keepdim=True).clamp(min=1e-8)
    spec = torch.fft.rfft((frames - mean) * weight, n=2 * win)
    acf = torch.fft.irfft(spec.real.square() + spec.imag.square(), n=2 * win)[..., :win]
    acf = acf / acf[..., :1].clamp(min=1e-10)
    if smooth > 0:
        # peaks of impulsive music are a frame or two wide: smooth them so that fractional lags
        # (and their multiples) can be read by interpolation.  Shifted sums, not conv1d, which
        # may run in TF32 on a GPU and break the agreement with the CPU.
        radius = int(3 * smooth + 0.5)
        taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / smooth) ** 2)
        edge = torch.nn.functional.pad(acf, (radius, radius), mode="replicate")
        acf = sum(float(w) * edge[..., i:i + win] for i, w in enumerate(taps / taps.sum()))
    share = keep / keep.sum(dim=1, keepdim=True).clamp(min=1)
    return Tempogram(acf, keep, hop, (acf * share[..., None]).sum(dim=1))


def _harmonic_sum(acf: torch.Tensor, lags: torch.Tensor, harmonics: tuple[float, ...]) -> torch.Tensor:
    """sum_k w_k * acf(k * lag) at fractional ``lags`` (linear interpolation), acf clamped at 0.

    A lag with no periodicity of its own earns little from its multiples: half the period
    of a click track would otherwise collect the whole track's.
    """
    n = acf.shape[-1]
    pos = acf.clamp(min=0)
    out = torch.zeros(lags.shape, dtype=acf.dtype, device=acf.device)
    knee: torch.Tensor | None = None
    for k, w in enumerate(harmonics, start=1):
        x = (lags * k).clamp(0, n - 1.001)
        lo = x.floor().long()
        frac = x - lo
        val = pos.gather(-1, lo) * (1 - frac) + pos.gather(-1, lo + 1) * frac
        val = torch.where(lags * k < n - 1, val, torch.zeros_like(val))
        if knee is None:
            knee = (val / FUNDAMENTAL_KNEE).clamp(max=1)
            out = out + w * val
        else:
            out = out + w * knee * val
    return out


def _prior(bpm: torch.Tensor, cfg: PeriodConfig) -> torch.Tensor:
    inside = (bpm >= cfg.min_bpm) & (bpm <= cfg.max_bpm)
    weight = torch.exp(-0.5 * (torch.log2(bpm / cfg.prior_bpm) / cfg.prior_octaves) ** 2)
    return torch.where(inside, weight, torch.zeros_like(weight))


def _parabola(y0: torch.Tensor, y1: torch.Tensor, y2: torch.Tensor) -> torch.Tensor:
    """Offset in (-0.5, 0.5) of the vertex of the parabola through three equally spaced points."""
    denom = y0 - 2 * y1 + y2
    safe = torch.where(denom < 0, denom, -torch.ones_like(denom))
    return torch.where(denom < 0, 0.5 * (y0 - y2) / safe, torch.zeros_like(denom)).clamp(-0.5, 0.5)


def pick_period(
    mean_acf: torch.Tensor, fps: float, cfg: PeriodConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Global period in frames (B,), the tempo grid in BPM (G,) and the salience over it (B, G)."""
    bsz = mean_acf.shape[0]
    log_lo, log_hi = math.log(cfg.min_bpm), math.log(cfg.max_bpm)
    grid_bpm = torch.exp(torch.linspace(log_lo, log_hi, cfg.grid_steps, device=mean_acf.device, dtype=mean_acf.dtype))
    lags = (60.0 * fps / grid_bpm).expand(bsz, -1).contiguous()
    salience = _harmonic_sum(mean_acf, lags, cfg.harmonics) * _prior(grid_bpm, cfg)[None, :]
    best = salience.argmax(dim=-1).clamp(1, cfg.grid_steps - 2)
    near = [salience.gather(-1, (best + d)[:, None])[:, 0] for d in (-1, 0, 1)]
    pos = best.to(mean_acf.dtype) + _parabola(*near)
    bpm = torch.exp(log_lo + (log_hi - log_lo) / (cfg.grid_steps - 1) * pos)
    return 60.0 * fps / bpm, grid_bpm, salience


def local_periods(tg: Tempogram, period: torch.Tensor, n_frames: int, cfg: PeriodConfig) -> torch.Tensor:
    """Period per frame (B, T): a smooth path through the windows' tempograms near ``period``."""
    bsz, n_win, _ = tg.windows.shape
    rel = torch.linspace(
        -cfg.local_octaves, cfg.local_octaves, cfg.local_steps, device=period.device, dtype=period.dtype
    )
    lags = (period[:, None, None] * torch.exp2(rel)).expand(bsz, n_win, -1).contiguous()  # (B, W, J)
    emit = _harmonic_sum(tg.windows, lags, cfg.harmonics) * tg.keep[..., None]
    step_cost = cfg.change_cost * (rel[:, None] - rel[None, :]).abs()  # (J_from, J_to)
    score = emit[:, 0]
    back = []
    for w in range(1, n_win):
        best, arg = (score[:, :, None] - step_cost[None]).max(dim=1)
        score = best + emit[:, w]
        back.append(arg)
    j = score.argmax(dim=-1)
    path = [j]
    for arg in reversed(back):
        j = arg.gather(-1, j[:, None])[:, 0]
        path.append(j)
    idx = torch.stack(path[::-1], dim=1)  # (B, W)
    near = [emit.gather(-1, (idx + d).clamp(0, cfg.local_steps - 1)[..., None])[..., 0] for d in (-1, 0, 1)]
    octave = rel[idx] + (rel[1] - rel[0]) * _parabola(*near)
    per_window = period[:, None] * torch.exp2(octave)  # (B, W)
    # window w is centred on frame w * hop; frames in between take a linear blend
    pos = torch.arange(n_frames, device=period.device, dtype=period.dtype) / tg.hop
    lo = pos.floor().long().clamp(max=n_win - 1)
    hi = (lo + 1).clamp(max=n_win - 1)
    frac = (pos - lo).clamp(0, 1)
    return per_window[:, lo] * (1 - frac) + per_window[:, hi] * frac
