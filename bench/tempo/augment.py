"""Training-only audio augmentation for the learned beat tracker: pitch, compression, lossy codecs.

``dataset.py``'s chain (EQ, reverb, noise, clipping, band limit, level) is applied to every
split alike when a clip is rendered.  These three happen only to the *training* clips, in
``train.py``, on a second copy of each clip drawn from its seed, so the cached corpus and the
validation and test splits stay as they are:

- **pitch shift** of up to 4 semitones either way: the clip is resampled (played faster or
  slower), which moves its tempo by the same factor; the training script reads the features
  back at the inverse rate (``tempo_factor``), so the clip's tempo distribution is unchanged
  and only the timbre moves;
- **dynamic-range compression** (feed-forward, RMS detector, 2:1 to 10:1 above a threshold
  6-24 dB under the clip's RMS peak, 1-30 ms detector): flattens the attacks a beat tracker
  reads, as mastering does;
- **lossy re-encoding** through the mp3 (LAME) or AAC encoder of PyAV at 32-128 kbit/s and
  back, re-aligned to the original by cross-correlation (the codecs' priming delay would
  otherwise move every beat by up to 50 ms).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from . import render

__all__ = ["Augmented", "augment"]

SR = render.SAMPLE_RATE
MAX_SEMITONES = 4.0
CODECS = (("libmp3lame", "mp3"), ("aac", "adts"))
BITRATES = (32_000, 48_000, 64_000, 96_000, 128_000)
MAX_CODEC_LAG = 4096            # samples searched for the codec's delay


@dataclass(frozen=True, slots=True)
class Augmented:
    audio: np.ndarray           # mono float32 at SR
    time_scale: float           # new time of an event = old time * time_scale
    detail: str


def augment(audio: np.ndarray, rng: np.random.Generator, p_compress: float = 0.5,
            p_codec: float = 0.5) -> Augmented:
    """A pitch-shifted copy of ``audio``, then compressed and re-encoded, each with its probability."""
    notes = []
    semitones = float(rng.uniform(-MAX_SEMITONES, MAX_SEMITONES))
    x, scale = pitch_shift(audio, semitones)
    notes.append(f"pitch {semitones:+.1f} st")
    if rng.random() < p_compress:
        ratio, below_db, detector_ms = float(rng.uniform(2, 10)), float(rng.uniform(6, 24)), float(rng.uniform(1, 30))
        x = compress(x, ratio, below_db, detector_ms)
        notes.append(f"compressed {ratio:.0f}:1 at -{below_db:.0f} dB")
    if rng.random() < p_codec:
        codec, fmt = CODECS[int(rng.integers(len(CODECS)))]
        rate = int(rng.choice(BITRATES))
        x = reencode(x, codec, fmt, rate)
        notes.append(f"{codec} {rate // 1000} kbit/s")
    peak = float(np.abs(x).max())
    if peak > 0:                                     # the level the clip had (the features ignore it anyway)
        x = x * (float(np.abs(audio).max()) / peak)
    return Augmented(x.astype(np.float32), scale, ", ".join(notes))


def pitch_shift(audio: np.ndarray, semitones: float) -> tuple[np.ndarray, float]:
    """Resample so that the clip plays ``2**(semitones/12)`` times faster; returns it and its time scale."""
    from scipy.signal import resample_poly

    down = 100
    up = max(1, round(down / 2 ** (semitones / 12)))     # shorter (up < down) when shifted up
    y = resample_poly(audio.astype(np.float64), up, down)
    return y, up / down


def compress(x: np.ndarray, ratio: float, below_db: float, detector_ms: float) -> np.ndarray:
    """Feed-forward compressor: gain from a one-pole RMS detector, ``ratio``:1 above the threshold."""
    from scipy.signal import lfilter

    a = float(np.exp(-1.0 / (detector_ms / 1000.0 * SR)))
    power = lfilter([1 - a], [1, -a], x.astype(np.float64) ** 2)
    level_db = 10 * np.log10(np.maximum(power, 1e-12))
    threshold = float(level_db.max()) - below_db
    over = np.maximum(level_db - threshold, 0.0)
    out: np.ndarray = x * 10 ** (-over * (1 - 1 / ratio) / 20)
    return out


def reencode(x: np.ndarray, codec: str, fmt: str, bit_rate: int) -> np.ndarray:
    """Encode with PyAV's ``codec`` at ``bit_rate`` and decode back, aligned to and as long as ``x``."""
    import av

    src = x.astype(np.float32)
    scale = max(float(np.abs(src).max()), 1e-9)
    src = src / scale * 0.9                          # the encoders expect [-1, 1]
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=SR, layout="mono")
        stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(src[None], format="flt", layout="mono")
        frame.sample_rate = SR
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    parts: list[np.ndarray] = []
    with av.open(buf) as inp:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
        for decoded in inp.decode(inp.streams.audio[0]):
            parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(decoded))
        parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    y = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    lag = _delay(src, y)
    y = y[lag: lag + src.size]
    y = np.pad(y, (0, src.size - y.size))
    return y.astype(np.float64) * scale / 0.9


def _delay(x: np.ndarray, y: np.ndarray) -> int:
    """Samples by which ``y`` lags ``x`` (0..MAX_CODEC_LAG), from the cross-correlation of their first seconds."""
    n = min(x.size, y.size - MAX_CODEC_LAG, 4 * SR)
    if n <= 0:
        return 0
    size = 1 << int(np.ceil(np.log2(n + MAX_CODEC_LAG + n)))
    corr = np.fft.irfft(np.fft.rfft(y[: n + MAX_CODEC_LAG], size) * np.conj(np.fft.rfft(x[:n], size)), size)
    return int(np.argmax(corr[: MAX_CODEC_LAG + 1]))
