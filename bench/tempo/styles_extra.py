"""More styles for the learned tracker's training data (same conventions as ``styles.py``).

Swung hip-hop, ballads, legato ensembles without drums, 6/8, 5/4 and 7/4,
salsa and cumbia.  Positions are in beats of the annotated pulse: the dotted
quarter in 6/8, the quarter elsewhere.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .styles import (
    CLAP,
    COWBELL,
    HH_CLOSED,
    HH_OPEN,
    KICK,
    MAJOR,
    MINOR,
    RIDE,
    RIM,
    SHAKER,
    SNARE,
    STYLES,
    WOOD_HI,
    WOOD_LO,
    Arrangement,
    Part,
    _progression,
    _vel,
    triad,
)

__all__ = ["ALL_STYLES", "EXTRA_STYLES"]


def hiphop(rng: np.random.Generator, bars: int) -> Arrangement:
    """Boom bap: swung sixteenths, kick on 1 and the and of 2, snare on 2 and 4."""
    root = int(rng.integers(38, 45))
    swing16 = float(rng.uniform(0.28, 0.36))           # position of the second sixteenth in a half beat
    drums = Part(0, True, humanize_ms=6.0)
    bass = Part(int(rng.choice([33, 38, 34])), humanize_ms=6.0)
    keys = Part(int(rng.choice([4, 5, 0, 11])), humanize_ms=8.0)
    kicks = [[0.0, 1.5, 2.5], [0.0, 0.75, 2.5], [0.0, 1.75, 2.25, 3.5]][int(rng.integers(3))]
    prog = _progression(rng, bars, minor=True)
    for bar in range(bars):
        b0 = 4.0 * bar
        for k in kicks:
            drums.add(KICK, b0 + k, 0.4, _vel(rng, 110))
        for s in (1, 3):
            drums.add(SNARE, b0 + s, 0.4, _vel(rng, 112))
        for h in range(8):
            drums.add(HH_CLOSED, b0 + 0.5 * h, 0.1, _vel(rng, 70 if h % 2 == 0 else 55))
            if rng.random() < 0.35:
                drums.add(HH_CLOSED, b0 + 0.5 * h + swing16, 0.1, _vel(rng, 40))
        chord = triad(root + 12, prog[bar], MINOR)
        for k in kicks:
            bass.add(chord[0] - 12, b0 + k, 0.6, _vel(rng, 100))
        if rng.random() < 0.8:
            start = float(rng.choice([0.0, 0.5, 1.5]))
            for p in chord + [chord[0] + 10]:
                keys.add(p + 12, b0 + start, 1.5, _vel(rng, 65))
    return Arrangement((drums, bass, keys), 4)


def ballad(rng: np.random.Generator, bars: int) -> Arrangement:
    """Slow piano in broken chords, soft drums (cross-stick on 2 and 4) in half the songs."""
    root = int(rng.integers(40, 47))
    piano = Part(int(rng.choice([0, 1, 4])), humanize_ms=12.0)
    strings = Part(int(rng.choice([48, 49, 89])), humanize_ms=15.0)
    drums = Part(0, True, humanize_ms=8.0)
    with_drums = rng.random() < 0.5
    prog = _progression(rng, bars)
    for bar in range(bars):
        b0 = 4.0 * bar
        chord = triad(root + 12, prog[bar], MAJOR)
        tones = [chord[0] - 12, chord[2], chord[1] + 12, chord[2]]
        for i in range(8):
            piano.add(tones[i % 4] + (12 if i % 4 == 2 else 0), b0 + 0.5 * i, 0.9, _vel(rng, 70 if i % 2 == 0 else 55))
        for p in chord:
            strings.add(p, b0, 4.0, _vel(rng, 55))
        if with_drums:
            drums.add(KICK, b0, 0.3, _vel(rng, 70))
            drums.add(KICK, b0 + 2.5, 0.3, _vel(rng, 55))
            drums.add(RIM, b0 + 1, 0.3, _vel(rng, 70))
            drums.add(RIM, b0 + 3, 0.3, _vel(rng, 70))
            for h in range(8):
                drums.add(HH_CLOSED, b0 + 0.5 * h, 0.1, _vel(rng, 40))
    return Arrangement((piano, strings) + ((drums,) if with_drums else ()), 4, "drums" if with_drums else "piano")


def legato(rng: np.random.Generator, bars: int) -> Arrangement:
    """Strings, choir, organ or brass: chords that change on beats, no percussion, slow attacks."""
    root = int(rng.integers(40, 47))
    prog_inst = int(rng.choice([48, 49, 52, 19, 61, 68, 42]))
    upper = Part(prog_inst, humanize_ms=20.0)
    low = Part(int(rng.choice([42, 43, 32, 70])), humanize_ms=20.0)
    per_beat = float(rng.choice([1.0, 2.0]))
    scale = MAJOR if rng.random() < 0.6 else MINOR
    prog = _progression(rng, bars * 4)
    step = 0
    for bar in range(bars):
        for pos in np.arange(0.0, 4.0, per_beat):
            b = 4.0 * bar + float(pos)
            chord = triad(root + 12, prog[step % len(prog)], scale)
            step += 1
            for p in chord:
                upper.add(p + 12, b, per_beat, _vel(rng, 70))
            low.add(chord[0] - 12, b, per_beat, _vel(rng, 75))
    return Arrangement((upper, low), 4, f"{'per beat' if per_beat == 1 else 'half bar'}")


def compound(rng: np.random.Generator, bars: int) -> Arrangement:
    """6/8: two dotted-quarter beats per bar, each of three eighths."""
    root = int(rng.integers(40, 47))
    drums = Part(0, True, humanize_ms=6.0)
    guitar = Part(int(rng.choice([24, 25, 0, 46])), humanize_ms=8.0)
    bass = Part(int(rng.choice([32, 33])), humanize_ms=6.0)
    with_drums = rng.random() < 0.7
    prog = _progression(rng, bars)
    third = 1.0 / 3.0
    for bar in range(bars):
        b0 = 2.0 * bar
        chord = triad(root + 12, prog[bar], MAJOR)
        for beat in range(2):
            for e in range(3):
                velocity = _vel(rng, 72 if e == 0 else 58)
                guitar.add(chord[(e + beat) % 3] + 12, b0 + beat + e * third, third * 1.2, velocity)
            bass.add(chord[0] - 12, b0 + beat, 0.9, _vel(rng, 95 if beat == 0 else 80))
        if with_drums:
            drums.add(KICK, b0, 0.3, _vel(rng, 105))
            drums.add(SNARE, b0 + 1, 0.3, _vel(rng, 100))
            for e in range(6):
                drums.add(HH_CLOSED if e % 3 else RIDE, b0 + e * third, 0.1, _vel(rng, 60))
    return Arrangement((guitar, bass) + ((drums,) if with_drums else ()), 2, "6/8")


def odd_meter(rng: np.random.Generator, bars: int) -> Arrangement:
    """5/4 or 7/4 rock: kick on the bar's first beat and in its groupings, snare on the others."""
    meter = int(rng.choice([5, 7]))
    groups = {5: [(0, 3), (3, 2)], 7: [(0, 4), (4, 3)]}[meter]
    root = int(rng.integers(40, 47))
    drums = Part(0, True, humanize_ms=5.0)
    bass = Part(int(rng.choice([33, 34])), humanize_ms=5.0)
    keys = Part(int(rng.choice([29, 30, 4, 16])), humanize_ms=8.0)
    prog = _progression(rng, bars)
    for bar in range(bars):
        b0 = float(meter * bar)
        chord = triad(root + 12, prog[bar], MAJOR)
        for start, length in groups:
            drums.add(KICK, b0 + start, 0.3, _vel(rng, 110))
            for k in range(1, length):
                drums.add(
                    SNARE if k == length - 1 else KICK, b0 + start + k, 0.3, _vel(rng, 100 if k == length - 1 else 80)
                )
        for e in range(2 * meter):
            drums.add(HH_CLOSED, b0 + 0.5 * e, 0.1, _vel(rng, 70 if e % 2 == 0 else 50))
        for beat in range(meter):
            bass.add(chord[0] - 12, b0 + beat, 0.8, _vel(rng, 95))
        for p in chord:
            keys.add(p + 12, b0, float(meter), _vel(rng, 60))
    return Arrangement((drums, bass, keys), meter, f"{meter}/4")


