"""Training, validation and test data for the learned beat tracker, with exact beats and downbeats.

Three splits, drawn from seeds:

- **train** and **validation**: every style of ``styles_extra.ALL_STYLES`` (plus tempo ramps
  and steps, silent intros), rendered with the FluidR3 and TimGM6mb General MIDI soundfonts,
  drums either from the soundfont or from the *training* Hydrogen kits; negatives (silence,
  noise, pads, speech, babble, rain).  Validation differs from training only in its seeds:
  it is what checkpoints and the gate threshold are chosen on.
- **test**: timbres and material never used for training or tuning: the MuseScore General
  soundfont and the *test* Hydrogen kits playing the generator styles, Debian's
  ``planetblupi-music-midi`` songs (rendered with MuseScore General) and Hydrogen's demo songs
  (with their own kits), and negatives from other seeds.

Every clip goes through the same augmentation chain (EQ, reverb, noise, clipping, band
limit, level).  Rendered clips are cached under ``~/.cache/sidepath/tempo-corpus`` (or
``$SIDEPATH_CACHE``), keyed by recipe and a digest of the generators; no audio lives in
the repository.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import corpus, kits, render
from .styles import Arrangement
from .styles_extra import ALL_STYLES
from .tempo_map import TempoMap

__all__ = ["TEST_FONT", "TEST_KITS", "TRAIN_FONTS", "TRAIN_KITS", "Item", "Recipe", "build", "recipes"]

SR = render.SAMPLE_RATE
TRAIN_FONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2")
TEST_FONT = "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"
TEST_KITS = ("GMRockKit", "TR808EmulationKit", "The Black Pearl 1.0", "Millo_MultiLayered3")
TRAIN_KITS = ("Audiophob", "BJA_Pacific", "ColomboAcousticDrumkit", "ElectricEmpireKit", "ForzeeStereo",
              "HardElectro1", "Millo-Drums_v.1", "Millo_MultiLayered2", "VariBreaks", "rumpf_kit_z01_h2")
BLUPI = Path("/usr/share/planetblupi/music")
CHANGING = ("rock", "four_on_the_floor", "swing", "no_drums", "bossa", "hiphop", "ballad", "legato", "cumbia",
            "waltz")
#: music clips per style (ramp and step reuse CHANGING) and negatives per kind, per split at scale 1
MUSIC_WEIGHTS = {"click": 2, "rock": 6, "four_on_the_floor": 5, "swing": 5, "half_time": 5, "waltz": 5,
                 "dembow": 5, "bossa": 5, "no_drums": 7, "hiphop": 6, "ballad": 5, "legato": 6, "compound": 4,
                 "odd_meter": 4, "salsa": 4, "cumbia": 4, "ramp": 5, "step": 5}
NEGATIVE_WEIGHTS = {"silence": 1, "dither": 1, "white": 1, "pink": 1, "brown": 1, "pad": 3, "speech": 3,
                    "babble": 2, "rain": 2}
SPLIT_SCALE = {"train": 8.0, "validation": 1.0, "test": 1.0}
SPLIT_SEED = {"train": 1000, "validation": 2000, "test": 3000}


@dataclass(frozen=True, slots=True)
class Recipe:
    split: str
    name: str
    kind: str          # music | negative | blupi | h2song
    style: str
    seed: int
    duration_s: float
    font: str = ""
    kit: str = ""      # a Hydrogen kit for the drums, "" for the soundfont's drums
    source: str = ""   # the MIDI or h2song file of the test split's songs
    start_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Item:
    recipe: Recipe
    audio: np.ndarray          # mono float32 at 22,050 Hz
    beats: np.ndarray          # seconds
    downbeats: np.ndarray      # seconds
    detail: str

    @property
    def is_music(self) -> bool:
        return self.recipe.kind != "negative"


def _duration(rng: np.random.Generator) -> float:
    return round(float(rng.uniform(4.0, 10.0) if rng.random() < 0.15 else rng.uniform(10.0, 30.0)), 2)


def recipes(split: str, scale: float = 1.0) -> list[Recipe]:
    rng = np.random.default_rng(SPLIT_SEED[split])
    test = split == "test"
    fonts = (TEST_FONT,) if test else TRAIN_FONTS
    kit_pool = TEST_KITS if test else TRAIN_KITS
    n = SPLIT_SCALE[split] * scale
    out: list[Recipe] = []
    for style, weight in MUSIC_WEIGHTS.items():
        for i in range(max(1, round(weight * n))):
            font = str(rng.choice(fonts))
            kit = str(rng.choice(kit_pool)) if rng.random() < 0.5 else ""
            out.append(Recipe(split, f"{style}-{i:03d}", "music", style, int(rng.integers(2**31)),
                              _duration(rng), font, kit))
    for kind, weight in NEGATIVE_WEIGHTS.items():
        for i in range(max(1, round(weight * n))):
            out.append(Recipe(split, f"{kind}-{i:03d}", "negative", kind, int(rng.integers(2**31)),
                              round(float(rng.uniform(6.0, 25.0)), 2)))
    if test:
        for path in sorted(BLUPI.glob("*.mid")):
            for i in range(3):
                out.append(Recipe(split, f"blupi-{path.stem}-{i}", "blupi", "planetblupi", int(rng.integers(2**31)),
                                  _duration(rng), TEST_FONT, "", str(path)))
        for path in sorted(kits.SONG_ROOT.glob("*.h2song")):
            song = kits.h2song(path)
            song_s = song.total_beats * 60.0 / song.bpm
            for i in range(max(1, min(3, int(song_s // 20)))):
                dur = min(_duration(rng), song_s - 1.0)
                start = float(rng.uniform(0.0, max(song_s - dur, 0.0)))
                out.append(Recipe(split, f"h2-{path.stem}-{i}", "h2song", "hydrogen_demo", int(rng.integers(2**31)),
                                  round(dur, 2), "", song.kit, str(path), round(start, 2)))
    return out


def _digest() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in ("dataset.py", "corpus.py", "render.py", "styles.py", "styles_extra.py", "tempo_map.py", "kits.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:12]


def cache_dir() -> Path:
    base = Path(os.environ.get("SIDEPATH_CACHE", Path.home() / ".cache" / "sidepath"))
    return base / "tempo-corpus" / _digest()


def build(recipe: Recipe) -> Item:
    key = hashlib.sha256(repr(asdict(recipe)).encode()).hexdigest()[:16]
    path = cache_dir() / recipe.split / f"{recipe.name}-{key}.npz"
    if path.exists():
        d = np.load(path)
        return Item(recipe, d["audio"].astype(np.float32), d["beats"], d["downbeats"], str(d["detail"]))
    rng = np.random.default_rng(recipe.seed)
    if recipe.kind == "music":
        audio, beats, downs, detail = _music(recipe, rng)
    elif recipe.kind == "blupi":
        audio, beats, downs, detail = _blupi(recipe, rng)
    elif recipe.kind == "h2song":
        audio, beats, downs, detail = _h2song(recipe, rng)
    else:
        spec = corpus.ClipSpec(recipe.name, "negative", recipe.style, recipe.seed, recipe.duration_s)
        audio, beats, downs, detail = corpus._negative(spec, rng), np.zeros(0), np.zeros(0), recipe.style
    audio, aug = _augment(audio, rng)
    detail = f"{detail}{aug}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")        # processes may render the same clip at once
    np.savez(tmp, audio=audio.astype(np.float16), beats=beats, downbeats=downs, detail=np.array(detail))
    tmp.replace(path)
    return Item(recipe, audio.astype(np.float16).astype(np.float32), beats, downs, detail)


def _tempo_map(style: str, base: str, rng: np.random.Generator, beats_needed: float,
               clip_beats: tuple[float, float]) -> tuple[TempoMap, str]:
    lo, hi = ALL_STYLES[base][1]
    bpm = float(rng.uniform(lo, hi))
    ratio = float(rng.uniform(1.1, 1.35))
    up = bool(rng.random() < 0.5)
    if bpm * ratio > 210.0 or bpm / ratio < 45.0:
        up = bpm / ratio < 45.0
    other = bpm * ratio if up else bpm / ratio
    if style == "ramp":
        return TempoMap.ramp(bpm, other, beats_needed), f"{base} ramp {bpm:.1f}->{other:.1f}"
    if style == "step":
        at = float(np.mean(clip_beats))
        return TempoMap.step(bpm, other, at, beats_needed), f"{base} step {bpm:.1f}->{other:.1f}"
    return TempoMap.constant(bpm, beats_needed), f"{base} {bpm:.1f}"


def _render_parts(arr: Arrangement, tempo: TempoMap, recipe: Recipe, rng: np.random.Generator,
                  n: int) -> tuple[np.ndarray, str]:
    """Tonal parts through the soundfont; drums through it too, or through a Hydrogen kit."""
    kit = kits.load_kit(recipe.kit) if recipe.kit else None
    tonal = tuple(p for p in arr.parts if not (kit is not None and p.is_drum))
    out = np.zeros(n, np.float32)
    if any(p.notes for p in tonal):
        audio = render.render_arrangement(Arrangement(tonal, arr.beats_per_bar), tempo, rng, Path(recipe.font))
        out[: min(n, audio.size)] += audio[:n]
    if kit is None:
        return out, Path(recipe.font).stem
    mapping = kits.gm_map(kit)
    hits = []
    for part in arr.parts:
        if not part.is_drum:
            continue
        for note in part.notes:
            if note.pitch in mapping:
                jitter = float(rng.normal(0, part.humanize_ms / 1000)) if part.humanize_ms else 0.0
                t = tempo.time_of(note.beat) + jitter
                hits.append((t, mapping[note.pitch], note.velocity / 127.0))
    drums = kits.render_hits(kit, hits, n, rng)
    if np.abs(out).max() > 0 and np.abs(drums).max() > 0:
        ratio_db = float(rng.uniform(-6.0, 6.0))
        drums *= np.sqrt(np.mean(out**2) / max(np.mean(drums**2), 1e-12)) * 10 ** (ratio_db / 20)
    return out + drums, f"{Path(recipe.font).stem} + kit {recipe.kit}"


def _music(recipe: Recipe, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    base = str(rng.choice(CHANGING)) if recipe.style in ("ramp", "step") else recipe.style
    builder = ALL_STYLES[base][0]
    lead_in = float(rng.uniform(0.0, 4.0))
    total = lead_in + recipe.duration_s + 2.0
    bars = int(np.ceil(total * 210.0 / 60.0 / 2.0)) + 2
    arr = builder(rng, bars)
    meter = arr.beats_per_bar
    beats_needed = float(bars * meter)
    probe = TempoMap.constant(float(np.mean(ALL_STYLES[base][1])), beats_needed)
    span = (
        lead_in * probe.segments[0].bpm_start / 60.0,
        (lead_in + recipe.duration_s) * probe.segments[0].bpm_start / 60.0,
    )
    tempo, detail = _tempo_map(recipe.style, base, rng, beats_needed, span)
    if recipe.style == "step":  # the step on a bar line near the clip's middle
        times = tempo.times_of(np.arange(beats_needed))
        at = float(np.argmin(np.abs(times - (lead_in + recipe.duration_s / 2))) // meter * meter)
        s = tempo.segments
        tempo = TempoMap.step(s[0].bpm_start, s[1].bpm_start, max(at, meter), beats_needed)
    if arr.variant:
        detail = detail.replace(base, f"{base} ({arr.variant})", 1)
    end_s = tempo.time_of(beats_needed) + 2.0
    audio, timbre = _render_parts(arr, tempo, recipe, rng, int(end_s * SR))
    start, n = int(lead_in * SR), int(recipe.duration_s * SR)
    audio = audio[start : start + n]
    if audio.size < n:
        audio = np.pad(audio, (0, n - audio.size))
    idx = np.arange(beats_needed + 1)
    times = tempo.times_of(idx) - lead_in
    inside = (times >= 0.0) & (times < recipe.duration_s)
    beats, downs = times[inside], times[inside & (idx % meter == 0)]
    detail = f"{detail} [{timbre}]"
    if rng.random() < 0.12 and recipe.duration_s > 8:  # a silent intro: no beats until the music starts
        quiet = float(rng.uniform(1.0, 4.0))
        audio[: int(quiet * SR)] = 0.0
        beats, downs = beats[beats >= quiet + 0.05], downs[downs >= quiet + 0.05]
        detail += f" silent intro {quiet:.1f} s"
    return audio, beats, downs, detail


def _blupi(recipe: Recipe, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """A window of a Planet Blupi song, rendered from its own MIDI with the test soundfont."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(recipe.source)
    onsets = np.sort(np.concatenate([[n.start for n in i.notes] for i in pm.instruments]))
    last = float(onsets[-1]) - recipe.duration_s
    for _ in range(50):  # a window with music all through it
        t0 = float(rng.uniform(0.0, max(last, 0.0)))
        in_win = onsets[(onsets >= t0) & (onsets < t0 + recipe.duration_s)]
        gaps = np.diff(np.concatenate([[t0], in_win, [t0 + recipe.duration_s]]))
        if in_win.size >= 4 * recipe.duration_s and gaps.max() < 2.0:
            break
    pre = 3.0
    out = pretty_midi.PrettyMIDI(resolution=pm.resolution, initial_tempo=float(pm.get_tempo_changes()[1][0]))
    for inst in pm.instruments:
        new = pretty_midi.Instrument(program=inst.program, is_drum=inst.is_drum)
        for n in inst.notes:
            if t0 - pre <= n.start < t0 + recipe.duration_s:
                s = n.start - t0 + pre
                new.notes.append(
                    pretty_midi.Note(velocity=n.velocity, pitch=n.pitch, start=s, end=max(n.end - t0 + pre, s + 0.02))
                )
        for cc in inst.control_changes:
            if cc.time < t0 + recipe.duration_s:
                new.control_changes.append(pretty_midi.ControlChange(cc.number, cc.value, max(cc.time - t0 + pre, 0.0)))
        out.instruments.append(new)
    audio = _fluidsynth(out, recipe.font)[int(pre * SR) : int((pre + recipe.duration_s) * SR)]
    audio = np.pad(audio, (0, max(0, int(recipe.duration_s * SR) - audio.size)))
    # some of these files start their notes 45-60 ms after the tempo map's beat 0 (checked: with
    # that shift 86-100% of the onsets sit on the sixteenth grid): the grid starts at the first note
    shift = float(onsets[0])
    beats = pm.get_beats() + shift - t0
    downs = pm.get_downbeats() + shift - t0
    bpm = 60.0 / float(np.median(np.diff(beats)))
    return (
        audio,
        _within(beats, recipe.duration_s),
        _within(downs, recipe.duration_s),
        f"planetblupi {Path(recipe.source).stem} at {t0:.1f} s, {bpm:.1f} BPM",
    )


