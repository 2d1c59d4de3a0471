"""Onset strength: log-mel spectral flux over a padded batch of clips.

Each clip is left-padded by reflection and right-padded with zeros (never by
reflecting the batch's padding), so the frames of a clip are the same alone or
in a batch.  The dB floor is relative to each clip's own maximum, which makes
the envelope independent of the recording level.  A 1024-sample window keeps
the envelope's peaks within about 10 ms of the attacks; a 2048-sample window
fires up to 30 ms early on clean attacks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .tempo_masked import frame_mask, masked_max

__all__ = ["OnsetConfig", "mel_filterbank", "onset_envelope", "stft_power"]


@dataclass(frozen=True, slots=True)
class OnsetConfig:
    sample_rate: int = 22050
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 64
    fmin_hz: float = 0.0
    fmax_hz: float = 11025.0
    floor_db: float = 80.0

    @property
    def fps(self) -> float:
        return self.sample_rate / self.hop


def _hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    # Slaney's scale: linear below 1 kHz, logarithmic above
    step = 200.0 / 3
    log_step = math.log(6.4) / 27.0
    return torch.where(f < 1000.0, f / step, 1000.0 / step + torch.log(f.clamp(min=1e-9) / 1000.0) / log_step)


def _mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    step = 200.0 / 3
    log_step = math.log(6.4) / 27.0
    lin = 1000.0 / step
    return torch.where(m < lin, m * step, 1000.0 * torch.exp(log_step * (m - lin)))


def mel_filterbank(cfg: OnsetConfig) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters of equal area (float64)."""
    freqs = torch.linspace(0.0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1, dtype=torch.float64)
    bounds = _hz_to_mel(torch.tensor([cfg.fmin_hz, cfg.fmax_hz], dtype=torch.float64))
    edges = _mel_to_hz(torch.linspace(float(bounds[0]), float(bounds[1]), cfg.n_mels + 2, dtype=torch.float64))
    left, center, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - left) / (center - left)
    down = (right - freqs[None, :]) / (right - center)
    tri = torch.clamp(torch.minimum(up, down), min=0.0)
    return tri * (2.0 / (right - left))


def stft_power(audio: torch.Tensor, cfg: OnsetConfig) -> torch.Tensor:
    """(B, F, T) STFT power of ``audio`` (B, N); frame t is centred on sample ``t * hop`` (reflected
    at the start, zeros past the end), so a clip alone and in a padded batch get the same frames."""
    half = cfg.n_fft // 2
    if audio.shape[1] < half + 1:
        audio = torch.nn.functional.pad(audio, (0, half + 1 - audio.shape[1]))
    left = audio[:, 1:half + 1].flip(-1)
    padded = torch.cat([left, audio, audio.new_zeros(audio.shape[0], half)], dim=1)
    window = torch.hann_window(cfg.n_fft, periodic=True, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(padded, cfg.n_fft, cfg.hop, window=window, center=False, return_complex=True)
    return spec.real.square() + spec.imag.square()


def onset_envelope(audio: torch.Tensor, lengths: torch.Tensor, cfg: OnsetConfig,
                   mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Spectral flux per frame.

    ``audio`` (B, N) float32 zero-padded, ``lengths`` (B,) samples.  Returns the
    envelope (B, T), zero on padded frames, and the valid frame count per clip
    (B,).  Frame t is centred on sample ``t * hop``.
    """
    power = stft_power(audio, cfg)                                   # (B, F, T)
    mel_power = torch.matmul(mel.to(power.dtype), power)             # (B, M, T)
    db = 10.0 * torch.log10(mel_power.clamp(min=1e-10))
    valid = torch.div(lengths, cfg.hop, rounding_mode="floor") + 1
    mask = frame_mask(valid, db.shape[-1])
    peak = masked_max(db.amax(dim=1), mask)
    db = torch.maximum(db, (peak - cfg.floor_db)[:, None, None])
    flux = torch.relu(db[..., 1:] - db[..., :-1]).mean(dim=1)
    env = torch.nn.functional.pad(flux, (1, 0))
    return env * mask, valid
