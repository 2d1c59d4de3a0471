"""Hydrogen drum kits (Debian ``hydrogen-drumkits``, ``hydrogen-data``) as sampled drums.

A kit is read from its ``drumkit.xml``: instruments, each with one or more
velocity layers of samples.  ``render_hits`` mixes samples at given times;
``gm_map`` maps the General MIDI drum keys our styles write onto the kit's
instruments by name, so every style can be played on every kit.  ``h2song``
reads a Hydrogen song (its patterns and pattern sequence) into hits on a beat
grid: the demo songs are reserved for the test split.
"""
from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .render import SAMPLE_RATE

__all__ = ["KIT_ROOT", "SONG_ROOT", "Kit", "gm_map", "h2song", "kit_names", "load_kit", "render_hits"]

KIT_ROOT = Path("/usr/share/hydrogen/data/drumkits")
SONG_ROOT = Path("/usr/share/hydrogen/data/demo_songs")
MAX_SAMPLE_S = 2.5          # longer tails (crash cymbals) are cut: they add nothing to a beat


@dataclass(frozen=True, slots=True)
class Instrument:
    name: str
    gain: float
    layers: tuple[tuple[float, float, float, np.ndarray], ...]     # (min vel, max vel, gain, samples)


@dataclass(frozen=True, slots=True)
class Kit:
    name: str
    instruments: tuple[Instrument, ...]


