"""The built-in ``tempo`` model: global tempo, beat times and a confidence per clip.

Two methods (option ``method``; design and figures in docs/tempo.md):

- ``learned`` (the default): a small temporal convolutional network gives a beat and a
  downbeat activation per frame (``tempo_net``, weights in ``tempo_net.safetensors``),
  decoded into tempo, beats, downbeats and a confidence (``tempo_learned``);
- ``dsp``: the signal-processing pipeline below.

The ``dsp`` pipeline, in PyTorch over a padded batch of clips:

1. onset strength: log-mel spectral flux (``tempo_onset``);
2. tempo: autocorrelation tempogram, a sum over metrical levels and a tempo
   prior; a Viterbi path of local periods for ramps and steps (``tempo_period``);
3. a no-pulse gate: silence, noise, speech and pads get no beats (``tempo_gate``);
4. beats: dynamic programming, vectorised over the batch (``tempo_beats``).

Every per-clip statistic is masked, so a clip gives the same result alone or in
any batch, on CPU or GPU.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from sidepath.core.errors import ConfigError, ModelError
from sidepath.decoders.base import DecodeSpec, Media

from .base import ModelBase
from .tempo_beats import dp_beats
from .tempo_gate import confidence, peak_db, periodicity_at, sharpness
from .tempo_learned import decode
from .tempo_masked import frame_mask, masked_std
from .tempo_net import FEATURES, WEIGHTS, feature_mel, load_net, log_mel
from .tempo_onset import OnsetConfig, mel_filterbank, onset_envelope
from .tempo_period import PeriodConfig, local_periods, pick_period, tempogram

__all__ = ["TempoModel", "SAMPLE_RATE", "pad_clips"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 22050
MIN_SECONDS = 1.0           # shorter clips cannot show two beats at 40 BPM... or much else
SILENCE_DB = -60.0          # peak level under which a clip is silent
TIGHTNESS = 100.0           # DP cost of a beat interval that strays from the period (Ellis' alpha)
CANDIDATES = 3              # tempo candidates reported per clip
DSP_MIN_CONFIDENCE = 0.15   # the dsp method's gate (tuned on its corpora, docs/tempo.md)
METHODS = ("learned", "dsp")
DP_POWER = 0.5              # the DP scores sqrt(onset): a soft kick on every beat outweighs a loud snare on some


_F = TypeVar("_F", bound=Callable[..., Any])


def _inference(fn: _F) -> _F:
    """``torch.inference_mode()`` as a decorator that keeps ``fn``'s signature for the type checker."""
    wrapped: _F = torch.inference_mode()(fn)
    return wrapped