def _within(times: np.ndarray, duration_s: float) -> np.ndarray:
    return times[(times >= 0) & (times < duration_s)]


def _fluidsynth(pm: object, font: str) -> np.ndarray:
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sidepath-tempo-") as tmp:
        mid, wav = Path(tmp) / "clip.mid", Path(tmp) / "clip.wav"
        pm.write(str(mid))  # type: ignore[attr-defined]
        subprocess.run(
            [
                "fluidsynth",
                "-ni",
                "-q",
                "-g",
                "0.3",
                "-r",
                str(SR),
                "-o",
                "audio.file.format=float",
                "-F",
                str(wav),
                font,
                str(mid),
            ],
            check=True,
            capture_output=True,
        )
        return render._read_mono(wav)


def _h2song(recipe: Recipe, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    song = kits.h2song(Path(recipe.source))
    kit = kits.load_kit(song.kit)
    spb = 60.0 / song.bpm
    hits = [
        (b * spb - recipe.start_s, i, v)
        for b, i, v in song.hits
        if recipe.start_s - 3.0 <= b * spb < recipe.start_s + recipe.duration_s
    ]
    n = int(recipe.duration_s * SR)
    audio = kits.render_hits(kit, hits, n, rng)
    times = np.arange(0.0, song.total_beats) * spb - recipe.start_s
    bars = np.array(song.bar_beats) * spb - recipe.start_s
    return (
        audio,
        _within(times, recipe.duration_s),
        _within(bars, recipe.duration_s),
        f"hydrogen {Path(recipe.source).stem} ({song.kit}) {song.bpm:.0f} BPM",
    )


def _augment(audio: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """EQ, reverb, noise, clipping, band limit, level: drawn per clip from its seed."""
    x = audio.astype(np.float64)
    notes = []
    n = x.size
    if n == 0 or np.abs(x).max() == 0:
        return audio.astype(np.float32), ""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(n, 1.0 / SR)
    if rng.random() < 0.7:  # a tilt (dB per octave around 1 kHz) and one peak or notch
        tilt = float(rng.uniform(-3.0, 3.0))
        gain_db = tilt * np.log2(np.maximum(f, 20.0) / 1000.0)
        fc, g, q = (
            float(np.exp(rng.uniform(np.log(80), np.log(8000)))),
            float(rng.uniform(-9, 9)),
            float(rng.uniform(0.5, 2)),
        )
        gain_db += g * np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / fc) * q * 2) ** 2)
        spec *= 10 ** (gain_db / 20)
        notes.append("eq")
    if rng.random() < 0.15:  # a lossy codec's missing top
        cut = float(rng.uniform(3500, 8000))
        spec *= 1.0 / (1.0 + (f / cut) ** 8)
        notes.append(f"lowpass {cut / 1000:.1f} kHz")
    x = np.fft.irfft(spec, n)
    if rng.random() < 0.3:  # room: exponentially decaying noise as the impulse response
        rt60 = float(rng.uniform(0.2, 1.5))
        m = int(rt60 * SR)
        ir = rng.standard_normal(m) * np.exp(-6.9 * np.arange(m) / m)
        wet = np.fft.irfft(np.fft.rfft(x, n + m) * np.fft.rfft(ir, n + m), n + m)[:n]
        mix = float(rng.uniform(0.1, 0.5))
        x = x + mix * wet * np.sqrt(np.mean(x**2) / max(np.mean(wet**2), 1e-20))
        notes.append(f"reverb {rt60:.1f} s")
    if rng.random() < 0.25:
        snr = float(rng.uniform(6.0, 30.0))
        noise = render.colored_noise(rng, n, float(rng.choice([0.0, 1.0, 2.0])))
        x = x + noise * np.sqrt(np.mean(x**2)) * 10 ** (-snr / 20)
        notes.append(f"noise {snr:.0f} dB SNR")
    if rng.random() < 0.12:
        drive = float(rng.uniform(2.0, 8.0))
        x = np.tanh(drive * x / (np.abs(x).max() + 1e-12)) / np.tanh(drive)
        notes.append(f"clipped x{drive:.0f}")
    out = corpus._level(x.astype(np.float32), rng)
    return out, (" +" + ", ".join(notes)) if notes else ""
