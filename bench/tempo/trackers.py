"""The trackers under test, behind one call: audio in, (beat times, bpm) out."""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from .render import SAMPLE_RATE

__all__ = ["Tracker", "sidepath_tracker", "librosa_tracker", "timed"]

#: audio (mono float32 at SAMPLE_RATE) -> (beat times in seconds, bpm or None)
Tracker = Callable[[np.ndarray], tuple[np.ndarray, "float | None"]]


def sidepath_tracker(**options: float) -> Tracker:
    import torch

    from sidepath.decoders.base import Media
    from sidepath.models.tempo import TempoModel

    model = TempoModel(**options)
    model.load(torch.device("cpu"))

    def track(audio: np.ndarray) -> tuple[np.ndarray, float | None]:
        item = model.prepare(Media(audio=audio, sample_rate=SAMPLE_RATE, kind="audio"))
        result = model.predict([item])[0]
        return np.asarray(result["beats"], dtype=np.float64), result["bpm"]

    return track


def librosa_tracker() -> Tracker:
    import librosa

    def track(audio: np.ndarray) -> tuple[np.ndarray, float | None]:
        tempo, beats = librosa.beat.beat_track(y=audio, sr=SAMPLE_RATE, units="time")
        bpm = float(np.atleast_1d(tempo)[0])
        return np.asarray(beats, dtype=np.float64), (bpm or None)

    return track


def timed(tracker: Tracker, audio: np.ndarray) -> tuple[np.ndarray, float | None, float]:
    start = time.perf_counter()
    beats, bpm = tracker(audio)
    return beats, bpm, time.perf_counter() - start
