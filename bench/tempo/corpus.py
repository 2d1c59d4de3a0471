"""The benchmark corpus: clip recipes from a seed, rendered once and cached.

A ``ClipSpec`` is a recipe (style, tempo map, duration, seed); ``build`` renders
it and returns a ``Clip`` with its audio and reference beats.  Rendered clips
are cached under ``~/.cache/sidepath/bench-tempo`` (or ``$SIDEPATH_CACHE``), keyed
by the recipe and a digest of the generator's source: any change to the generator
renders afresh.  No audio lives in the repository.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import render, styles
from .tempo_map import TempoMap

__all__ = ["ClipSpec", "Clip", "corpus_specs", "build", "NEGATIVE_KINDS"]

NEGATIVE_KINDS = ("silence", "dither", "white", "pink", "brown", "pad", "speech", "babble", "rain")

#: music clips per style in the default corpus (ramps and steps reuse the styles)
MUSIC_COUNTS = {
    "click": 6, "rock": 10, "four_on_the_floor": 8, "swing": 8, "half_time": 8, "waltz": 8,
    "dembow": 6, "bossa": 6, "no_drums": 12, "ramp": 8, "step": 8,
}
NEGATIVE_COUNTS = {"silence": 2, "dither": 1, "white": 2, "pink": 2, "brown": 1, "pad": 3,
                   "speech": 4, "babble": 2, "rain": 2}
CHANGING_STYLES = ("rock", "four_on_the_floor", "swing", "no_drums", "bossa")

SENTENCES = (
    "The committee met on Tuesday to review the budget for the coming year.",
    "Please remember to close the windows before you leave the building tonight.",
    "A quick look at the weather shows rain in the north and sunshine further south.",
    "She said the results would be ready by the end of the week, maybe sooner.",
    "Our next stop is the old market square, where the festival starts at noon.",
    "If you have any questions about the schedule, ask at the front desk.",
    "The library will stay open late during the exam period this spring.",
    "He explained the recipe slowly, step by step, while the soup was cooking.",
    "Traffic on the main road is heavy, so allow extra time for your journey.",
    "Thank you all for coming, and let us begin with a short introduction.",
)
VOICES = ("en-us", "en", "en-gb-x-rp", "de", "fr", "es")


@dataclass(frozen=True, slots=True)
class ClipSpec:
    name: str
    kind: str            # music | negative
    style: str           # a style of styles.STYLES, "ramp", "step", or a negative kind
    seed: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class Clip:
    spec: ClipSpec
    audio: np.ndarray                 # mono float32 at render.SAMPLE_RATE
    beats: np.ndarray                 # reference beat times in seconds (empty for negatives)
    detail: str                       # tempo map in words, for the per-clip report

    @property
    def is_music(self) -> bool:
        return self.spec.kind == "music"


def corpus_specs(seed: int = 0, scale: float = 1.0) -> list[ClipSpec]:
    """The default corpus; ``scale`` multiplies every count (at least one clip each)."""
    rng = np.random.default_rng(seed)
    specs: list[ClipSpec] = []
    for style, count in MUSIC_COUNTS.items():
        for i in range(max(1, round(count * scale))):
            short = rng.random() < 0.15
            duration = float(rng.uniform(4.0, 10.0) if short else rng.uniform(10.0, 30.0))
            specs.append(ClipSpec(f"{style}-{i:02d}", "music", style, int(rng.integers(2**31)), round(duration, 2)))
    for kind, count in NEGATIVE_COUNTS.items():
        for i in range(max(1, round(count * scale))):
            specs.append(ClipSpec(f"{kind}-{i:02d}", "negative", kind, int(rng.integers(2**31)),
                                  round(float(rng.uniform(6.0, 25.0)), 2)))
    return specs


def _source_digest() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in ("corpus.py", "render.py", "styles.py", "tempo_map.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:12]


def _cache_dir() -> Path:
    base = Path(os.environ.get("SIDEPATH_CACHE", Path.home() / ".cache" / "sidepath"))
    return base / "bench-tempo" / _source_digest()


def build(spec: ClipSpec) -> Clip:
    key = hashlib.sha256(repr(asdict(spec)).encode()).hexdigest()[:16]
    path = _cache_dir() / f"{spec.name}-{key}.npz"
    if path.exists():
        data = np.load(path)
        return Clip(spec, data["audio"], data["beats"], str(data["detail"]))
    rng = np.random.default_rng(spec.seed)
    if spec.kind == "music":
        audio, beats, detail = _music(spec, rng)
    else:
        audio, beats, detail = _negative(spec, rng), np.zeros(0), spec.style
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, audio=audio.astype(np.float32), beats=beats, detail=np.array(detail))
    tmp.replace(path)
    return Clip(spec, audio.astype(np.float32), beats, detail)


def _tempo_map(spec: ClipSpec, rng: np.random.Generator, base_style: str, beats_needed: float) -> tuple[TempoMap, str]:
    lo, hi = styles.STYLES[base_style][1]
    bpm = float(rng.uniform(lo, hi))
    up = bool(rng.random() < 0.5)
    if bpm * 1.3 > 200.0 or bpm / 1.3 < 50.0:         # keep ramps and steps inside 50-200 BPM
        up = bpm / 1.3 < 50.0
    if spec.style == "ramp":
        ratio = float(rng.uniform(1.1, 1.3))
        end = bpm * ratio if up else bpm / ratio
        return TempoMap.ramp(bpm, end, beats_needed), f"{base_style} ramp {bpm:.1f}->{end:.1f}"
    if spec.style == "step":
        ratio = float(rng.uniform(1.1, 1.3))
        other = bpm * ratio if up else bpm / ratio
        return TempoMap.step(bpm, other, 0.0, beats_needed), f"{base_style} step {bpm:.1f}->{other:.1f}"
    return TempoMap.constant(bpm, beats_needed), f"{base_style} {bpm:.1f}"


def _music(spec: ClipSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    base_style = str(rng.choice(CHANGING_STYLES)) if spec.style in ("ramp", "step") else spec.style
    builder, (_lo, hi) = styles.STYLES[base_style]
    lead_in_s = float(rng.uniform(0.0, 4.0))            # the clip starts mid-song, off the grid
    total_s = lead_in_s + spec.duration_s + 2.0
    bars = int(np.ceil(total_s * hi * 1.3 / 60.0 / 3.0)) + 2    # enough at the fastest tempo, in 3/4
    arrangement = builder(rng, bars)
    meter = arrangement.beats_per_bar
    beats_needed = float(bars * meter)
    tempo, detail = _tempo_map(spec, rng, base_style, beats_needed)
    if arrangement.variant:
        detail = detail.replace(base_style, f"{base_style} ({arrangement.variant})", 1)
    if spec.style == "step":                             # step at the bar nearest the clip's middle
        middle = lead_in_s + spec.duration_s / 2
        beat_times = tempo.times_of(np.arange(beats_needed))
        at = float(np.argmin(np.abs(beat_times - middle)) // meter * meter)
        seg = tempo.segments
        tempo = TempoMap.step(seg[0].bpm_start, seg[1].bpm_start, max(at, meter), beats_needed)
    audio = render.render_arrangement(arrangement, tempo, rng)
    start, n = int(lead_in_s * render.SAMPLE_RATE), int(spec.duration_s * render.SAMPLE_RATE)
    audio = audio[start:start + n]
    if audio.size < n:
        raise RuntimeError(f"{spec.name}: rendered {audio.size} samples, needed {n}")
    all_beats = tempo.times_of(np.arange(beats_needed + 1)) - lead_in_s
    beats = all_beats[(all_beats >= 0.0) & (all_beats < spec.duration_s)]
    if rng.random() < 0.2:                               # a noisy room under some clips
        noise = render.colored_noise(rng, audio.size, 1.0)
        snr_db = float(rng.uniform(12.0, 25.0))
        audio = audio + noise * np.sqrt(np.mean(audio**2)) * 10 ** (-snr_db / 20)
        detail += f" +pink {snr_db:.0f} dB SNR"
    return _level(audio, rng), beats, detail


def _negative(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    n = int(spec.duration_s * render.SAMPLE_RATE)
    kind = spec.style
    if kind == "silence":
        return np.zeros(n, np.float32)
    if kind == "dither":
        return (rng.standard_normal(n) * 3e-5).astype(np.float32)
    if kind in ("white", "pink", "brown"):
        return _level(render.colored_noise(rng, n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind]), rng)
    if kind == "rain":
        return _level(render.rain(rng, n, float(rng.uniform(15, 80))), rng)
    if kind == "pad":
        return _level(_pad(spec, rng)[:n], rng)
    if kind == "speech":
        return _level(_speech(rng, n), rng)
    if kind == "babble":
        return _level(functools.reduce(np.add, [_speech(rng, n) for _ in range(4)]), rng)
    raise ValueError(f"unknown negative kind {kind!r}; use one of {NEGATIVE_KINDS}")


def _pad(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """Sustained chords with one or two changes at irregular times (tempo 60: a beat is a second)."""
    part = styles.Part(int(rng.choice([88, 89, 91, 94, 49, 52])))
    root = int(rng.integers(48, 56))
    changes = np.sort(rng.uniform(2.0, spec.duration_s, size=int(rng.integers(1, 3))))
    edges = [0.0, *changes.tolist(), spec.duration_s + 3.0]
    for i in range(len(edges) - 1):
        chord = styles.triad(root, int(rng.integers(0, 6)), styles.MAJOR)
        for p in chord:
            part.add(p, edges[i], edges[i + 1] - edges[i] + 0.5, 70)
    arr = styles.Arrangement((part,), 4)
    audio = render.render_arrangement(arr, TempoMap.constant(60.0, spec.duration_s + 4), rng)
    return np.pad(audio, (0, max(0, int(spec.duration_s * render.SAMPLE_RATE) - audio.size)))


def _speech(rng: np.random.Generator, n: int) -> np.ndarray:
    voice = str(rng.choice(VOICES))
    wpm, pitch = int(rng.integers(130, 200)), int(rng.integers(25, 75))
    pieces: list[np.ndarray] = []
    total = 0
    while total < n + render.SAMPLE_RATE:
        text = " ".join(rng.choice(SENTENCES, size=3, replace=False))
        piece = render.render_speech(text, voice=voice, words_per_minute=wpm, pitch=pitch)
        pause = np.zeros(int(rng.uniform(0.2, 1.2) * render.SAMPLE_RATE), np.float32)
        pieces += [piece, pause]
        total += piece.size + pause.size
    audio = np.concatenate(pieces)
    start = int(rng.integers(0, audio.size - n))
    return audio[start:start + n]


def _level(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scale to a random peak between -20 and -1 dBFS: real soundtracks vary in level."""
    peak = float(np.max(np.abs(audio))) + 1e-12
    return (audio / peak * 10 ** (float(rng.uniform(-20.0, -1.0)) / 20)).astype(np.float32)