def salsa(rng: np.random.Generator, bars: int) -> Arrangement:
    """Salsa / son: tumbao bass (and of 2, 4), cowbell on the beats, piano montuno, clave."""
    root = int(rng.integers(40, 47))
    perc = Part(0, True, humanize_ms=5.0)
    bass = Part(int(rng.choice([32, 33, 43])), humanize_ms=6.0)
    piano = Part(int(rng.choice([0, 1, 2])), humanize_ms=6.0)
    prog = _progression(rng, bars)
    clave = [(0.0, 1.5, 3.0), (1.0, 2.0)]
    montuno = [0.0, 0.5, 1.0, 1.5, 2.5, 3.0, 3.5]
    for bar in range(bars):
        b0 = 4.0 * bar
        chord = triad(root + 12, prog[bar], MAJOR)
        for pos in clave[bar % 2]:
            perc.add(WOOD_HI, b0 + pos, 0.2, _vel(rng, 90))
        for beat in range(4):
            perc.add(COWBELL, b0 + beat, 0.2, _vel(rng, 85 if beat % 2 == 0 else 70))
            perc.add(WOOD_LO if beat % 2 else RIM, b0 + beat + 0.5, 0.2, _vel(rng, 60))
        perc.add(HH_OPEN, b0 + 3.5, 0.3, _vel(rng, 55))
        bass.add(chord[0] - 12, b0 + 1.5, 1.5, _vel(rng, 100))
        bass.add(chord[2] - 12, b0 + 3.0, 1.0, _vel(rng, 95))
        for i, pos in enumerate(montuno):
            piano.add(chord[i % 3] + 12, b0 + pos, 0.4, _vel(rng, 75))
    return Arrangement((perc, bass, piano), 4)