class TempoModel(ModelBase):
    name = "tempo"
    version = "1"
    input_kind = "audio"
    batch_unit = "clip"
    #: fp32 throughout: spectral power overflows fp16, and the DP compares small differences
    half_ok = False
    options = {
        "max_audio_s": (120.0, "analyse at most this many seconds of each soundtrack"),
        "prior_bpm": (120.0, "centre of the tempo prior, in BPM"),
        "min_bpm": (40.0, "slowest tempo reported"),
        "max_bpm": (240.0, "fastest tempo reported"),
        "min_confidence": (0.0, "below this pulse confidence a clip gets bpm null and no beats; 0: the method's "
                                "own (dsp 0.15, learned: chosen on the validation split, stored with the weights)"),
        "method": ("learned", "beat tracker: learned (a small network, the default) or dsp (signal processing)"),
    }

    def __init__(self, *, max_batch: int = 16, **options: Any) -> None:
        super().__init__(max_batch=max_batch, **options)
        lo, hi, prior = (float(self.opts[k]) for k in ("min_bpm", "max_bpm", "prior_bpm"))
        if not 10.0 <= lo < hi <= 600.0:
            raise ConfigError("model.options.min_bpm", (lo, hi), "need 10 <= min_bpm < max_bpm <= 600")
        if not lo <= prior <= hi:
            raise ConfigError("model.options.prior_bpm", prior, f"put it between min_bpm {lo} and max_bpm {hi}")
        if float(self.opts["max_audio_s"]) < MIN_SECONDS:
            raise ConfigError("model.options.max_audio_s", self.opts["max_audio_s"], f"use at least {MIN_SECONDS} s")
        self.onset_cfg = OnsetConfig(sample_rate=SAMPLE_RATE)
        self.period_cfg = PeriodConfig(min_bpm=lo, max_bpm=hi, prior_bpm=prior)
        self.method = str(self.opts["method"])
        if self.method not in METHODS:
            raise ConfigError("model.options.method", self.method, f"use one of {', '.join(METHODS)}")
        self.min_confidence = float(self.opts["min_confidence"])
        if self.min_confidence <= 0:
            self.min_confidence = DSP_MIN_CONFIDENCE if self.method == "dsp" else _stored_threshold()
        self._mel = mel_filterbank(self.onset_cfg).float()
        self._feat_mel = feature_mel()
        self._net: torch.nn.Module | None = None

    def decode_spec(self) -> DecodeSpec:
        return DecodeSpec(frames=False, audio=True, sample_rate=SAMPLE_RATE,
                          max_audio_s=float(self.opts["max_audio_s"]))

    def load(self, device: Any) -> None:
        super().load(device)
        self._mel = self._mel.to(self.device)
        if self.method == "learned":
            self._net = load_net().to(self.device)
            self._feat_mel = self._feat_mel.to(self.device)
        self._settle()

    def prepare(self, media: Media) -> torch.Tensor:
        if media.audio is None:
            raise ModelError("the tempo model needs an audio track and this media has none; "
                             "send a video with sound or an audio file")
        if media.sample_rate != SAMPLE_RATE:
            raise ModelError(f"audio arrived at {media.sample_rate} Hz but the tempo model needs {SAMPLE_RATE} Hz; "
                             "decode with the model's decode_spec()")
        audio = np.asarray(media.audio, dtype=np.float32).reshape(-1)
        audio = audio[: int(float(self.opts["max_audio_s"]) * SAMPLE_RATE)]
        if not np.isfinite(audio).all():
            raise ModelError("the audio track holds NaN or infinite samples; re-encode the file")
        return torch.from_numpy(np.ascontiguousarray(audio))

    def predict(self, batch: Sequence[torch.Tensor]) -> list[dict[str, Any]]:
        if not batch:
            return []
        with self.inference():
            if self.device.type == "cpu":
                # one clip at a time: on a CPU a padded batch only adds work (measured in
                # docs/tempo.md), and the results are the same either way
                return [self.analyse(*pad_clips([x], self.device))[0] for x in batch]
            return self.analyse(*pad_clips(batch, self.device))

    @_inference
    def analyse(self, audio: torch.Tensor, lengths: torch.Tensor) -> list[dict[str, Any]]:
        """Results for a padded batch ``audio`` (B, N) at SAMPLE_RATE with ``lengths`` (B,) in samples."""
        if self.method == "dsp":
            return self._analyse_dsp(audio, lengths)
        feat, valid = log_mel(audio, lengths, self._feat_mel)
        return self.decode_features(feat, valid, lengths, audio.abs().amax(dim=-1))

    @_inference
    def decode_features(self, feat: torch.Tensor, valid: torch.Tensor, lengths: torch.Tensor,
                        peak: torch.Tensor, threshold: float | None = None) -> list[dict[str, Any]]:
        """The learned method from log-mel features (B, M, T), ``valid`` frames, ``lengths`` in
        samples and each clip's linear ``peak`` (the training script calls this directly)."""
        assert self._net is not None, "load() the model first"
        fps = FEATURES.fps
        peak = torch.as_tensor(peak, dtype=torch.float32, device=feat.device).reshape(-1)
        lengths = torch.as_tensor(lengths, device=feat.device).reshape(-1)
        usable = (20.0 * torch.log10(peak + 1e-12) >= SILENCE_DB) & (lengths >= int(MIN_SECONDS * SAMPLE_RATE))
        results: list[dict[str, Any]] = [
            {"bpm": None, "beats": [], "downbeats": [], "confidence": 0.0, "candidates": []}
            for _ in range(feat.shape[0])]
        keep = usable.nonzero().flatten()
        if keep.numel() == 0:
            return results
        feat, valid = feat[keep], valid[keep].to(feat.device)
        mask = frame_mask(valid, feat.shape[-1])
        with _no_tf32(feat.device):
            act = torch.sigmoid(self._net(feat, mask)) * mask[:, None, :]
        dec = decode(act[:, 0], act[:, 1], valid, fps, self.period_cfg)
        cands = _candidates(dec.grid_bpm, dec.salience)
        gate = self.min_confidence if threshold is None else threshold
        for j, b in enumerate(keep.tolist()):
            conf = round(float(dec.confidence[j]), 4)
            results[b]["confidence"] = conf
            if conf < gate or dec.beats[j].size < 2:
                continue
            # the tempo of the beats themselves (their median interval), as the scores define it;
            # the tempogram's period only seeded the beat tracker
            bpm = round(60.0 * fps / float(np.median(np.diff(dec.beats[j]))), 2)
            ranked = [(bpm, cands[j][0][1] if cands[j] else 1.0)] + cands[j][1:]
            results[b].update(bpm=bpm, beats=np.round(dec.beats[j] / fps, 3).tolist(),
                              downbeats=np.round(dec.downbeats[j] / fps, 3).tolist(),
                              candidates=[{"bpm": round(x, 2), "salience": s} for x, s in ranked])
        return results

    def _analyse_dsp(self, audio: torch.Tensor, lengths: torch.Tensor) -> list[dict[str, Any]]:
        cfg, pcfg = self.onset_cfg, self.period_cfg
        env, valid = onset_envelope(audio, lengths, cfg, self._mel)
        mask = frame_mask(valid, env.shape[-1])
        env = env / masked_std(env, mask).clamp(min=1e-8)[:, None]
        tg = tempogram(env, valid, int(round(pcfg.window_s * cfg.fps)), smooth=pcfg.smooth_frames)
        period, grid_bpm, salience = pick_period(tg.mean, cfg.fps, pcfg)
        usable = (peak_db(audio) >= SILENCE_DB) & (lengths >= int(MIN_SECONDS * cfg.sample_rate))
        conf = confidence(periodicity_at(env, mask, valid, period), sharpness(env, mask, valid))
        conf = torch.where(usable, conf, torch.zeros_like(conf))
        results: list[dict[str, Any]] = [
            {"bpm": None, "beats": [], "confidence": round(float(c), 4), "candidates": []} for c in conf.cpu()]
        keep = (conf >= self.min_confidence).nonzero().flatten()
        log.debug("tempo: %d of %d clips have a pulse", keep.numel(), len(results))
        if keep.numel() == 0:
            return results
        # beats only for clips with a pulse: the DP is the costly part after the spectrogram
        env, valid, period, tg_keep = env[keep], valid[keep], period[keep], tg.select(keep)
        per_frame = local_periods(tg_keep, period, env.shape[-1], pcfg)
        beat_frames = dp_beats(env ** DP_POWER, valid, per_frame, TIGHTNESS, onset=env)
        cands = _candidates(grid_bpm, salience[keep])
        for j, b in enumerate(keep.tolist()):
            bpm = round(60.0 * cfg.fps / float(period[j]), 2)
            times = np.round(beat_frames[j] * cfg.hop / cfg.sample_rate, 3)
            # the first candidate is the chosen tempo, refined below the grid's step
            ranked = [(bpm, cands[j][0][1] if cands[j] else 1.0)] + cands[j][1:]
            results[b].update(bpm=bpm, beats=times.tolist(),
                              candidates=[{"bpm": round(x, 2), "salience": s} for x, s in ranked])
        return results


