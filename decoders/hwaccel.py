"""GPU video decoding (NVDEC) through PyAV's CUDA hwaccel, behind the same decoder contract.

``decode.hwaccel`` is ``none`` (default), ``cuda`` or ``auto``.  It is resolved once at
start by ``resolve_hwaccel`` (called from ``merged_spec``) into what ``DecodeSpec.hwaccel``
carries: ``"none"``, ``"cuda"`` or ``"cuda:N"`` (the model's GPU when ``model.device`` names
one).  Resolving probes the GPU for real: the FFmpeg inside PyAV must have CUDA, torch must
see a device, and a tiny H.264 clip must decode on NVDEC with software fallback disabled.

- ``cuda`` that fails the probe is a ``ConfigError`` at start (as ``model.device = "cuda"``
  is on a machine without a GPU), naming the reason and the fix.
- ``auto`` that fails the probe decodes on the CPU, saying why in one log line.

At decode time the frames come back exactly as from the software decoder: PyAV copies
each NVDEC surface to host memory (NV12, or P010 for 10-bit), the video decoder re-lays
it out as the planar format the software decoder gives (yuv420p, yuv420p10le; lossless)
and the one RGB conversion path follows, so frames, timestamps, rotation and sampling
are unchanged.  Two safety nets keep a worker alive if the GPU goes away later:

- a container whose CUDA device cannot be opened is opened again without it; the first
  time this happens one warning is logged and the process decodes on the CPU from then on;
- a video that NVDEC fails on (no frames, or decoding stops early) is decoded again on the
  CPU, so NVDEC never turns a playable video into an error.

FFmpeg itself falls back to its software decoder, per stream, for a stream NVDEC cannot
take (a codec or profile the GPU lacks, such as H.264 4:4:4).
"""
from __future__ import annotations

import functools
import io
import logging
import os
import threading
from fractions import Fraction
from typing import Any

import av
import av.codec.hwaccel as av_hwaccel
import numpy as np

from sidepath.core.errors import ConfigError

__all__ = ["HWACCEL_CHOICES", "resolve_hwaccel", "nvdec_problem", "hwaccel_for", "device_failed",
           "note_hw_decode", "note_sw_retry", "stats"]

log = logging.getLogger(__name__)

HWACCEL_CHOICES = ("none", "cuda", "auto")

_lock = threading.Lock()
_broken: str | None = None                 # why CUDA decoding was given up in this process
#: videos decoded on NVDEC; ones FFmpeg decoded in software though a device was attached (a stream
#: NVDEC cannot take); ones decoded again on the CPU after NVDEC failed; failed device opens
_counts = {"nvdec_videos": 0, "ffmpeg_software": 0, "cpu_retries": 0, "device_failures": 0}


def _device_index(model_device: str | None) -> int | None:
    spec = str(model_device or "").strip().lower()
    if spec.startswith("cuda:") and spec[5:].isdigit():
        return int(spec[5:])
    return None


def _visible() -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "unset")


