"""The learned beat tracker: its network, features, weights file and decoder (numpy in, no decoder).

The shipped weights are loaded as they are (nothing is trained here).  Tolerances:
tempo within 2%, beats within 70 ms (the F-measure window) of a click, a clip gives
the same activation alone or padded in a batch (1e-5).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sidepath.core.errors import ConfigError
from sidepath.models.tempo import SAMPLE_RATE, TempoModel
from sidepath.models.tempo_net import (
    FEATURES,
    WEIGHTS,
    BeatTCN,
    NetConfig,
    feature_mel,
    load_net,
    log_mel,
)
from tests.unit.test_tempo import click_track, run, run_padded

SR = SAMPLE_RATE


@pytest.fixture(scope="module")
def model() -> TempoModel:
    m = TempoModel(method="learned")
    m.load("cpu")
    return m


def _kick_track(bpm: float, seconds: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A drum-machine groove: a low sine kick on every beat, a noise snare on 2 and 4, hats on eighths."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    audio = rng.standard_normal(n).astype(np.float32) * 1e-3
    t = np.arange(int(0.25 * SR)) / SR
    kick = (np.sin(2 * np.pi * (50 + 80 * np.exp(-t / 0.03)) * t) * np.exp(-t / 0.12)).astype(np.float32)
    snare = (rng.standard_normal(t.size) * np.exp(-t / 0.06)).astype(np.float32) * 0.5
    hat = (rng.standard_normal(t.size) * np.exp(-t / 0.01)).astype(np.float32) * 0.15
    beats = np.arange(0.4, seconds - 0.3, 60.0 / bpm)
    for i, b in enumerate(beats):
        for piece, at in ((kick, b), (hat, b), (hat, b + 30.0 / bpm)) + (((snare, b),) if i % 2 else ()):
            s = int(at * SR)
            audio[s:s + piece.size] += piece[: max(0, n - s)]
    return audio, beats


def test_network_gives_two_activations_per_frame() -> None:
    net = BeatTCN(NetConfig()).eval()
    feat = torch.rand(3, 64, 250)
    out = net(feat, torch.ones(3, 250, dtype=torch.bool))
    assert out.shape == (3, 2, 250)
    n_weights = sum(p.numel() for p in net.parameters())
    assert 10_000 <= n_weights <= 100_000, n_weights


def test_network_output_does_not_depend_on_padding() -> None:
    torch.manual_seed(0)
    net = BeatTCN(NetConfig()).eval()
    a, b = torch.rand(1, 64, 180), torch.rand(1, 64, 300)
    with torch.inference_mode():
        alone_a = net(a, torch.ones(1, 180, dtype=torch.bool))
        batch = torch.zeros(2, 64, 300)
        batch[0, :, :180], batch[1] = a[0], b[0]
        mask = torch.arange(300)[None, :] < torch.tensor([[180], [300]])
        together = net(batch * mask[:, None], mask)
    torch.testing.assert_close(together[0, :, :180], alone_a[0], atol=1e-5, rtol=1e-5)
    assert together[0, :, 180:].abs().max() == 0


def test_features_are_padding_and_level_invariant() -> None:
    mel = feature_mel()
    audio, _ = click_track(100.0, 5.0)
    x = torch.from_numpy(audio)
    alone, valid = log_mel(x[None], torch.tensor([x.numel()]), mel)
    padded = torch.zeros(3, x.numel() + 3 * SR)
    padded[0, : x.numel()] = x
    padded[1] = torch.randn(padded.shape[1]) * 0.1
    padded[2, : x.numel()] = x * 0.1
    together, valid2 = log_mel(padded, torch.tensor([x.numel(), padded.shape[1], x.numel()]), mel)
    assert int(valid[0]) == int(valid2[0]) == alone.shape[-1] == x.numel() // FEATURES.hop + 1
    torch.testing.assert_close(together[0, :, : alone.shape[-1]], alone[0], atol=1e-4, rtol=0)
    assert together[0, :, alone.shape[-1]:].abs().max() == 0
    # 20 dB quieter: the same features (scaled by the clip's own peak) up to float rounding near the floor
    torch.testing.assert_close(together[2, :, : alone.shape[-1]], alone[0], atol=0.02, rtol=0)
    assert 0.0 <= float(alone.min()) and float(alone.max()) <= 1.0


def test_weights_are_safetensors_loaded_without_pickle() -> None:
    raw = WEIGHTS.read_bytes()
    assert len(raw) < 4 * 1024 * 1024
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_len])        # plain JSON: names, dtypes, shapes, metadata
    assert "config" in header["__metadata__"] and float(header["__metadata__"]["min_confidence"]) > 0
    assert not raw.startswith(b"PK") and raw[:1] != b"\x80"     # neither a torch zip nor a pickle
    net = load_net(WEIGHTS)
    assert isinstance(net, BeatTCN) and not net.training


KNOWN_MISS = ("a known weakness, in docs/tempo.md: on this synthetic groove (a sine kick, noise hats on every "
              "eighth) the shipped network doubles the tempo at 84 BPM and locks on the off-beat at 152 BPM")


@pytest.mark.parametrize("bpm", [pytest.param(84.0, marks=pytest.mark.xfail(reason=KNOWN_MISS, strict=False)), 100.0,
                                 120.0, pytest.param(152.0, marks=pytest.mark.xfail(reason=KNOWN_MISS, strict=False))])
def test_drum_groove_gives_its_tempo_beats_and_downbeats(model: TempoModel, bpm: float) -> None:
    audio, truth = _kick_track(bpm, 14.0, seed=int(bpm))
    result = run(model, audio)[0]
    assert result["bpm"] == pytest.approx(bpm, rel=0.02), result["candidates"]
    beats = np.array(result["beats"])
    off = np.abs(beats[:, None] - truth[None, :]).min(axis=1)
    assert np.mean(off <= 0.07) >= 0.9, f"{np.mean(off <= 0.07):.0%} of the beats within 70 ms"
    hit = np.abs(truth[:, None] - beats[None, :]).min(axis=1) <= 0.07
    assert hit.mean() >= 0.85
    assert set(result["downbeats"]) <= set(result["beats"])
    json.dumps(result)


@pytest.mark.parametrize("bpm", [96.0, 143.0])
def test_click_track_gives_its_tempo(model: TempoModel, bpm: float) -> None:
    audio, clicks = click_track(bpm, 14.0, seed=int(bpm))
    result = run(model, audio)[0]
    assert result["bpm"] == pytest.approx(bpm, rel=0.02)
    beats = np.array(result["beats"])
    assert np.mean(np.abs(beats[:, None] - clicks[None, :]).min(axis=1) <= 0.07) >= 0.9


@pytest.mark.parametrize("kind", ["silence", "white", "speechlike"])
def test_no_pulse_gets_no_beats(model: TempoModel, kind: str) -> None:
    rng = np.random.default_rng(5)
    n = 10 * SR
    if kind == "silence":
        audio = np.zeros(n, np.float32)
    elif kind == "white":
        audio = rng.standard_normal(n).astype(np.float32) * 0.2
    else:                   # syllable-like bursts of filtered noise at random times
        audio = rng.standard_normal(n).astype(np.float32) * 1e-3
        for start in np.sort(rng.uniform(0, 9.7, size=30)):
            s, m = int(start * SR), int(rng.uniform(0.08, 0.25) * SR)
            env = np.hanning(m).astype(np.float32)
            tone = np.sin(2 * np.pi * rng.uniform(120, 220) * np.arange(m) / SR).astype(np.float32)
            audio[s:s + m] += 0.3 * env * tone
    result = run(model, audio)[0]
    assert result["bpm"] is None and result["beats"] == [] and result["downbeats"] == []
    assert result["confidence"] < model.min_confidence


def test_learned_result_is_the_same_alone_or_in_a_batch(model: TempoModel) -> None:
    clips = [_kick_track(100.0, 6.0, 1)[0], _kick_track(131.0, 15.0, 2)[0],
             np.random.default_rng(3).standard_normal(8 * SR).astype(np.float32) * 0.05]
    alone = [run(model, c)[0] for c in clips]
    for order in ([0, 1, 2], [2, 1, 0], [1]):
        for i, got in zip(order, run_padded(model, *[clips[i] for i in order])):
            want = alone[i]
            assert (got["bpm"] is None) == (want["bpm"] is None)
            if want["bpm"] is not None:
                assert got["bpm"] == pytest.approx(want["bpm"], abs=0.01)
            np.testing.assert_allclose(got["beats"], want["beats"], atol=1e-3)
            assert got["confidence"] == pytest.approx(want["confidence"], abs=1e-3)


def test_method_option_is_checked() -> None:
    with pytest.raises(ConfigError) as err:
        TempoModel(method="magic")
    assert err.value.key == "model.options.method"
    assert TempoModel(method="dsp").min_confidence == pytest.approx(0.15)
    assert TempoModel(method="learned", min_confidence=0.4).min_confidence == pytest.approx(0.4)
