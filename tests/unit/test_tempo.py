"""The built-in tempo model on synthetic audio with known beats (numpy in, no decoder), with
either method (learned, dsp).

Tolerances: tempo within 2% of the click track's; every emitted beat within
30 ms of a click; a clip gives the same result alone or in a batch (tempo to
0.01 BPM, beats to 1 ms, confidence to 1e-3).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sidepath.core.errors import ConfigError, ModelError
from sidepath.decoders.base import Media
from sidepath.models.base import Model
from sidepath.models.tempo import SAMPLE_RATE, TempoModel, pad_clips

SR = SAMPLE_RATE


def click_track(bpm: float | list[tuple[float, float]], seconds: float, *, start_s: float = 0.25,
                seed: int = 0, floor_db: float = -55.0) -> tuple[np.ndarray, np.ndarray]:
    """Decaying noise bursts (a wood block, roughly) on every beat over a faint noise floor.

    ``bpm`` is a constant or a list of (time_s, bpm) segments for tempo steps.
    Returns the audio and the click times.
    """
    rng = np.random.default_rng(seed)
    segments = [(0.0, float(bpm))] if not isinstance(bpm, list) else bpm
    times, t = [], start_s
    while t < seconds - 0.05:
        times.append(t)
        current = [b for s, b in segments if s <= t][-1]
        t += 60.0 / current
    audio = rng.standard_normal(int(seconds * SR)).astype(np.float32) * 10 ** (floor_db / 20)
    burst = np.exp(-np.arange(int(0.03 * SR)) / (0.004 * SR)).astype(np.float32)
    for i, t in enumerate(times):
        start = int(round(t * SR))
        piece = burst * rng.standard_normal(burst.size).astype(np.float32) * (0.6 if i % 4 == 0 else 0.4)
        audio[start:start + piece.size] += piece[: audio.size - start]
    return audio, np.array(times)


def run(model: TempoModel, *clips: np.ndarray) -> list[dict]:
    items = [model.prepare(Media(audio=c, sample_rate=SR, kind="audio")) for c in clips]
    return model.predict(items)


def run_padded(model: TempoModel, *clips: np.ndarray) -> list[dict]:
    """One padded batch through the batched core (``predict`` on a CPU goes clip by clip)."""
    return model.analyse(*pad_clips([torch.from_numpy(c) for c in clips], model.device))


@pytest.fixture(scope="module", params=["learned", "dsp"])
def model(request: pytest.FixtureRequest) -> TempoModel:
    """Both methods keep the same contract: every test here runs on each."""
    m = TempoModel(method=request.param)
    m.load("cpu")
    return m


def test_model_follows_the_contract(model: TempoModel) -> None:
    assert isinstance(model, Model)
    assert (model.name, model.input_kind, model.batch_unit) == ("tempo", "audio", "clip")
    spec = model.decode_spec()
    assert spec.audio and not spec.frames
    assert spec.sample_rate == SR and spec.max_audio_s >= 60


@pytest.mark.parametrize("bpm", [75.0, 96.0, 120.0, 143.0, 176.0])
def test_click_track_gives_its_tempo_and_beats_on_the_clicks(model: TempoModel, bpm: float) -> None:
    audio, clicks = click_track(bpm, 14.0, seed=int(bpm))
    result = run(model, audio)[0]
    assert result["bpm"] == pytest.approx(bpm, rel=0.02)
    beats = np.array(result["beats"])
    offsets = np.abs(beats[:, None] - clicks[None, :]).min(axis=1)
    assert offsets.max() <= 0.030, f"beats off the clicks by up to {offsets.max() * 1000:.0f} ms"
    # every click (bar the very first, whose onset frame may be cut) gets a beat
    assert len(beats) >= len(clicks) - 1
    assert result["confidence"] >= 0.5


def test_beats_follow_a_tempo_step(model: TempoModel) -> None:
    audio, clicks = click_track([(0.0, 100.0), (10.0, 128.0)], 20.0, seed=7)
    beats = np.array(run(model, audio)[0]["beats"])
    hit = np.abs(clicks[:, None] - beats[None, :]).min(axis=1) <= 0.05
    assert hit.mean() >= 0.9, f"only {hit.mean():.0%} of the clicks have a beat"
    false = np.abs(beats[:, None] - clicks[None, :]).min(axis=1) > 0.05
    assert false.mean() <= 0.1


@pytest.mark.parametrize("kind", ["silence", "white", "pink", "hum"])
def test_no_pulse_gives_no_tempo_and_no_beats(model: TempoModel, kind: str) -> None:
    rng = np.random.default_rng(3)
    n = 12 * SR
    if kind == "silence":
        audio = np.zeros(n, np.float32)
    elif kind == "white":
        audio = rng.standard_normal(n).astype(np.float32) * 0.1
    elif kind == "pink":
        spectrum = np.fft.rfft(rng.standard_normal(n))
        spectrum /= np.sqrt(np.maximum(np.fft.rfftfreq(n), 1.0 / n))
        audio = (np.fft.irfft(spectrum, n) * 0.002).astype(np.float32)
    else:                      # a steady 100 Hz hum with harmonics: sound, but no onsets
        t = np.arange(n) / SR
        audio = (0.2 * np.sin(2 * np.pi * 100 * t) + 0.05 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
        audio += rng.standard_normal(n).astype(np.float32) * 1e-3
    result = run(model, audio)[0]
    assert result["bpm"] is None and result["beats"] == [] and result["candidates"] == []
    assert result["confidence"] < model.min_confidence


def test_clip_too_short_for_a_tempo_gets_none(model: TempoModel) -> None:
    audio, _ = click_track(120.0, 0.6)
    result = run(model, audio)[0]
    assert result["bpm"] is None and result["beats"] == []


def test_same_result_alone_or_in_any_batch(model: TempoModel) -> None:
    rng = np.random.default_rng(11)
    clips = [
        click_track(100.0, 6.0, seed=1)[0],
        click_track(131.0, 17.0, seed=2)[0],
        rng.standard_normal(9 * SR).astype(np.float32) * 0.05,
        click_track(87.0, 23.0, seed=3)[0],
        click_track([(0.0, 110.0), (5.0, 90.0)], 11.0, seed=4)[0],
    ]
    alone = [run(model, c)[0] for c in clips]
    for order in ([0, 1, 2, 3, 4], [3, 4, 0, 2, 1], [2, 0], [4]):
        together = run_padded(model, *[clips[i] for i in order])
        for i, got in zip(order, together):
            want = alone[i]
            assert (got["bpm"] is None) == (want["bpm"] is None)
            if want["bpm"] is not None:
                assert got["bpm"] == pytest.approx(want["bpm"], abs=0.01)
            assert len(got["beats"]) == len(want["beats"])
            np.testing.assert_allclose(got["beats"], want["beats"], atol=1e-3)
            assert got["confidence"] == pytest.approx(want["confidence"], abs=1e-3)
            assert [c["bpm"] for c in got["candidates"]] == pytest.approx(
                [c["bpm"] for c in want["candidates"]], abs=0.01)


def test_no_beats_in_a_silent_intro_or_outro(model: TempoModel) -> None:
    music, clicks = click_track(112.0, 7.0, seed=5)
    rng = np.random.default_rng(5)
    quiet = rng.standard_normal(4 * SR).astype(np.float32) * 10 ** (-55 / 20)
    audio = np.concatenate([quiet, music, quiet])
    beats = np.array(run(model, audio)[0]["beats"])
    assert beats.size >= len(clicks) - 1
    assert beats.min() >= 4.0 + clicks[0] - 0.05 and beats.max() <= 4.0 + clicks[-1] + 0.05


def test_warmup_runs_on_blank_audio() -> None:
    m = TempoModel(max_batch=3)
    m.load("cpu")
    m.warmup()


def test_candidates_are_ranked_tempo_peaks(model: TempoModel) -> None:
    audio, _ = click_track(120.0, 12.0)
    result = run(model, audio)[0]
    cands = result["candidates"]
    assert 1 <= len(cands) <= 3
    assert all(set(c) == {"bpm", "salience"} and isinstance(c["bpm"], float) for c in cands)
    saliences = [c["salience"] for c in cands]
    assert saliences == sorted(saliences, reverse=True)
    assert 0 < sum(saliences) <= 1.0 + 1e-6
    assert cands[0]["bpm"] == result["bpm"]
    # the octave below or above is the usual runner-up of a plain pulse
    assert any(abs(c["bpm"] / result["bpm"] - r) < 0.03 for c in cands[1:] for r in (0.5, 2.0))
    json.dumps(result)


def test_level_does_not_change_the_answer(model: TempoModel) -> None:
    audio, _ = click_track(108.0, 10.0, floor_db=-45.0)
    loud, quiet = run(model, audio, audio * 0.01)
    assert quiet["bpm"] == pytest.approx(loud["bpm"], abs=0.01)
    np.testing.assert_allclose(quiet["beats"], loud["beats"], atol=1e-3)


def test_prepare_rejects_media_it_cannot_use(model: TempoModel) -> None:
    with pytest.raises(ModelError, match="22050 Hz"):
        model.prepare(Media(audio=np.zeros(SR, np.float32), sample_rate=16000, kind="audio"))
    with pytest.raises(ModelError, match="no(ne)? audio|has none"):
        model.prepare(Media(frames=np.zeros((1, 4, 4, 3), np.uint8), kind="video"))
    bad = np.zeros(SR, np.float32)
    bad[10] = np.nan
    with pytest.raises(ModelError, match="NaN"):
        model.prepare(Media(audio=bad, sample_rate=SR, kind="audio"))


def test_prepare_caps_the_analysed_length() -> None:
    m = TempoModel(max_audio_s=5.0)
    item = m.prepare(Media(audio=np.zeros(12 * SR, np.float32), sample_rate=SR, kind="audio"))
    assert isinstance(item, torch.Tensor) and item.numel() == 5 * SR
    assert m.decode_spec().max_audio_s == 5.0


@pytest.mark.parametrize("options, key", [
    ({"tempo": 3}, "model.options.tempo"),
    ({"min_bpm": 200.0, "max_bpm": 100.0}, "model.options.min_bpm"),
    ({"prior_bpm": 300.0}, "model.options.prior_bpm"),
])
def test_bad_options_are_config_errors(options: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        TempoModel(**options)
    assert err.value.key == key


def test_empty_batch_gives_no_results(model: TempoModel) -> None:
    assert model.predict([]) == []
