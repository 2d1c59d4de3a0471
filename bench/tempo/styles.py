"""Arrangements in several styles, written as notes on a grid of beats.

Each style returns ``Part`` objects whose note positions are in beats (floats);
``render`` turns beats into seconds through a ``TempoMap``.  The styles cover the
cases trackers find hard (half-time feel, swing, 3/4, syncopation, no drums) as
well as the easy ones.  Randomness comes only from the ``rng`` passed in, so a
seed fixes the whole clip.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Note", "Part", "Arrangement", "STYLES", "triad", "MAJOR", "MINOR"]

# General MIDI drum keys used below.
KICK, RIM, SNARE, CLAP, HH_CLOSED, HH_PEDAL, HH_OPEN = 36, 37, 38, 39, 42, 44, 46
CRASH, RIDE, SHAKER, WOOD_HI, WOOD_LO, COWBELL = 49, 51, 70, 76, 77, 56

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


@dataclass(frozen=True, slots=True)
class Note:
    pitch: int
    beat: float          # onset, in beats from the start of the piece
    length: float        # in beats
    velocity: int


@dataclass(slots=True)
class Part:
    program: int
    is_drum: bool = False
    humanize_ms: float = 0.0      # timing jitter (standard deviation) of a live player
    notes: list[Note] = field(default_factory=list)

    def add(self, pitch: int, beat: float, length: float, velocity: int) -> None:
        self.notes.append(Note(int(pitch), float(beat), float(length), int(np.clip(velocity, 1, 127))))


@dataclass(frozen=True, slots=True)
class Arrangement:
    parts: tuple[Part, ...]
    beats_per_bar: int
    variant: str = ""            # named in the clip's description (e.g. which kind of "no drums")


def triad(root: int, degree: int, scale: tuple[int, ...]) -> list[int]:
    """Triad on a scale degree (0-based), as MIDI pitches above ``root``."""
    return [root + scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]


def _progression(rng: np.random.Generator, bars: int, minor: bool = False) -> list[int]:
    pool = ([0, 5, 3, 4], [0, 4, 5, 3], [5, 3, 0, 4], [0, 3, 4, 4], [1, 4, 0, 0])
    prog = pool[int(rng.integers(len(pool)))]
    if minor:
        prog = [0, 5, 2, 6] if rng.random() < 0.5 else [0, 3, 6, 5]
    return [prog[b % len(prog)] for b in range(bars)]


def _pick(rng: np.random.Generator, options: list[list[float]]) -> list[float]:
    return [float(x) for x in options[int(rng.integers(len(options)))]]


def _vel(rng: np.random.Generator, base: int, spread: int = 8) -> int:
    return int(base + rng.integers(-spread, spread + 1))


def rock(rng: np.random.Generator, bars: int) -> Arrangement:
    root = int(rng.integers(40, 47))
    drums = Part(0, True, humanize_ms=6.0)
    bass = Part(int(rng.choice([33, 34])), humanize_ms=6.0)
    guitar = Part(int(rng.choice([29, 30, 27, 25])), humanize_ms=8.0)
    prog = _progression(rng, bars)
    eighth_kick = rng.random() < 0.5
    for bar in range(bars):
        b0 = 4.0 * bar
        if bar % 4 == 0:
            drums.add(CRASH, b0, 1, _vel(rng, 100))
        for beat in range(4):
            drums.add(KICK if beat in (0, 2) else SNARE, b0 + beat, 0.5, _vel(rng, 105))
        if eighth_kick:
            drums.add(KICK, b0 + 2.5, 0.5, _vel(rng, 90))
        for e in range(8):
            drums.add(HH_CLOSED, b0 + 0.5 * e, 0.25, _vel(rng, 80 if e % 2 == 0 else 60))
        chord = triad(root + 12, prog[bar], MAJOR)
        for e in range(8):
            bass.add(chord[0] - 12, b0 + 0.5 * e, 0.45, _vel(rng, 95))
        strum = _pick(rng, [[0, 1, 2, 3], [0, 1.5, 2, 3.5], [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]])
        for pos in strum:
            for k, p in enumerate(chord + [chord[0] + 12]):
                guitar.add(p, b0 + pos + 0.004 * k, 0.45, _vel(rng, 85))
    return Arrangement((drums, bass, guitar), 4)


def four_on_the_floor(rng: np.random.Generator, bars: int) -> Arrangement:
    root = int(rng.integers(40, 47))
    drums = Part(0, True)
    bass = Part(int(rng.choice([38, 39])))
    stab = Part(int(rng.choice([81, 80, 4, 90])))
    pad = Part(int(rng.choice([89, 50])))
    minor = bool(rng.random() < 0.5)
    scale = MINOR if minor else MAJOR
    prog = _progression(rng, bars, minor=minor)
    stab_pattern = _pick(rng, [[0.75, 2.5], [1.5, 3.5], [0.5, 1.75, 3.0]])
    for bar in range(bars):
        b0 = 4.0 * bar
        for beat in range(4):
            drums.add(KICK, b0 + beat, 0.5, 118)
            drums.add(HH_OPEN, b0 + beat + 0.5, 0.25, 80)
            for s in (0.25, 0.75):
                drums.add(HH_CLOSED, b0 + beat + s, 0.1, 45)
        drums.add(CLAP, b0 + 1, 0.5, 100)
        drums.add(CLAP, b0 + 3, 0.5, 100)
        chord = triad(root + 12, prog[bar], scale)
        for beat in range(4):
            bass.add(chord[0] - 12, b0 + beat + 0.5, 0.4, 100)
        for pos in stab_pattern:
            for p in chord:
                stab.add(p + 12, b0 + pos, 0.25, 80)
        for p in chord:
            pad.add(p, b0, 4.0, 50)
    return Arrangement((drums, bass, stab, pad), 4)


def swing(rng: np.random.Generator, bars: int) -> Arrangement:
    root = int(rng.integers(40, 47))
    ratio = float(rng.uniform(0.6, 0.7))          # swung eighth position within the beat
    drums = Part(0, True, humanize_ms=8.0)
    bass = Part(32, humanize_ms=8.0)
    piano = Part(int(rng.choice([0, 4])), humanize_ms=10.0)
    horn = Part(int(rng.choice([65, 66, 56, 73])), humanize_ms=12.0)
    prog = [1, 4, 0, 0, 5, 1, 4, 0]
    for bar in range(bars):
        b0 = 4.0 * bar
        for pos in (0, 1, 1 + ratio, 2, 3, 3 + ratio):
            drums.add(RIDE, b0 + pos, 0.5, _vel(rng, 85 if pos in (1, 3) else 70))
        drums.add(HH_PEDAL, b0 + 1, 0.2, _vel(rng, 70))
        drums.add(HH_PEDAL, b0 + 3, 0.2, _vel(rng, 70))
        for beat in range(4):
            drums.add(KICK, b0 + beat, 0.3, _vel(rng, 35))
        chord = triad(root + 12, prog[bar % len(prog)], MAJOR)
        scale = [root + 12 + s for s in MAJOR]
        for beat in range(4):
            pitch = chord[0] - 12 if beat == 0 else int(rng.choice(scale)) - 12
            bass.add(pitch, b0 + beat, 0.9, _vel(rng, 90))
        for pos in rng.choice([0, ratio, 1 + ratio, 2, 2 + ratio, 3 + ratio], size=2, replace=False):
            for p in chord + [chord[0] + 10]:
                piano.add(p + 12, b0 + float(pos), 0.4, _vel(rng, 70))
        if rng.random() < 0.7:
            for beat in range(4):
                for pos in (0.0, ratio):
                    if rng.random() < 0.6:
                        horn.add(int(rng.choice(scale)) + 12, b0 + beat + pos, 0.3, _vel(rng, 80))
    return Arrangement((drums, bass, piano, horn), 4)


def half_time(rng: np.random.Generator, bars: int) -> Arrangement:
    """Trap-style half-time feel: the backbeat lands on beat 3 only."""
    root = int(rng.integers(36, 43))
    drums = Part(0, True)
    bass808 = Part(38)
    bell = Part(int(rng.choice([10, 11, 88, 8])))
    kicks = _pick(rng, [[0, 1.75, 2.5], [0, 0.75, 2.75], [0, 2.25, 3.5]])
    minor = [root + 24 + s for s in MINOR]
    for bar in range(bars):
        b0 = 4.0 * bar
        drums.add(CLAP, b0 + 2, 0.5, 115)
        drums.add(SNARE, b0 + 2, 0.5, 100)
        for pos in kicks:
            drums.add(KICK, b0 + pos, 0.5, 110)
            bass808.add(root if pos == 0 else root + 7 * (pos > 2), b0 + pos, 0.7, 105)
        roll_beat = int(rng.integers(0, 4)) if rng.random() < 0.5 else -1
        for beat in range(4):
            step = 1 / 6 if beat == roll_beat else 0.25
            n = int(round(1 / step))
            for s in range(n):
                drums.add(HH_CLOSED, b0 + beat + s * step, 0.1, _vel(rng, 75 if s == 0 else 55))
        for k in range(4):
            if rng.random() < 0.6:
                bell.add(int(rng.choice(minor)), b0 + k + float(rng.choice([0, 0.5, 0.75])), 0.5, 70)
    return Arrangement((drums, bass808, bell), 4)


def waltz(rng: np.random.Generator, bars: int) -> Arrangement:
    root = int(rng.integers(40, 47))
    bass = Part(int(rng.choice([32, 42, 43])), humanize_ms=8.0)
    comp = Part(int(rng.choice([0, 21, 24, 46])), humanize_ms=8.0)
    melody = Part(int(rng.choice([40, 73, 71, 68])), humanize_ms=12.0)
    brushes = rng.random() < 0.4
    drums = Part(0, True, humanize_ms=8.0)
    prog = _progression(rng, bars)
    scale = [root + 24 + s for s in MAJOR]
    for bar in range(bars):
        b0 = 3.0 * bar
        chord = triad(root + 12, prog[bar], MAJOR)
        bass.add(chord[0] - 12, b0, 0.9, _vel(rng, 95))
        for beat in (1, 2):
            for p in chord:
                comp.add(p + 12, b0 + beat, 0.5, _vel(rng, 70))
        for beat in range(3):
            if rng.random() < 0.7:
                melody.add(int(rng.choice(scale)), b0 + beat, 1.0, _vel(rng, 80))
        if brushes:
            drums.add(KICK, b0, 0.3, _vel(rng, 60))
            drums.add(RIM, b0 + 1, 0.3, _vel(rng, 50))
            drums.add(RIM, b0 + 2, 0.3, _vel(rng, 50))
    parts = (bass, comp, melody) + ((drums,) if brushes else ())
    return Arrangement(parts, 3)


def dembow(rng: np.random.Generator, bars: int) -> Arrangement:
    """Reggaeton: soft kick on the beat, loud snare on the off-grid 3-3-2 positions."""
    root = int(rng.integers(38, 45))
    drums = Part(0, True)
    bass = Part(38)
    lead = Part(int(rng.choice([80, 81, 84, 24])))
    minor = [root + 24 + s for s in MINOR]
    kick_vel = int(rng.integers(50, 90))
    for bar in range(bars):
        b0 = 4.0 * bar
        for beat in range(4):
            drums.add(KICK, b0 + beat, 0.4, kick_vel)
        for cell in (0.0, 2.0):
            for pos in (0.75, 1.5):
                drums.add(SNARE, b0 + cell + pos, 0.3, 112)
                drums.add(RIM, b0 + cell + pos, 0.3, 90)
        for e in range(8):
            if rng.random() < 0.5:
                drums.add(HH_CLOSED, b0 + 0.5 * e, 0.1, 50)
        for pos in (0.0, 0.75, 1.5, 2.0, 2.75, 3.5):
            bass.add(root + (7 if pos >= 2 else 0), b0 + pos, 0.5, 100)
        for pos in np.arange(0, 4, 0.5):
            if rng.random() < 0.4:
                lead.add(int(rng.choice(minor)), b0 + float(pos) + 0.25, 0.4, 85)
    return Arrangement((drums, bass, lead), 4)


def bossa(rng: np.random.Generator, bars: int) -> Arrangement:
    """Syncopated: son clave on the rim, anticipated guitar chords, bass on 1 and the and of 2."""
    root = int(rng.integers(40, 47))
    drums = Part(0, True, humanize_ms=5.0)
    guitar = Part(24, humanize_ms=8.0)
    bass = Part(int(rng.choice([32, 33])), humanize_ms=8.0)
    prog = _progression(rng, bars)
    clave = [(0.0, 1.5, 3.0), (1.0, 2.0)]                 # 3-2 son clave over two bars
    comp = [0.0, 1.5, 2.5, 3.5] if rng.random() < 0.5 else [0.5, 1.5, 2.0, 3.0]
    for bar in range(bars):
        b0 = 4.0 * bar
        for pos in clave[bar % 2]:
            drums.add(RIM, b0 + pos, 0.3, _vel(rng, 95))
        for s in range(16):
            drums.add(SHAKER, b0 + 0.25 * s, 0.1, _vel(rng, 60 if s % 4 == 0 else 40))
        chord = triad(root + 12, prog[bar], MAJOR)
        for pos in comp:
            for p in chord + [chord[0] + 11]:
                guitar.add(p, b0 + pos, 0.4, _vel(rng, 70))
        bass.add(chord[0] - 12, b0, 1.4, _vel(rng, 95))
        bass.add(chord[2] - 12, b0 + 1.5, 0.5, _vel(rng, 85))
        bass.add(chord[0] - 12, b0 + 2, 1.4, _vel(rng, 95))
        bass.add(chord[2] - 12, b0 + 3.5, 0.5, _vel(rng, 85))
    return Arrangement((drums, guitar, bass), 4)


def no_drums(rng: np.random.Generator, bars: int) -> Arrangement:
    """Piano arpeggios, legato strings or finger-picked guitar: no percussion at all."""
    root = int(rng.integers(40, 47))
    prog = _progression(rng, bars)
    kind = str(rng.choice(["arpeggio", "strings", "fingerpick"]))
    parts: list[Part] = []
    if kind == "arpeggio":
        piano = Part(0, humanize_ms=10.0)
        step = float(rng.choice([0.5, 0.25]))
        for bar in range(bars):
            chord = triad(root + 12, prog[bar], MAJOR)
            tones = chord + [chord[0] + 12, chord[1] + 12]
            piano.add(chord[0] - 12, 4.0 * bar, 4.0, _vel(rng, 80))
            for i, pos in enumerate(np.arange(0, 4, step)):
                piano.add(tones[i % len(tones)] + 12, 4.0 * bar + float(pos), step * 1.5, _vel(rng, 70))
        parts.append(piano)
    elif kind == "strings":
        strings = Part(int(rng.choice([48, 49])), humanize_ms=15.0)
        cello = Part(42, humanize_ms=15.0)
        for bar in range(bars):
            chord = triad(root + 12, prog[bar], MAJOR)
            for p in chord:
                strings.add(p + 12, 4.0 * bar, 4.0, _vel(rng, 75))
            for beat in range(4):
                cello.add(chord[0] - 12 + (7 if beat % 2 else 0), 4.0 * bar + beat, 0.95, _vel(rng, 80))
        parts += [strings, cello]
    else:
        guitar = Part(int(rng.choice([24, 25])), humanize_ms=10.0)
        for bar in range(bars):
            chord = triad(root + 12, prog[bar], MAJOR)
            pattern = [chord[0] - 12, chord[2], chord[1] + 12, chord[2], chord[0], chord[2], chord[1] + 12, chord[2]]
            for i, p in enumerate(pattern):
                guitar.add(p, 4.0 * bar + 0.5 * i, 0.9, _vel(rng, 75 if i % 2 == 0 else 60))
        parts.append(guitar)
    return Arrangement(tuple(parts), 4, kind)


def click(rng: np.random.Generator, bars: int) -> Arrangement:
    """A metronome: wood block, accented downbeat."""
    meter = int(rng.choice([3, 4]))
    drums = Part(0, True)
    for bar in range(bars):
        for beat in range(meter):
            drums.add(WOOD_HI if beat == 0 else WOOD_LO, meter * bar + beat, 0.2, 110 if beat == 0 else 90)
    return Arrangement((drums,), meter, f"{meter}/4")


#: style name -> (arrangement builder, tempo range in BPM of the quarter note)
STYLES: dict[str, tuple[Callable[[np.random.Generator, int], Arrangement], tuple[float, float]]] = {
    "click": (click, (50.0, 200.0)),
    "rock": (rock, (80.0, 160.0)),
    "four_on_the_floor": (four_on_the_floor, (118.0, 132.0)),
    "swing": (swing, (100.0, 200.0)),
    "half_time": (half_time, (130.0, 160.0)),
    "waltz": (waltz, (110.0, 180.0)),
    "dembow": (dembow, (84.0, 100.0)),
    "bossa": (bossa, (110.0, 150.0)),
    "no_drums": (no_drums, (60.0, 140.0)),
}
