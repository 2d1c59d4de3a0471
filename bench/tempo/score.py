"""Scores beat trackers against the reference beats with mir_eval.

Per music clip: beat F-measure (70 ms window, *no* 5 s trim: mir_eval's
``evaluate`` trims the first 5 s, 30% of a 17 s clip), CMLt and AMLt
(continuity), tempo Acc1 (within 4%) and Acc2 (also at x2, x3, /2, /3 of the
reference), and the signed offsets of estimated beats from their nearest
reference beat (pooled into the median beat bias).  Per negative clip: whether
the tracker emitted any beat at all.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ClipScore", "Summary", "score_clip", "summarize"]

BIAS_WINDOW_S = 0.1          # offsets beyond this (or a quarter period) are misses, not bias


@dataclass(frozen=True, slots=True)
class ClipScore:
    name: str
    style: str
    is_music: bool
    n_beats: int
    bpm: float | None
    ref_bpm: float | None
    f_measure: float = 0.0
    cmlt: float = 0.0
    amlt: float = 0.0
    acc1: float = 0.0
    acc2: float = 0.0
    offsets_s: tuple[float, ...] = ()
    seconds: float = 0.0          # the tracker's wall time on this clip


@dataclass(frozen=True, slots=True)
class Summary:
    music_clips: int
    negative_clips: int
    f_measure: float
    cmlt: float
    amlt: float
    acc1: float
    acc2: float
    median_bias_ms: float
    music_without_beats: int
    negatives_with_beats: int
    ms_per_clip: float
    by_style: dict[str, float] = field(default_factory=dict)     # style -> mean F-measure


def _tempo_hit(bpm: float | None, ref: float, factors: tuple[float, ...]) -> float:
    if not bpm:
        return 0.0
    return float(any(abs(bpm - ref * k) <= 0.04 * ref * k for k in factors))


def score_clip(name: str, style: str, reference: np.ndarray, beats: np.ndarray, bpm: float | None,
               seconds: float) -> ClipScore:
    import mir_eval

    beats = np.asarray(beats, dtype=np.float64)
    if reference.size == 0:
        return ClipScore(name, style, False, int(beats.size), bpm, None, seconds=seconds)
    ref_bpm = 60.0 / float(np.median(np.diff(reference)))
    with warnings.catch_warnings():          # mir_eval warns on an empty estimate; that scores 0
        warnings.simplefilter("ignore")
        f = mir_eval.beat.f_measure(reference, beats, f_measure_threshold=0.07)
        _cmlc, cmlt, _amlc, amlt = mir_eval.beat.continuity(reference, beats)
    offsets: list[float] = []
    if beats.size:
        idx = np.clip(np.searchsorted(reference, beats), 1, reference.size - 1)
        left, right = reference[idx - 1], reference[idx]
        nearest = np.where(np.abs(beats - left) <= np.abs(beats - right), left, right)
        window = min(BIAS_WINDOW_S, 0.25 * 60.0 / ref_bpm)
        d = beats - nearest
        offsets = d[np.abs(d) <= window].tolist()
    return ClipScore(name, style, True, int(beats.size), bpm, ref_bpm, float(f), float(cmlt), float(amlt),
                     _tempo_hit(bpm, ref_bpm, (1.0,)), _tempo_hit(bpm, ref_bpm, (1.0, 2.0, 3.0, 0.5, 1 / 3)),
                     tuple(offsets), seconds)


def summarize(scores: list[ClipScore]) -> Summary:
    music = [s for s in scores if s.is_music]
    negatives = [s for s in scores if not s.is_music]
    offsets = [o for s in music for o in s.offsets_s]
    styles: dict[str, list[float]] = {}
    for s in music:
        styles.setdefault(s.style, []).append(s.f_measure)

    def mean(attr: str) -> float:
        return float(np.mean([getattr(s, attr) for s in music])) if music else 0.0

    return Summary(
        music_clips=len(music), negative_clips=len(negatives),
        f_measure=mean("f_measure"), cmlt=mean("cmlt"), amlt=mean("amlt"), acc1=mean("acc1"), acc2=mean("acc2"),
        median_bias_ms=1000.0 * float(np.median(offsets)) if offsets else float("nan"),
        music_without_beats=sum(s.n_beats == 0 for s in music),
        negatives_with_beats=sum(s.n_beats > 0 for s in negatives),
        ms_per_clip=1000.0 * float(np.mean([s.seconds for s in scores])) if scores else 0.0,
        by_style={k: float(np.mean(v)) for k, v in styles.items()},
    )
