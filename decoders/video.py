"""Video frames at ``spec.fps`` with real timestamps, decoding as little as possible (PyAV).

Packets are demuxed in order (cheap) and held back; when one reaches the next
target of the ``FramePlan``, the held packets of its GOP (its keyframe and
everything after it, which the target frame may reference) are fed to the
decoder.  Packets still held when the next keyframe arrives are dropped unfed,
and before the next GOP is fed the decoder is drained and flushed, exactly as
after a seek.  This is a seek
that never goes backwards and needs no index, so it also works on fragmented,
truncated or badly indexed files.  See docs/decoders.md for the measurements.

Modes (``spec.video_mode``):
  exact      the first frame at or after each target, every frame decodable
  fast       as exact, but the loop filter is skipped and non-reference
             frames are not decoded (a target may move to the next decoded frame)
  keyframes  one keyframe per GOP that holds a target, nothing else decoded

``spec.hwaccel`` = cuda decodes on NVDEC (see hwaccel.py): the same packets are fed, the
surfaces come back to host memory and are re-laid out as the software decoder's planar
format before the one RGB conversion, so the contract above does not change.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from sidepath.core.errors import DecodeError
from sidepath.decoders import hwaccel as hw
from sidepath.decoders.av_open import av_message, open_container
from sidepath.decoders.base import DecodeSpec
from sidepath.decoders.fetched import Fetched
from sidepath.decoders.image import scaled_size
from sidepath.decoders.sampling import FramePlan

__all__ = ["decode_video", "VideoFrames", "VIDEO_MODES"]

log = logging.getLogger(__name__)

VIDEO_MODES = ("exact", "fast", "keyframes")
# a GOP held back longer than this is decoded anyway (streams with very rare keyframes)
_MAX_HELD_PACKETS = 2000
_MAX_BAD_PACKETS = 50
# what NVDEC surfaces arrive as in host memory -> the planar format the software decoder gives;
# the re-layout is lossless, so the RGB conversion (and every pixel) is the software path's
_SOFTWARE_LAYOUT = {"nv12": "yuv420p", "p010le": "yuv420p10le", "p016le": "yuv420p16le",
                    "nv16": "yuv422p", "p210le": "yuv422p10le", "nv24": "yuv444p", "p410le": "yuv444p10le"}


@dataclass(frozen=True, slots=True)
class VideoFrames:
    frames: np.ndarray                  # (N, H, W, 3) uint8 RGB, display orientation
    timestamps_s: tuple[float, ...]
    duration_s: float | None
    notes: tuple[str, ...] = ()


class _Sampler:
    """One decode of one video stream; ``run()`` returns what the plan kept."""

    def __init__(self, container: Any, stream: Any, spec: DecodeSpec, source: str, *, on_gpu: bool = False,
                 max_pixels: int = 0) -> None:
        self.container, self.stream, self.spec, self.source = container, stream, spec, source
        self.max_pixels = max_pixels
        self.on_gpu = on_gpu
        self.gpu_frames = 0         # kept frames that came from NVDEC surfaces
        self.stopped_early = False
        self.mode = spec.video_mode
        self.cc = stream.codec_context
        self.tb = float(stream.time_base) if stream.time_base else 1 / 90000
        self.start = stream.start_time
        self.duration_s = _duration(container, stream)
        self.plan: FramePlan[np.ndarray] = FramePlan(fps=spec.fps, max_frames=spec.max_frames,
                                                     duration_s=self.duration_s,
                                                     max_duration_s=spec.max_duration_s)
        self.reformatter = VideoReformatter()
        self.relayout = VideoReformatter()
        self.rotation: int | None = None
        self.shape: tuple[int, int] | None = None
        self.dirty = False          # the decoder holds state from packets fed since the last flush
        self.reset_needed = False   # packets were skipped since: drain + flush before feeding again
        self.gop_taken = False      # keyframes mode: this GOP's keyframe is already kept
        self.bad_packets = 0
        self.skip_level = "DEFAULT"
        self.notes: list[str] = []
        self.last_t: float | None = None          # of the last decoded frame
        self.last_packet_t: float | None = None   # of the last demuxed packet

    def _time(self, pts: int | None) -> float | None:
        if pts is None:
            return None
        if self.start is None:
            self.start = pts
        return float((pts - self.start) * self.tb)

    def _over_cap(self) -> DecodeError:
        w, h = self.cc.width or 0, self.cc.height or 0
        size = f"{w}x{h} = {w * h} pixels" if w * h > self.max_pixels else "larger"
        return DecodeError(f"video {self.source} switches to frames of {size} mid-stream, over "
                           f"decode.max_pixels={self.max_pixels} (the header said less); send a smaller "
                           "video or raise decode.max_pixels")

    def _decode(self, packet: Any) -> None:
        try:
            frames = self.cc.decode(packet)
        except av.FFmpegError as exc:
            if self.max_pixels and (self.cc.width or 0) * (self.cc.height or 0) > self.max_pixels:
                raise self._over_cap() from None
            self.bad_packets += 1
            log.debug("bad packet in %s: %s", self.source, av_message(exc))
            if self.bad_packets > _MAX_BAD_PACKETS:
                raise
            return
        for frame in frames:
            self._on_frame(frame)

    def _drain(self) -> None:
        if self.dirty:
            self._decode(None)
            self.cc.flush_buffers()
            self.dirty = False
        self.reset_needed = False

    def _feed(self, packets: list[Any]) -> None:
        if self.reset_needed:
            self._drain()
        for p in packets:
            if self.mode == "keyframes":
                if self.gop_taken or not p.is_keyframe:
                    continue
                self.dirty = True
                self._decode(p)
                self._drain()          # a lone keyframe comes out only when the decoder is drained
            else:
                if self.mode == "exact":
                    # a frame shown before the next target is only needed if later frames
                    # reference it: let the decoder skip it when it is a non-reference frame
                    t = self._time(p.pts)
                    self._skip_frames("NONREF" if t is not None and t < self.plan.next_t - self.plan.tol
                                      else "DEFAULT")
                self.dirty = True
                self._decode(p)

    def _skip_frames(self, level: str) -> None:
        if level != self.skip_level:
            self.cc.skip_frame = level
            self.skip_level = level

    def _on_frame(self, frame: Any) -> None:
        if self.max_pixels and frame.width * frame.height > self.max_pixels:
            raise self._over_cap()           # a decoder that did not apply the cap itself
        t = self._time(frame.pts)
        if t is None:        # no timestamp at all: count on from the last one
            rate = float(self.stream.average_rate or 25)
            t = 0.0 if self.last_t is None else self.last_t + 1 / rate
        if self.last_t is not None and t <= self.last_t:   # duplicates after a drain, or broken pts
            return
        self.last_t = t
        if self.mode == "keyframes":
            if self.plan.take(t, lambda: self._rgb(frame)):
                self.gop_taken = True
        else:
            self.plan.offer(t, lambda: self._rgb(frame))

    def _rgb(self, frame: Any) -> np.ndarray:
        if self.rotation is None:
            self.rotation = int(round((getattr(frame, "rotation", 0) or 0) / 90)) % 4
        if self.on_gpu:
            planar = software_layout(frame, self.relayout)
            if planar is not frame:
                frame = planar
                self.gpu_frames += 1
        h, w = scaled_size(frame.height, frame.width, self.spec.max_side)
        if self.shape is not None and (h, w) != self.shape:   # resolution changed mid-stream
            h, w = self.shape
        arr: np.ndarray
        if (h, w) == (frame.height, frame.width):
            arr = self.reformatter.reformat(frame, format="rgb24").to_ndarray()
        else:
            arr = self.reformatter.reformat(frame, width=w, height=h, format="rgb24",
                                            interpolation="AREA").to_ndarray()
        self.shape = (h, w)
        if self.rotation:
            # display matrix rotation is counter-clockwise, as np.rot90 with k > 0
            arr = np.ascontiguousarray(np.rot90(arr, k=self.rotation))
        return arr

    def run(self) -> VideoFrames:
        held: list[Any] = []
        truncated = None
        try:
            for packet in self.container.demux(self.stream):
                if packet.size == 0:
                    continue
                t = self._time(packet.pts if packet.pts is not None else packet.dts)
                if t is not None and (self.last_packet_t is None or t > self.last_packet_t):
                    self.last_packet_t = t
                if packet.is_keyframe:
                    self._close_gop(held, t)
                    held = []
                    if self.mode == "keyframes":
                        self.gop_taken = False
                if self.plan.done:
                    break
                held.append(packet)
                if t is None or self.plan.reaches(t) or len(held) > _MAX_HELD_PACKETS:
                    self._feed(held)
                    held = []
            self._drain()
        except (av.FFmpegError, EOFError) as exc:
            truncated = av_message(exc)
        if truncated is not None:
            self.stopped_early = True
            if not self.plan.kept:
                raise DecodeError(f"cannot decode video {self.source}: {truncated}; the file is "
                                  f"truncated or corrupt")
            self.notes.append(f"decoding stopped early: {truncated}")
        kept = self.plan.result()
        if not kept:
            raise DecodeError(f"video {self.source} has no decodable frames"
                              + (f" ({self.bad_packets} bad packets)" if self.bad_packets else ""))
        frames = [_fit(arr, kept[0][1].shape) for _t, arr in kept]
        duration, seen = self.duration_s, self.last_packet_t
        if seen is not None and not self.plan.done:
            if duration is not None and seen < duration - 1.0:
                self.notes.append(f"video data ends at {seen:.1f} s of the declared {duration:.1f} s "
                                  f"(truncated file?)")
            duration = seen if duration is None else max(duration, seen)
        return VideoFrames(np.stack(frames), tuple(round(t, 6) for t, _ in kept), duration, tuple(self.notes))

    def _close_gop(self, held: list[Any], next_key_t: float | None) -> None:
        """A keyframe at ``next_key_t`` ends the GOP whose unfed packets are ``held``.

        Held packets are never needed: none of them reached the next target when
        it arrived (or it would have been fed), and targets only move forward.
        A frame already fed but still in the decoder's reorder queue comes out
        when the decoder is drained before the next feed.
        """
        if self.mode == "keyframes" and next_key_t is not None and self.gop_taken:
            self.plan.skip_to(next_key_t)
        if held:
            self.reset_needed = True


def software_layout(frame: Any, reformatter: VideoReformatter) -> Any:
    """A frame copied from an NVDEC surface (NV12, P010, ...) as the software decoder's planar
    format (yuv420p, yuv420p10le, ...); other frames unchanged.  Lossless: only the chroma
    samples move.  Converting NV12 straight to RGB would take another swscale path than
    yuv420p does and move pixels by up to 1.5 levels on average (more at sharp colour edges)."""
    planar = _SOFTWARE_LAYOUT.get(frame.format.name)
    return frame if planar is None else reformatter.reformat(frame, format=planar)


def _fit(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if arr.shape == shape:
        return arr
    fitted: np.ndarray = cv2.resize(arr, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return fitted


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration and stream.time_base:
        d = float(stream.duration * stream.time_base)
    elif container.duration:
        d = container.duration / 1_000_000
    else:
        return None
    return d if math.isfinite(d) and d > 0 else None


def decode_video(fetched: Fetched, spec: DecodeSpec, *, max_pixels: int) -> VideoFrames:
    """Sample frames from the first video stream of ``fetched`` according to ``spec``."""
    if spec.video_mode not in VIDEO_MODES:
        raise DecodeError(f"unknown video mode {spec.video_mode!r}; use one of {', '.join(VIDEO_MODES)}")
    try:
        hwaccel = hw.hwaccel_for(spec.hwaccel)
    except ValueError as exc:
        raise DecodeError(str(exc)) from exc
    if hwaccel is None:
        return _decode_video(fetched, spec, max_pixels, None)
    try:
        return _decode_video(fetched, spec, max_pixels, hwaccel)
    except _GpuFailed as exc:
        hw.note_sw_retry(fetched.source, exc.reason)
    return _decode_video(fetched, spec, max_pixels, None)


class _GpuFailed(Exception):
    """NVDEC gave no frames, or stopped early, on a video: decode it again on the CPU."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _decode_video(fetched: Fetched, spec: DecodeSpec, max_pixels: int, hwaccel: Any | None) -> VideoFrames:
    with open_container(fetched, hwaccel) as container:
        if not container.streams.video:
            kinds = sorted({str(s.type) for s in container.streams}) or ["none"]
            raise DecodeError(f"no video stream in {fetched.source} (streams: {', '.join(kinds)})")
        stream = container.streams.video[0]
        cc = stream.codec_context
        if cc is None:                     # FFmpeg has no decoder for this codec
            raise DecodeError(f"unsupported or unknown video codec in {fetched.source}; "
                              f"send H.264, HEVC, VP9, AV1 or another common codec")
        w, h = cc.width or 0, cc.height or 0
        if w * h > max_pixels:
            raise DecodeError(f"video frames are {w}x{h} = {w * h} pixels, over decode.max_pixels={max_pixels}; "
                              f"send a smaller video or raise decode.max_pixels")
        cc.thread_count = 1                # one decoder thread per video; the pool decodes several
        # the header may lie: a stream can switch to larger frames mid-way (a new SPS).  libavcodec
        # checks this cap on every frame before it allocates one (on the coded size, padded to the
        # codec's block size: hence the headroom), and _Sampler refuses the video then
        options = {"max_pixels": str(max_pixels + max_pixels // 8 + 128 * 128)}
        if spec.video_mode == "fast":
            options["skip_loop_filter"] = "all"
            cc.skip_frame = "NONREF"
        elif spec.video_mode == "keyframes":
            cc.skip_frame = "NONKEY"
        cc.options = options
        for other in container.streams:
            if other.index != stream.index:
                other.discard = av.stream.Discard.all      # the demuxer drops their packets without returning them
        on_gpu = hwaccel is not None and bool(cc.is_hwaccel)
        sampler = _Sampler(container, stream, spec, fetched.source, on_gpu=on_gpu, max_pixels=max_pixels)
        if not on_gpu:
            return sampler.run()
        try:
            out = sampler.run()
        except DecodeError as exc:
            raise _GpuFailed(str(exc)) from exc
        if sampler.stopped_early:
            raise _GpuFailed(next((n for n in out.notes if n.startswith("decoding stopped early")), "stopped early"))
        hw.note_hw_decode(on_nvdec=sampler.gpu_frames > 0)
        return out
