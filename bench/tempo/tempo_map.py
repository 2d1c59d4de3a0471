"""A tempo map: musical time in beats <-> clock time in seconds.

The map is piecewise: each segment holds a start beat and a tempo that may ramp
linearly (in beats) to an end tempo.  The reference beats of a rendered clip are
``times_of(range(n))``: they come from the same map that placed the notes, so
the annotation is exact by construction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["TempoSegment", "TempoMap"]


@dataclass(frozen=True, slots=True)
class TempoSegment:
    start_beat: float
    bpm_start: float
    bpm_end: float          # equal to bpm_start for a constant tempo


@dataclass(frozen=True, slots=True)
class TempoMap:
    segments: tuple[TempoSegment, ...]
    total_beats: float

    @classmethod
    def constant(cls, bpm: float, total_beats: float) -> TempoMap:
        return cls((TempoSegment(0.0, bpm, bpm),), total_beats)

    @classmethod
    def ramp(cls, bpm_start: float, bpm_end: float, total_beats: float) -> TempoMap:
        return cls((TempoSegment(0.0, bpm_start, bpm_end),), total_beats)

    @classmethod
    def step(cls, bpm_a: float, bpm_b: float, at_beat: float, total_beats: float) -> TempoMap:
        return cls((TempoSegment(0.0, bpm_a, bpm_a), TempoSegment(at_beat, bpm_b, bpm_b)), total_beats)

    def _segment_end(self, i: int) -> float:
        return self.segments[i + 1].start_beat if i + 1 < len(self.segments) else self.total_beats

    def _seconds_within(self, i: int, beats: float) -> float:
        """Seconds from the start of segment i to ``beats`` beats into it."""
        seg = self.segments[i]
        length = max(self._segment_end(i) - seg.start_beat, 1e-9)
        slope = (seg.bpm_end - seg.bpm_start) / length      # bpm per beat
        if abs(slope) < 1e-12:
            return 60.0 * beats / seg.bpm_start
        # d(seconds)/d(beat) = 60 / (bpm_start + slope * beat)
        return 60.0 / slope * math.log((seg.bpm_start + slope * beats) / seg.bpm_start)

    def time_of(self, beat: float) -> float:
        t = 0.0
        for i, seg in enumerate(self.segments):
            end = self._segment_end(i)
            if beat <= end or i == len(self.segments) - 1:
                return t + self._seconds_within(i, beat - seg.start_beat)
            t += self._seconds_within(i, end - seg.start_beat)
        raise AssertionError("unreachable")

    def times_of(self, beats: np.ndarray | list[float]) -> np.ndarray:
        return np.array([self.time_of(float(b)) for b in beats], dtype=np.float64)

    def bpm_at(self, beat: float) -> float:
        for i in reversed(range(len(self.segments))):
            seg = self.segments[i]
            if beat >= seg.start_beat or i == 0:
                length = max(self._segment_end(i) - seg.start_beat, 1e-9)
                return seg.bpm_start + (seg.bpm_end - seg.bpm_start) * (beat - seg.start_beat) / length
        raise AssertionError("unreachable")
