"""``decode_media``: the one call the engine makes per message (fetch, then decode)."""
from __future__ import annotations

import logging
import time

import av
import cv2

from sidepath.core.errors import DecodeError, FetchError, MessageError
from sidepath.decoders.audio import NoAudioStream, Soundtrack, decode_audio
from sidepath.decoders.av_open import av_message, open_container
from sidepath.decoders.base import MEDIA_KINDS, DecodeSpec, Media
from sidepath.decoders.fetched import Fetched
from sidepath.decoders.fetcher import Fetcher
from sidepath.decoders.image_decode import decode_image
from sidepath.decoders.image_header import sniff_image
from sidepath.decoders.video import decode_video

__all__ = ["decode_media", "decode_fetched"]

log = logging.getLogger(__name__)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)


def decode_media(ref: str, kind: str, spec: DecodeSpec, fetcher: Fetcher) -> Media:
    """Fetch ``ref`` and decode it as ``kind`` (video | image | audio | data) for ``spec``.

    Raises only ``FetchError`` (stage fetch) or ``DecodeError`` (stage decode)
    for bad input.  ``Media.timings_ms`` holds {"fetch": ms, "decode": ms}.
    """
    if kind not in MEDIA_KINDS:
        raise DecodeError(f"unknown media kind {kind!r}; use one of {', '.join(MEDIA_KINDS)}")
    t0 = time.perf_counter()
    fetched = fetcher.fetch(ref)
    fetch_ms = _ms(t0)
    t1 = time.perf_counter()
    try:
        media = decode_fetched(fetched, kind, spec, max_pixels=fetcher.max_pixels)
    except MessageError:
        raise
    except (av.FFmpegError, cv2.error, EOFError) as exc:       # a codec failure we did not foresee
        raise DecodeError(f"cannot decode {kind} {fetched.source}: {av_message(exc)}") from exc
    except OSError as exc:                 # a local file that became unreadable after the check
        raise FetchError(f"cannot read {fetched.source}: {exc.strerror or exc}") from exc
    except MemoryError as exc:
        raise DecodeError(f"out of memory decoding {kind} {fetched.source} ({fetched.size} bytes); "
                          f"lower decode.max_pixels or spec max_frames") from exc
    timings = {"fetch": fetch_ms, "decode": _ms(t1)}
    log.debug("decoded %s %s: %d bytes, %s", kind, fetched.source, fetched.size, timings)
    return Media(frames=media.frames, timestamps_s=media.timestamps_s, audio=media.audio,
                 sample_rate=media.sample_rate, kind=media.kind, bytes_fetched=fetched.size,
                 timings_ms=timings, duration_s=media.duration_s, notes=media.notes)


def _image(fetched: Fetched, spec: DecodeSpec, max_pixels: int) -> Media:
    if not spec.frames and spec.audio:
        raise DecodeError(f"an image has no audio ({fetched.source}); the models of this worker need sound")
    if fetched.size == 0:
        raise DecodeError(f"empty file: 0 bytes from {fetched.source}")
    img = decode_image(fetched.read(), max_pixels=max_pixels, max_side=spec.max_side)
    return Media(frames=img[None], timestamps_s=(0.0,), kind="image")


def _video(fetched: Fetched, spec: DecodeSpec, max_pixels: int) -> Media:
    frames = None
    timestamps: tuple[float, ...] = ()
    duration = None
    notes: list[str] = []
    if spec.frames or not spec.audio:
        v = decode_video(fetched, spec, max_pixels=max_pixels)
        frames, timestamps, duration = v.frames, v.timestamps_s, v.duration_s
        notes += v.notes
    track: Soundtrack | None = None
    if spec.audio:
        try:
            track = decode_audio(fetched, sample_rate=spec.sample_rate, max_s=spec.max_audio_s, what="video")
        except NoAudioStream as exc:
            if not spec.frames:
                raise
            notes.append(str(exc))     # the frame models still get their frames
        else:
            notes += track.notes
            duration = duration if duration is not None else track.duration_s
    return Media(frames=frames, timestamps_s=timestamps, audio=None if track is None else track.samples,
                 sample_rate=None if track is None else track.sample_rate, kind="video",
                 duration_s=duration, notes=tuple(notes))


def _audio(fetched: Fetched, spec: DecodeSpec) -> Media:
    track = decode_audio(fetched, sample_rate=spec.sample_rate, max_s=spec.max_audio_s, what="audio file")
    return Media(audio=track.samples, sample_rate=track.sample_rate, kind="audio",
                 duration_s=track.duration_s, notes=track.notes)


def decode_fetched(fetched: Fetched, kind: str, spec: DecodeSpec, *, max_pixels: int) -> Media:
    """Decode bytes already fetched (no timings, no byte count)."""
    if kind == "image":
        return _image(fetched, spec, max_pixels)
    if kind == "video":
        return _video(fetched, spec, max_pixels)
    if kind == "audio":
        return _audio(fetched, spec)
    # "data": decide by content (an image by its signature, else what the container holds);
    # Media.kind then names what was found, so models can tell
    if sniff_image(fetched.head(64)) is not None:
        return _image(fetched, spec, max_pixels)
    return _video_or_audio(fetched, spec, max_pixels)


def _video_or_audio(fetched: Fetched, spec: DecodeSpec, max_pixels: int) -> Media:
    with open_container(fetched) as container:
        has_video = bool(container.streams.video)
    return _video(fetched, spec, max_pixels) if has_video else _audio(fetched, spec)