def cumbia(rng: np.random.Generator, bars: int) -> Arrangement:
    """Cumbia: guacharaca (shaker) scraping, bass on 1 and 3, accent on the off-beats."""
    root = int(rng.integers(40, 47))
    perc = Part(0, True, humanize_ms=5.0)
    bass = Part(int(rng.choice([33, 32])), humanize_ms=5.0)
    accordion = Part(int(rng.choice([21, 22, 23])), humanize_ms=8.0)
    prog = _progression(rng, bars)
    for bar in range(bars):
        b0 = 4.0 * bar
        chord = triad(root + 12, prog[bar], MAJOR)
        for s in range(8):
            perc.add(SHAKER, b0 + 0.5 * s, 0.2, _vel(rng, 80 if s % 2 else 55))
        for beat in range(4):
            perc.add(KICK, b0 + beat, 0.3, _vel(rng, 75))
            perc.add(CLAP if beat % 2 else RIM, b0 + beat + 0.5, 0.2, _vel(rng, 85))
        bass.add(chord[0] - 12, b0, 0.9, _vel(rng, 100))
        bass.add(chord[2] - 12, b0 + 2, 0.9, _vel(rng, 95))
        for beat in range(4):
            for p in chord:
                accordion.add(p + 12, b0 + beat + 0.5, 0.4, _vel(rng, 70))
    return Arrangement((perc, bass, accordion), 4)


EXTRA_STYLES: dict[str, tuple[Callable[[np.random.Generator, int], Arrangement], tuple[float, float]]] = {
    "hiphop": (hiphop, (78.0, 100.0)),
    "ballad": (ballad, (56.0, 84.0)),
    "legato": (legato, (56.0, 120.0)),
    "compound": (compound, (50.0, 80.0)),
    "odd_meter": (odd_meter, (90.0, 160.0)),
    "salsa": (salsa, (160.0, 210.0)),
    "cumbia": (cumbia, (85.0, 110.0)),
}
ALL_STYLES = {**STYLES, **EXTRA_STYLES}
