"""Which video frames to keep: pure logic, no decoding (unit-tested on its own).

Targets lie on a grid ``0, step, 2*step, ...`` seconds from the stream start,
``step = 1/fps``, widened to ``duration / max_frames`` when the duration is known
and the video is too long for ``max_frames`` at ``fps`` (so the frames spread
evenly).  A decoded frame is kept when it is the first at or after the next
target; a gap in a variable-frame-rate video therefore yields one frame, with
its real timestamp, not copies.  When the duration is unknown or wrong the grid
goes on past it; whenever ``2 * max_frames`` frames are held every other one is
dropped and the step doubles, so memory stays bounded and the final pick
(evenly spaced) still covers the whole video.
"""
from __future__ import annotations

import math
from typing import Any, Generic, TypeVar

import numpy as np

__all__ = ["FramePlan"]

T = TypeVar("T")


class FramePlan(Generic[T]):
    """Decides, frame by frame, which timestamps to keep; holds the kept items."""

    def __init__(self, *, fps: float, max_frames: int, duration_s: float | None,
                 max_duration_s: float, tol_s: float = 1e-3) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        if max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames!r}")
        self.max_frames, self.limit_s, self.tol = int(max_frames), float(max_duration_s), float(tol_s)
        known = duration_s is not None and math.isfinite(duration_s) and duration_s > 0
        horizon = min(float(duration_s), self.limit_s) if known else None  # type: ignore[arg-type]
        self.step = 1.0 / fps
        if horizon is not None and horizon * fps > self.max_frames:
            self.step = horizon / self.max_frames
        self.next_t = 0.0
        self.done = False
        self.kept: list[tuple[float, T]] = []

    def wants_before(self, t_s: float) -> bool:
        """Is a target still open before ``t_s`` (a keyframe time: must that GOP be decoded)?"""
        return not self.done and self.next_t < t_s - self.tol

    def reaches(self, t_s: float) -> bool:
        """Does a frame at ``t_s`` meet or pass the next target (so it, or one before it, must be decoded)?"""
        return not self.done and t_s >= self.next_t - self.tol

    def offer(self, t_s: float, make: Any) -> bool:
        """A frame at ``t_s`` was decoded; ``make()`` builds the item when it is kept."""
        if self.done:
            return False
        if t_s > self.limit_s + self.tol:
            self.done = True
            return False
        if t_s < self.next_t - self.tol:
            return False
        self._keep(t_s, make())
        return True

    def take(self, t_s: float, make: Any) -> bool:
        """Keep a frame for the open target even if it lies before it (approximate, keyframe modes)."""
        if self.done:
            return False
        if t_s > self.limit_s + self.tol:
            self.done = True
            return False
        self._keep(t_s, make())
        return True

    def skip_to(self, t_s: float) -> None:
        """Targets before ``t_s`` are served (a kept keyframe stands for its whole GOP)."""
        if not self.done and self.next_t < t_s - self.tol:
            self.next_t = self.step * math.ceil((t_s - self.tol) / self.step)
            self.done = self.next_t > self.limit_s + self.tol

    def _keep(self, t_s: float, item: T) -> None:
        self.kept.append((t_s, item))
        if len(self.kept) >= 2 * self.max_frames:
            self.kept = self.kept[::2]
            self.step *= 2
        self.next_t = self.step * (math.floor((t_s + self.tol) / self.step) + 1)
        self.done = self.next_t > self.limit_s + self.tol

    def result(self) -> list[tuple[float, T]]:
        """The kept (timestamp, item) pairs, at most ``max_frames``, evenly spread."""
        n = len(self.kept)
        if n <= self.max_frames:
            return list(self.kept)
        idx = np.unique(np.linspace(0, n - 1, self.max_frames).round().astype(int))
        return [self.kept[i] for i in idx]
