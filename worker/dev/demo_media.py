"""Real encoded media with known content, for the demo and `sidepath produce --demo`.

Videos are H.264 (+ AAC soundtrack with a click at a known tempo), images JPEG
or PNG; content is deterministic for a given seed so results are repeatable.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["make_image", "make_video", "click_track"]


def _frame(seed: int, t: float, size: tuple[int, int]) -> np.ndarray:
    """An RGB frame: a seeded colour field with a square that moves with t."""
    w, h = size
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=3, dtype=np.uint8)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = base
    yy, xx = np.mgrid[0:h, 0:w]
    img[..., 0] = (base[0] + xx * 255 // max(1, w)) % 256
    side = max(8, min(w, h) // 4)
    x0 = int((w - side) * (0.5 + 0.5 * np.sin(t + seed)))
    y0 = int((h - side) * (0.5 + 0.5 * np.cos(t * 0.7 + seed)))
    img[y0:y0 + side, x0:x0 + side] = 255 - base
    return img


def make_image(path: Path, *, seed: int = 0, size: tuple[int, int] = (320, 240)) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = _frame(seed, 0.0, size)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def click_track(seconds: float, *, bpm: float = 120.0, sample_rate: int = 44100) -> np.ndarray:
    """Mono float32 clicks (short decaying 1 kHz bursts) on every beat."""
    n = int(seconds * sample_rate)
    out = np.zeros(n, np.float32)
    burst_n = int(0.03 * sample_rate)
    t = np.arange(burst_n) / sample_rate
    burst = (np.sin(2 * np.pi * 1000 * t) * np.exp(-t * 120)).astype(np.float32) * 0.8
    for beat in np.arange(0, seconds, 60.0 / bpm):
        i = int(beat * sample_rate)
        out[i:i + burst_n] += burst[: max(0, min(burst_n, n - i))]
    return out


def make_video(path: Path, *, seconds: float = 3.0, fps: int = 25, size: tuple[int, int] = (320, 240),
               seed: int = 0, audio: bool = True, bpm: float = 120.0, keyint_s: float = 2.0) -> Path:
    """An H.264 MP4 (yuv420p) with an optional AAC click track at ``bpm``."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        vs.codec_context.gop_size = max(1, int(keyint_s * fps))
        vs.options = {"preset": "ultrafast", "tune": "zerolatency"}
        astream = None
        if audio:
            astream = out.add_stream("aac", rate=44100)
            astream.layout = "mono"
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(_frame(seed, i / fps, size), format="rgb24")
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if astream is not None:
            pcm = click_track(seconds, bpm=bpm)
            step = 1024
            for start in range(0, len(pcm), step):
                chunk = pcm[start:start + step]
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
                af.sample_rate = 44100
                af.pts = start
                af.time_base = Fraction(1, 44100)
                for packet in astream.encode(af):
                    out.mux(packet)
            for packet in astream.encode():
                out.mux(packet)
    return path