def _probe_clip() -> bytes:
    """A tiny H.264 stream (Annex B, 3 frames, 128x96) for the NVDEC probe."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as out:
        st = out.add_stream("libx264", rate=Fraction(25))
        st.width, st.height, st.pix_fmt = 128, 96, "yuv420p"
        st.options = {"preset": "ultrafast", "bf": "0"}
        for i in range(3):
            img = np.full((96, 128, 3), 40 * i, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for p in st.encode(frame):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    return buf.getvalue()


def _hwaccel(index: int | None, *, fallback: bool) -> Any:
    # primary_ctx: use the device's primary CUDA context (the one torch uses) instead of a new
    # context per video: no extra context memory, and opening a device costs a retain
    return av_hwaccel.HWAccel("cuda", device=None if index is None else str(index),
                              allow_software_fallback=fallback, options={"primary_ctx": "1"})


@functools.cache
def nvdec_problem(index: int | None = None) -> str | None:
    """``None`` when NVDEC decodes on this machine (device ``index``), else the reason it does not."""
    available = av_hwaccel.hwdevices_available()
    if "cuda" not in available:
        return (f"the FFmpeg inside PyAV {av.__version__} was built without CUDA "
                f"(hardware devices: {', '.join(available) or 'none'})")
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        if not torch.cuda.is_available():
            return f"no CUDA device is visible (CUDA_VISIBLE_DEVICES={_visible()})"
        if index is not None and index >= torch.cuda.device_count():
            return (f"CUDA device {index} is not visible ({torch.cuda.device_count()} visible, "
                    f"CUDA_VISIBLE_DEVICES={_visible()})")
    try:
        clip = _probe_clip()
    except Exception as exc:          # no libx264 in this build: the device check below still runs
        log.debug("no NVDEC probe clip (%s); checking the CUDA device only", exc)
        clip = None
    try:
        if clip is None:
            _hwaccel(index, fallback=False).create(av.codec.Codec("h264", "r"))
            return None
        with av.open(io.BytesIO(clip), "r", format="h264", hwaccel=_hwaccel(index, fallback=False)) as c:
            stream = c.streams.video[0]
            if not stream.codec_context.is_hwaccel:
                return "FFmpeg offers no CUDA decoder for H.264"
            stream.codec_context.thread_count = 1      # as the video decoder runs it
            n = sum(1 for _ in c.decode(stream))
    except Exception as exc:
        text = str(getattr(exc, "strerror", None) or exc).strip().splitlines()
        return f"NVDEC could not decode a test clip ({text[0] if text else type(exc).__name__})"
    if n == 0:
        return "NVDEC returned no frames for a test clip"
    return None


def resolve_hwaccel(requested: str, model_device: str | None = None) -> str:
    """``decode.hwaccel`` -> ``DecodeSpec.hwaccel``: ``"none"``, ``"cuda"`` or ``"cuda:N"``.

    ``cuda`` that cannot work here is a ``ConfigError``; ``auto`` then means ``none``.
    """
    requested = str(requested).strip().lower()
    if requested not in HWACCEL_CHOICES:
        raise ConfigError("decode.hwaccel", requested, f"use one of {', '.join(HWACCEL_CHOICES)}")
    if requested == "none":
        return "none"
    index = _device_index(model_device)
    problem = nvdec_problem(index)
    if problem is None:
        target = "cuda" if index is None else f"cuda:{index}"
        log.info("decode.hwaccel=%s: video is decoded on NVDEC (%s)", requested, target)
        return target
    if requested == "cuda":
        raise ConfigError("decode.hwaccel", "cuda",
                          f"{problem}; run on a host with an NVIDIA GPU and driver (in a container, "
                          f"NVIDIA_DRIVER_CAPABILITIES must include video), or use auto or none")
    log.info("decode.hwaccel=auto: video is decoded on the CPU (%s)", problem)
    return "none"


def _parse(value: str) -> tuple[bool, int | None]:
    value = str(value or "none").strip().lower()
    if value in ("", "none"):
        return False, None
    if value == "auto":
        return nvdec_problem(None) is None, None
    if value == "cuda":
        return True, None
    if value.startswith("cuda:") and value[5:].isdigit():
        return True, int(value[5:])
    raise ValueError(f"unknown hwaccel {value!r}; use none, cuda, cuda:N or auto")


@functools.lru_cache(maxsize=8)
def _settings(index: int | None) -> Any:
    return _hwaccel(index, fallback=True)


def hwaccel_for(value: str) -> Any | None:
    """The ``HWAccel`` for ``av.open`` for ``DecodeSpec.hwaccel``; ``None``: decode on the CPU."""
    use, index = _parse(value)
    if not use or _broken is not None:
        return None
    return _settings(index)


def device_failed(reason: str) -> None:
    """The CUDA device could not be opened though the file opens without it: CPU from now on."""
    global _broken
    with _lock:
        _counts["device_failures"] += 1
        if _broken is not None:
            return
        _broken = reason
    log.warning("NVDEC is not usable (%s); decoding video on the CPU from now on in this process", reason)


def note_hw_decode(*, on_nvdec: bool) -> None:
    with _lock:
        _counts["nvdec_videos" if on_nvdec else "ffmpeg_software"] += 1


def note_sw_retry(source: str, reason: str) -> None:
    with _lock:
        _counts["cpu_retries"] += 1
    log.warning("NVDEC failed on %s (%s); decoded it again on the CPU", source, reason)


def stats() -> dict[str, Any]:
    """The counts above since start, and ``given_up``: why CUDA decoding was given up (``None``: it was not)."""
    with _lock:
        return {**_counts, "given_up": _broken}

