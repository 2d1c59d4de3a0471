"""The decoder contract: a media reference in, arrays out.

``decode_media(ref, kind, spec, fetcher)`` turns an ``http(s)://`` URL, a local
path or inline base64 into a ``Media``: RGB uint8 frames with their real
timestamps and/or a mono float32 soundtrack.  Failures raise ``FetchError``
(stage "fetch") or ``DecodeError`` (stage "decode") with a message a user can
act on; they never crash the worker.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Media", "DecodeSpec", "MEDIA_KINDS"]

#: Request fields that may carry media, in the order they are looked up.
MEDIA_KINDS = ("video", "image", "audio", "data")


@dataclass(frozen=True, slots=True)
class DecodeSpec:
    """What the loaded models need from one message (the union over models)."""

    frames: bool = True
    audio: bool = False
    fps: float = 1.0
    max_frames: int = 32
    video_mode: str = "exact"          # exact | fast | keyframes
    max_side: int = 0                  # downscale frames so max(h, w) <= this (0 = keep)
    sample_rate: int = 22050
    max_audio_s: float = 120.0
    max_duration_s: float = 3600.0
    hwaccel: str = "none"              # none | cuda | cuda:N | auto: decode video on NVDEC (see hwaccel.py)


# not frozen: one is built per message, and a frozen dataclass costs 2-3x to construct; never mutated
@dataclass(slots=True)
class Media:
    """Decoded content of one message."""

    frames: np.ndarray | None = None               # (N, H, W, 3) uint8 RGB
    timestamps_s: tuple[float, ...] = ()
    audio: np.ndarray | None = None                # (samples,) float32 mono
    sample_rate: int | None = None
    kind: str = "image"                            # video | image | audio ("data" resolves to one) | record
    raw: bytes | None = None                       # the message itself, for models that need no decoding
    bytes_fetched: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    duration_s: float | None = None                # of the whole media, when known
    notes: tuple[str, ...] = ()                    # e.g. "decoding stopped early: ..." (truncated file)

    @property
    def nbytes(self) -> int:
        n = 0 if self.frames is None else self.frames.nbytes
        return n + (0 if self.audio is None else self.audio.nbytes)