def _no_tf32(device: torch.device) -> Any:
    """cuDNN may run fp32 convolutions in TF32 on a GPU: keep them fp32, so the GPU computes what the CPU does."""
    import contextlib

    if device.type != "cuda":
        return contextlib.nullcontext()
    b = torch.backends.cudnn
    return b.flags(enabled=b.enabled, benchmark=b.benchmark, deterministic=b.deterministic, allow_tf32=False)


def _stored_threshold() -> float:
    """The learned gate's threshold, stored in the weights' metadata by the training script."""
    from safetensors import safe_open

    if not WEIGHTS.exists():
        raise ConfigError("model.options.method", "learned",
                          f"the weights file {WEIGHTS} is missing; run `make train-tempo` or use method dsp")
    with safe_open(str(WEIGHTS), framework="pt") as f:
        return float((f.metadata() or {}).get("min_confidence", DSP_MIN_CONFIDENCE))


def pad_clips(clips: Sequence[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded (B, N) float32 batch and the lengths (B,), on ``device``."""
    lengths = torch.tensor([int(x.numel()) for x in clips], dtype=torch.long)
    audio = torch.zeros(len(clips), max(int(lengths.max()), 1), dtype=torch.float32)
    for i, x in enumerate(clips):
        audio[i, : x.numel()] = x
    if device.type == "cuda":
        audio = audio.pin_memory()
    return audio.to(device, non_blocking=True), lengths.to(device)


def _candidates(grid_bpm: torch.Tensor, salience: torch.Tensor) -> list[list[tuple[float, float]]]:
    """Top tempo peaks per clip as (bpm, share of the top peaks' salience), strongest first."""
    peaks = torch.nn.functional.max_pool1d(salience[:, None], 9, 1, 4)[:, 0] == salience
    scores = torch.where(peaks & (salience > 0), salience, torch.zeros_like(salience))
    top, idx = scores.topk(CANDIDATES, dim=-1)
    grid = grid_bpm.cpu().tolist()
    out = []
    for values, where in zip(top.cpu().tolist(), idx.cpu().tolist()):
        total = sum(values) or 1.0
        out.append([(grid[i], round(v / total, 4)) for v, i in zip(values, where) if v > 0])
    return out
