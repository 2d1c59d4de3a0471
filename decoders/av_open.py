"""Opening fetched bytes as a media container with PyAV, safely.

FFmpeg's demuxers can open further URLs by themselves (HLS and DASH playlists,
``concat`` lists); fetched content is untrusted, so only the plain container
demuxers below are allowed (``format_whitelist``), and input is always handed
over as a Python file object, never as a name FFmpeg would interpret.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import av
import av.container

from sidepath.core.errors import DecodeError
from sidepath.decoders import hwaccel as hw
from sidepath.decoders.fetched import Fetched
from sidepath.decoders.image_decode import describe_bytes

__all__ = ["open_container", "av_message", "SAFE_DEMUXERS"]

#: FFmpeg demuxers fetched media may use (``mov`` covers mp4/m4a/3gp, ``matroska`` webm)
SAFE_DEMUXERS = ("mov", "matroska", "avi", "flv", "mpegts", "mpeg", "ogg", "wav", "mp3", "aac", "flac",
                 "asf", "m4v", "h264", "hevc", "ivf", "aiff", "caf", "w64", "amr", "gif")


def av_message(exc: BaseException) -> str:
    """FFmpeg's reason without the errno and the '<none>' file name PyAV adds."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


def _open(stream: Any, hwaccel: Any | None) -> av.container.InputContainer:
    return av.open(stream, mode="r", options={"format_whitelist": ",".join(SAFE_DEMUXERS)},
                   metadata_errors="ignore", hwaccel=hwaccel)


@contextlib.contextmanager
def open_container(fetched: Fetched, hwaccel: Any | None = None) -> Iterator[av.container.InputContainer]:
    """The container over ``fetched``; ``DecodeError`` when it is empty or not a media file.

    ``hwaccel`` (an ``av.codec.hwaccel.HWAccel``, see ``hwaccel.py``) decodes video on the GPU.
    If the container opens only without it, the GPU device is what failed: this is reported once
    (``hwaccel.device_failed``) and the container is opened for CPU decoding.
    """
    if fetched.size == 0:
        raise DecodeError(f"empty file: 0 bytes from {fetched.source}")
    stream = fetched.open()
    try:
        hw_error = None
        if hwaccel is not None:
            try:
                container = _open(stream, hwaccel)
            except (av.FFmpegError, EOFError, ValueError, RuntimeError) as exc:
                hw_error = av_message(exc)
                stream.close()
                stream = fetched.open()
        if hwaccel is None or hw_error is not None:
            try:
                container = _open(stream, None)
            except (av.FFmpegError, EOFError, ValueError) as exc:
                raise DecodeError(f"not a playable media file: {fetched.size} bytes, "
                                  f"{describe_bytes(fetched.head(64))} ({av_message(exc)})") from exc
            if hw_error is not None:      # it opens without the GPU: the GPU is what failed
                hw.device_failed(f"opening the CUDA device failed: {hw_error}")
        try:
            yield container
        finally:
            container.close()
    finally:
        stream.close()
