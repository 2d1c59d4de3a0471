"""Decoding the learned beat activation: tempo, beats, downbeats and the no-beat gate.

The network (``tempo_net``) gives per frame a beat and a downbeat activation in
[0, 1].  From the beat activation, over the padded batch:

1. tempo: the autocorrelation tempogram with the metrical-multiples salience and the
   tempo prior of ``tempo_period``, over the activation squared (it replaces the onset
   envelope; squared, the network's weak responses between beats weigh less than the beats);
2. local tempo: the same Viterbi path over the windows, for ramps and steps;
3. beats: Ellis' dynamic programming over the activation (``tempo_beats``), each beat
   then placed between frames by a parabola through the activation's peak;
4. the gate: ``confidence`` is the mean activation at the decoded beats times the
   activation's periodicity at the chosen tempo; a network trained with silence, noise,
   pads and speech as negatives gives them almost no activation;
5. downbeats: the phase of every 2nd, 3rd or 4th beat whose downbeat activation is highest.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .tempo_beats import dp_beats
from .tempo_gate import periodicity_at
from .tempo_masked import frame_mask
from .tempo_period import PeriodConfig, local_periods, pick_period, tempogram

__all__ = ["Decoded", "decode"]

TIGHTNESS = 100.0
METERS = (2, 3, 4)
DOWNBEAT_MIN = 0.2        # below this mean downbeat activation a clip gets no downbeats
#: the tempogram reads the activation to this power: weak responses between beats (the network's
#: doubt about the metrical level) count less than the beats it is sure of
TEMPO_POWER = 2.0


@dataclass(frozen=True, slots=True)
class Decoded:
    confidence: torch.Tensor                  # (B,)
    period: torch.Tensor                      # (B,) frames
    grid_bpm: torch.Tensor                    # (G,)
    salience: torch.Tensor                    # (B, G)
    beats: list[np.ndarray]                   # frame positions (float, sub-frame)
    downbeats: list[np.ndarray]


def decode(beat_act: torch.Tensor, down_act: torch.Tensor, valid: torch.Tensor, fps: float,
           cfg: PeriodConfig) -> Decoded:
    """``beat_act``, ``down_act`` (B, T) activations, zero past ``valid`` (B,) frames."""
    mask = frame_mask(valid, beat_act.shape[-1])
    env = beat_act if TEMPO_POWER == 1.0 else beat_act**TEMPO_POWER
    tg = tempogram(env, valid, round(cfg.window_s * fps), smooth=cfg.smooth_frames)
    period, grid_bpm, salience = pick_period(tg.mean, fps, cfg)
    per_frame = local_periods(tg, period, beat_act.shape[-1], cfg)
    frames = dp_beats(beat_act, valid, per_frame, TIGHTNESS)
    period_score = periodicity_at(beat_act, mask, valid, period).clamp(0, 1)
    act_np, down_np = beat_act.cpu().numpy(), down_act.cpu().numpy()
    level = []
    beats, downs = [], []
    for b, f in enumerate(frames):
        a = act_np[b, : int(valid[b])]
        level.append(float(_peak_values(a, f).mean()) if f.size else 0.0)
        beats.append(_refine(a, f))
        downs.append(_downbeats(down_np[b, : int(valid[b])], f, beats[-1]))
    conf = torch.tensor(level, dtype=beat_act.dtype, device=beat_act.device) * period_score.sqrt()
    return Decoded(conf, period, grid_bpm, salience, beats, downs)


def _peak_values(act: np.ndarray, frames: np.ndarray) -> np.ndarray:
    lo = np.clip(frames - 1, 0, act.size - 1)
    out: np.ndarray = np.maximum.reduce([act[lo], act[frames], act[np.clip(frames + 1, 0, act.size - 1)]])
    return out


def _refine(act: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Sub-frame beat positions: the vertex of a parabola through the best frame near each beat."""
    if frames.size == 0:
        return frames.astype(np.float64)
    near = np.stack([act[np.clip(frames + d, 0, act.size - 1)] for d in (-1, 0, 1)])
    peak = frames + np.argmax(near, axis=0) - 1
    peak = np.clip(peak, 1, act.size - 2)
    y0, y1, y2 = act[peak - 1], act[peak], act[peak + 1]
    denom = y0 - 2 * y1 + y2
    offset = np.where(denom < 0, 0.5 * (y0 - y2) / np.where(denom < 0, denom, -1.0), 0.0)
    refined: np.ndarray = peak + np.clip(offset, -0.5, 0.5)
    return refined


def _downbeats(down: np.ndarray, frames: np.ndarray, refined: np.ndarray) -> np.ndarray:
    if frames.size < 4 or down.size == 0:
        return refined[:0]
    values = _peak_values(down, frames)
    best, choice = -1.0, (4, 0)
    for meter in METERS:
        for phase in range(min(meter, frames.size)):
            score = float(values[phase::meter].mean())
            # strictly better only: on a tie the shorter bar (tried first) stays
            if score > best + 1e-3:
                best, choice = score, (meter, phase)
    if best < DOWNBEAT_MIN:
        return refined[:0]
    meter, phase = choice
    return refined[phase::meter]
