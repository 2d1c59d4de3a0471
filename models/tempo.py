"""The built-in ``tempo`` model: global tempo, beat times and a confidence per clip.

A signal-processing pipeline in PyTorch over a padded batch of clips (see
docs/tempo.md): log-mel spectral flux -> autocorrelation tempogram with a tempo
prior -> a no-pulse gate -> dynamic-programming beat tracking.  Every per-clip
statistic is masked, so a clip gives the same result alone or in any batch.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch

from sidepath.decoders.base import DecodeSpec, Media
from sidepath.worker.errors import ModelError

from .base import ModelBase
from .tempo_beats import dp_beats
from .tempo_masked import frame_mask, masked_mean, masked_std
from .tempo_onset import OnsetConfig, mel_filterbank, onset_envelope
from .tempo_period import PeriodConfig, local_periods, pick_period, tempogram

__all__ = ["TempoModel"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 22050


class TempoModel(ModelBase):
    name = "tempo"
    version = "1"
    input_kind = "audio"
    batch_unit = "clip"
    options = {
        "max_audio_s": (120.0, "analyse at most this many seconds of each soundtrack"),
        "prior_bpm": (120.0, "centre of the tempo prior, in BPM"),
        "min_bpm": (40.0, "slowest tempo reported"),
        "max_bpm": (240.0, "fastest tempo reported"),
    }

    def __init__(self, *, max_batch: int = 16, **options: Any) -> None:
        super().__init__(max_batch=max_batch, **options)
        import json, os
        exp = json.loads(os.environ.get("TEMPO_EXP", "{}"))
        self.exp = exp
        self.onset_cfg = OnsetConfig(sample_rate=SAMPLE_RATE, **exp.get("onset", {}))
        self.period_cfg = PeriodConfig(min_bpm=float(self.opts["min_bpm"]), max_bpm=float(self.opts["max_bpm"]),
                                       prior_bpm=float(self.opts["prior_bpm"]), **{k: tuple(v) if isinstance(v, list) else v for k, v in exp.get("period", {}).items()})
        self.tightness = 100.0
        self._mel = mel_filterbank(self.onset_cfg).float()

    def decode_spec(self) -> DecodeSpec:
        return DecodeSpec(frames=False, audio=True, sample_rate=SAMPLE_RATE, max_audio_s=float(self.opts["max_audio_s"]))

    def load(self, device: Any) -> None:
        self.device = torch.device(device)
        self._mel = self._mel.to(self.device)

    def prepare(self, media: Media) -> torch.Tensor:
        if media.audio is None:
            raise ModelError("the tempo model needs an audio track and this media has none; "
                             "send a video with sound or an audio file")
        if media.sample_rate != SAMPLE_RATE:
            raise ModelError(f"audio arrived at {media.sample_rate} Hz, the tempo model needs {SAMPLE_RATE} Hz; "
                             "decode with the model's decode_spec()")
        audio = np.asarray(media.audio, dtype=np.float32).reshape(-1)
        audio = audio[: int(float(self.opts["max_audio_s"]) * SAMPLE_RATE)]
        if not np.all(np.isfinite(audio)):
            raise ModelError("the audio track holds NaN or infinite samples; re-encode the file")
        return torch.from_numpy(np.ascontiguousarray(audio))

    @torch.inference_mode()
    def predict(self, batch: Sequence[torch.Tensor]) -> list[dict[str, Any]]:
        if not batch:
            return []
        lengths = torch.tensor([int(x.numel()) for x in batch], dtype=torch.long)
        audio = torch.zeros(len(batch), max(int(lengths.max()), 1), dtype=torch.float32)
        for i, x in enumerate(batch):
            audio[i, : x.numel()] = x
        audio, lengths = audio.to(self.device), lengths.to(self.device)
        return self._analyse(audio, lengths)

    def _analyse(self, audio: torch.Tensor, lengths: torch.Tensor) -> list[dict[str, Any]]:
        cfg = self.onset_cfg
        env, valid = onset_envelope(audio, lengths, cfg, self._mel)
        mask = frame_mask(valid, env.shape[-1])
        std = masked_std(env, mask).clamp(min=1e-8)
        norm = env / std[:, None]
        win = int(round(self.period_cfg.window_s * cfg.fps))
        tg = tempogram(norm, valid, win, smooth=self.exp.get('smooth', 1.0))
        period, grid_bpm, salience = pick_period(tg.mean, cfg.fps, self.period_cfg)
        periodicity = self._periodicity(norm, mask, valid, period)
        pulse2 = self._periodicity(norm, mask, valid, 2 * period)
        pulse4 = self._periodicity(norm, mask, valid, 4 * period)
        srt = env.masked_fill(~mask, float("inf")).sort(dim=-1).values
        q95 = srt.gather(-1, ((valid - 1).float() * 0.95).long()[:, None])[:, 0]
        q50 = srt.gather(-1, ((valid - 1).float() * 0.5).long()[:, None])[:, 0]
        sharp = q95 / q50.clamp(min=1e-9)
        rms_db = 10 * torch.log10((audio.double() ** 2).sum(-1) / lengths.clamp(min=1) + 1e-20)
        if self.period_cfg.local:
            per_frame = local_periods(tg, period, env.shape[-1], self.period_cfg)
        else:
            per_frame = period[:, None].expand(-1, env.shape[-1])
        beats = dp_beats(norm, valid, per_frame, self.tightness)
        out = []
        for b in range(audio.shape[0]):
            bpm = 60.0 * cfg.fps / float(period[b])
            times = (beats[b] * cfg.hop / cfg.sample_rate).round(3).tolist()
            out.append({"bpm": round(bpm, 2), "beats": times, "confidence": round(float(periodicity[b]), 4),
                        "candidates": [{"bpm": round(bpm, 2), "salience": 1.0}],
                        "_debug": dict(pulse=float(periodicity[b]), pulse2=float(pulse2[b]), pulse4=float(pulse4[b]), sharp=float(sharp[b]), rms_db=float(rms_db[b]))})
        return out

    @staticmethod
    def _periodicity(norm: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor, period: torch.Tensor) -> torch.Tensor:
        """Unbiased autocorrelation of the mean-removed envelope at the period (prior-free)."""
        x = (norm - masked_mean(norm, mask)[:, None]) * mask
        n = x.shape[-1]
        spec = torch.fft.rfft(x, n=2 * n)
        acf = torch.fft.irfft(spec.real.square() + spec.imag.square(), n=2 * n)[..., :n]
        lags = torch.arange(n, device=x.device)
        acf = acf / (valid[:, None] - lags[None, :]).clamp(min=1)
        acf = acf / acf[:, :1].clamp(min=1e-10)
        lag = period.round().long().clamp(1, n - 1)
        near = torch.stack([acf.gather(-1, (lag + d).clamp(1, n - 1)[:, None])[:, 0] for d in (-1, 0, 1)])
        return near.amax(dim=0)