def _strip(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    for c in el:
        if _strip(c.tag) == name:
            return c
    return None


def _text(el: ET.Element, name: str, default: str = "") -> str:
    c = _child(el, name)
    return (c.text or default) if c is not None else default


@functools.lru_cache(maxsize=64)
def _read_sample(path: str) -> np.ndarray:
    import soundfile as sf
    import soxr

    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if sr != SAMPLE_RATE:
        audio = soxr.resample(audio, sr, SAMPLE_RATE).astype(np.float32)
    return audio[: int(MAX_SAMPLE_S * SAMPLE_RATE)]


def kit_names() -> list[str]:
    return sorted(p.parent.name for p in KIT_ROOT.glob("*/drumkit.xml"))


@functools.lru_cache(maxsize=32)
def load_kit(name: str) -> Kit:
    root = KIT_ROOT / name
    tree = ET.parse(root / "drumkit.xml").getroot()
    instruments = []
    for inst in tree.iter():
        if _strip(inst.tag) != "instrument":
            continue
        layers = []
        for el in inst.iter():
            tag = _strip(el.tag)
            if tag == "layer" and _child(el, "filename") is not None:
                lo, hi = float(_text(el, "min", "0")), float(_text(el, "max", "1"))
                layers.append((lo, hi, float(_text(el, "gain", "1")), _text(el, "filename")))
        if not layers and _child(inst, "filename") is not None:        # the old single-sample format
            layers.append((0.0, 1.0, 1.0, _text(inst, "filename")))
        loaded = []
        for lo, hi, gain, fname in layers:
            path = root / fname
            if path.exists():
                loaded.append((lo, hi, gain, _read_sample(str(path))))
        if loaded:
            instruments.append(Instrument(_text(inst, "name"), float(_text(inst, "gain", "1")) *
                                          float(_text(inst, "volume", "1")), tuple(loaded)))
    return Kit(name, tuple(instruments))


# GM key -> name patterns, in order of preference (the first that matches a kit instrument wins)
_GM_NAMES: dict[int, tuple[str, ...]] = {
    36: (r"kick|bass ?drum|\bbd\b", ),
    37: (r"stick|rim", r"snare"),
    38: (r"snare(?!.*(roll|rim))", r"snare|\bsd\b"),
    39: (r"clap", r"snare"),
    42: (r"clos.*(hh|hat)|(hh|hat).*clos", r"hh|hat"),
    44: (r"pedal", r"clos.*(hh|hat)|(hh|hat).*clos", r"hh|hat"),
    46: (r"open", r"hh|hat"),
    49: (r"crash", r"cymbal|ride"),
    51: (r"ride", r"cymbal|hh|hat"),
    56: (r"cowbell", r"wood|block|clave|stick|rim"),
    70: (r"shak|maraca|tamb", r"hh|hat"),
    76: (r"wood.*hi|block.*hi|clave", r"wood|block|stick|rim|cowbell"),
    77: (r"wood.*lo|block.*lo", r"wood|block|stick|rim|cowbell"),
}


def gm_map(kit: Kit) -> dict[int, int]:
    """GM drum key -> index of the kit's instrument (keys without any match are left out)."""
    names = [i.name.lower() for i in kit.instruments]
    out: dict[int, int] = {}
    for key, patterns in _GM_NAMES.items():
        for pat in patterns:
            hit = next((j for j, n in enumerate(names) if re.search(pat, n)), None)
            if hit is not None:
                out[key] = hit
                break
    return out


def render_hits(kit: Kit, hits: list[tuple[float, int, float]], n: int, rng: np.random.Generator) -> np.ndarray:
    """Mix (time_s, instrument index, velocity 0-1) hits into ``n`` samples of mono audio."""
    out = np.zeros(n, np.float32)
    for t, idx, vel in hits:
        inst = kit.instruments[idx]
        layers = [layer for layer in inst.layers if layer[0] <= vel <= layer[1]] or list(inst.layers)
        _lo, _hi, gain, samples = layers[int(rng.integers(len(layers)))]
        start = round(t * SAMPLE_RATE)
        if start >= n or start + samples.size <= 0:
            continue
        piece = samples * (gain * inst.gain * vel ** 1.5)
        if start < 0:
            piece, start = piece[-start:], 0
        out[start:start + piece.size] += piece[: n - start]
    return out


@dataclass(frozen=True, slots=True)
class Song:
    kit: str
    bpm: float
    hits: list[tuple[float, int, float]]      # (beat, instrument index in the kit, velocity)
    total_beats: float
    bar_beats: list[float]                    # beat positions of the pattern starts (bars)


def h2song(path: Path) -> Song:
    """A Hydrogen song as hits on a grid of quarter-note beats (48 ticks per beat)."""
    root = ET.parse(path).getroot()
    bpm = float(_text(root, "bpm", "120"))
    kit_name = ""
    song_inst: dict[str, str] = {}
    for inst in root.iter():
        if _strip(inst.tag) == "instrument" and _child(inst, "id") is not None:
            song_inst[_text(inst, "id")] = _text(inst, "name")
            kit_name = kit_name or _text(inst, "drumkit")
    kit = load_kit(kit_name)
    by_name = {i.name: j for j, i in enumerate(kit.instruments)}
    patterns: dict[str, tuple[int, list[tuple[int, int, float]]]] = {}
    for pat in root.iter():
        if _strip(pat.tag) != "pattern" or _child(pat, "noteList") is None:
            continue
        notes = []
        for note in _child(pat, "noteList") or []:
            name = song_inst.get(_text(note, "instrument"), "")
            if name in by_name:
                notes.append((int(_text(note, "position", "0")), by_name[name], float(_text(note, "velocity", "0.8"))))
        patterns[_text(pat, "name")] = (int(_text(pat, "size", "192")), notes)
    hits: list[tuple[float, int, float]] = []
    bars: list[float] = []
    tick = 0
    seq = _child(root, "patternSequence")
    for group in (seq if seq is not None else []):
        ids = [c.text or "" for c in group if _strip(c.tag) == "patternID"]
        ids = [i for i in ids if i in patterns]
        if not ids:
            continue
        bars.append(tick / 48.0)
        for pid in ids:
            for pos, idx, vel in patterns[pid][1]:
                hits.append(((tick + pos) / 48.0, idx, vel))
        tick += max(patterns[p][0] for p in ids)
    return Song(kit_name, bpm, hits, tick / 48.0, bars)
