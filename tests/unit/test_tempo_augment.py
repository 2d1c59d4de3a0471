"""The training-only augmentation of the learned beat tracker (bench/tempo/augment.py).

A click train with known times goes through each step; the clicks must come out where the
returned time scale says (pitch shift), unmoved by the codecs' priming delay (re-encoding
through PyAV's real mp3 and AAC encoders), and flatter after compression.
"""
from __future__ import annotations

import numpy as np
import pytest

from bench.tempo import augment

SR = augment.SR


def _clicks(seconds: float = 6.0, period_s: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    audio = rng.standard_normal(int(seconds * SR)) * 1e-3
    times = np.arange(0.3, seconds - 0.3, period_s)
    t = np.arange(int(0.05 * SR)) / SR
    click = np.sin(2 * np.pi * 1500 * t) * np.exp(-t / 0.005)
    for at in times:
        s = round(at * SR)
        audio[s : s + click.size] += click
    return audio, times


def _onsets(audio: np.ndarray, count: int) -> np.ndarray:
    """Times of the ``count`` strongest attacks (at least 0.2 s apart)."""
    env = np.abs(audio)
    out: list[float] = []
    for i in np.argsort(env)[::-1]:
        t = i / SR
        if all(abs(t - o) > 0.2 for o in out):
            out.append(t)
            if len(out) == count:
                break
    return np.sort(np.array(out))


@pytest.mark.parametrize("semitones", [-4.0, -1.5, 2.0, 4.0])
def test_pitch_shift_moves_events_by_its_time_scale(semitones: float) -> None:
    audio, times = _clicks()
    shifted, scale = augment.pitch_shift(audio, semitones)
    assert scale == pytest.approx(2 ** (-semitones / 12), rel=0.01)
    assert shifted.size == pytest.approx(audio.size * scale, abs=2)
    assert np.abs(_onsets(shifted, times.size) - times * scale).max() < 0.002


@pytest.mark.parametrize(("codec", "fmt"), augment.CODECS)
def test_reencoding_keeps_the_events_in_place(codec: str, fmt: str) -> None:
    audio, times = _clicks()
    coded = augment.reencode(audio, codec, fmt, 64_000)
    assert coded.size == audio.size
    assert not np.allclose(coded, audio, atol=1e-3)            # it went through the lossy codec
    assert np.abs(_onsets(coded, times.size) - times).max() < 0.002
    assert np.corrcoef(coded, audio)[0, 1] > 0.9


def test_compression_narrows_the_dynamic_range() -> None:
    audio, _times = _clicks()
    out = augment.compress(audio, ratio=8.0, below_db=20.0, detector_ms=2.0)
    # the clicks (loud) come down towards the noise floor (quiet, under the threshold: untouched)
    ranges = [np.percentile(np.abs(x), 99.5) / np.median(np.abs(x)) for x in (audio, out)]
    assert ranges[1] < 0.5 * ranges[0]
    assert np.median(np.abs(out)) == pytest.approx(np.median(np.abs(audio)), rel=0.05)


def test_augment_is_reproducible_from_its_seed_and_keeps_the_level() -> None:
    audio, _times = _clicks()
    a = augment.augment(audio, np.random.default_rng(5), p_compress=1.0, p_codec=1.0)
    b = augment.augment(audio, np.random.default_rng(5), p_compress=1.0, p_codec=1.0)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.detail == b.detail and "pitch" in a.detail and "compressed" in a.detail and "kbit/s" in a.detail
    assert a.audio.dtype == np.float32
    assert np.abs(a.audio).max() == pytest.approx(np.abs(audio).max(), rel=1e-5)
