"""Soundtracks as mono float32 at the requested sample rate (PyAV decoder + resampler)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import av
import numpy as np

from sidepath.core.errors import DecodeError
from sidepath.decoders.av_open import av_message, open_container
from sidepath.decoders.fetched import Fetched

__all__ = ["decode_audio", "Soundtrack", "NoAudioStream"]

log = logging.getLogger(__name__)


class NoAudioStream(DecodeError):
    """The container has no audio stream (a silent video)."""


@dataclass(frozen=True, slots=True)
class Soundtrack:
    samples: np.ndarray          # (n,) float32 mono in [-1, 1]
    sample_rate: int
    duration_s: float | None     # of the whole stream, when the container says
    notes: tuple[str, ...] = ()


def decode_audio(fetched: Fetched, *, sample_rate: int, max_s: float, what: str = "file") -> Soundtrack:
    """The first audio stream of ``fetched``, downmixed and resampled, at most ``max_s`` seconds (0: all).

    ``what`` names the input in messages ("video", "audio file").
    """
    if sample_rate <= 0:
        raise DecodeError(f"sample rate must be positive, got {sample_rate}")
    limit = int(round(max_s * sample_rate)) if max_s > 0 else 2**62     # 0: no cap
    with open_container(fetched) as container:
        if not container.streams.audio:
            kinds = sorted({str(s.type) for s in container.streams}) or ["none"]
            raise NoAudioStream(f"{what} has no audio stream ({fetched.source}, streams: {', '.join(kinds)}); "
                                f"send media with sound or use a model that does not need audio")
        stream = container.streams.audio[0]
        if stream.codec_context is None:   # FFmpeg has no decoder for this codec
            raise DecodeError(f"unsupported or unknown audio codec in {fetched.source}; send AAC, MP3, Opus, FLAC, "
                              f"PCM or another common codec")
        stream.codec_context.thread_count = 1
        for other in container.streams:
            if other.index != stream.index:
                other.discard = av.stream.Discard.all
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else (
            container.duration / 1_000_000 if container.duration else None)
        # resample to planar stereo (FFmpeg's standard downmix for surround) and average the two
        # channels ourselves: FFmpeg's own stereo-to-mono mix adds them at -3 dB, which can clip
        channels = stream.codec_context.channels or 1
        resampler = av.AudioResampler(format="fltp", layout="stereo" if channels > 1 else "mono",
                                      rate=sample_rate)
        chunks: list[np.ndarray] = []
        total = 0
        notes: list[str] = []

        def add(frames: list[av.AudioFrame]) -> None:
            nonlocal total
            for rf in frames:
                planes = rf.to_ndarray()
                a = planes[0] if planes.shape[0] == 1 else planes.mean(axis=0, dtype=np.float32)
                chunks.append(a)
                total += a.size

        try:
            for frame in container.decode(stream):
                add(resampler.resample(frame))
                if total >= limit:
                    break
            add(resampler.resample(None))
        except (av.FFmpegError, EOFError) as exc:
            if total == 0:
                raise DecodeError(f"cannot decode the audio of {fetched.source}: {av_message(exc)}; "
                                  f"the file is truncated or corrupt") from exc
            notes.append(f"audio decoding stopped early: {av_message(exc)}")
    if total == 0:
        raise DecodeError(f"the audio stream of {fetched.source} has no samples")
    samples = np.concatenate(chunks)[:limit].astype(np.float32, copy=False)
    np.clip(samples, -1.0, 1.0, out=samples)
    return Soundtrack(np.ascontiguousarray(samples), sample_rate, duration, tuple(notes))
