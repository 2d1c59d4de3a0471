"""Turns arrangements and negative recipes into audio.

Music goes through a real General MIDI soundfont with the ``fluidsynth`` CLI
(Debian packages ``fluidsynth`` and ``fluid-soundfont-gm``); speech through
``espeak-ng``.  Everything here writes into a temporary folder and returns mono
float32 arrays; caching is the caller's business.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .styles import Arrangement
from .tempo_map import TempoMap

__all__ = ["SOUNDFONT", "SAMPLE_RATE", "render_arrangement", "render_speech", "colored_noise",
           "rain", "check_tools"]

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SAMPLE_RATE = 22050


def check_tools() -> None:
    """Fail with one line naming the missing Debian package."""
    if shutil.which("fluidsynth") is None:
        raise SystemExit("fluidsynth is not installed; run: apt-get install fluidsynth")
    if not SOUNDFONT.exists():
        raise SystemExit(f"soundfont {SOUNDFONT} is missing; run: apt-get install fluid-soundfont-gm")
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed; run: apt-get install espeak-ng")


def _read_mono(path: Path) -> np.ndarray:
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        raise RuntimeError(f"{path} came out at {sr} Hz, expected {SAMPLE_RATE}")
    return audio.mean(axis=1)


def render_arrangement(arr: Arrangement, tempo: TempoMap, rng: np.random.Generator,
                       soundfont: Path = SOUNDFONT) -> np.ndarray:
    """Render with fluidsynth; note times come from ``tempo`` plus each part's humanising jitter."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    for part in arr.parts:
        inst = pretty_midi.Instrument(program=part.program, is_drum=part.is_drum)
        for note in part.notes:
            start = tempo.time_of(note.beat)
            end = tempo.time_of(note.beat + note.length)
            if part.humanize_ms > 0:
                start += float(rng.normal(0.0, part.humanize_ms / 1000.0))
            start = max(start, 0.0)
            inst.notes.append(pretty_midi.Note(velocity=note.velocity, pitch=note.pitch,
                                               start=start, end=max(end, start + 0.02)))
        pm.instruments.append(inst)
    with tempfile.TemporaryDirectory(prefix="sidepath-tempo-") as tmp:
        mid, wav = Path(tmp) / "clip.mid", Path(tmp) / "clip.wav"
        pm.write(str(mid))
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.3", "-r", str(SAMPLE_RATE),
                        "-o", "audio.file.format=float", "-F", str(wav), str(soundfont), str(mid)],
                       check=True, capture_output=True)
        return _read_mono(wav)


def render_speech(text: str, *, voice: str, words_per_minute: int, pitch: int) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="sidepath-tempo-") as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-p", str(pitch),
                        "-w", str(wav), text], check=True, capture_output=True)
        audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if sr != SAMPLE_RATE:
        # espeak-ng writes 22050 Hz; resample anyway if a build differs
        import soxr

        audio = soxr.resample(audio, sr, SAMPLE_RATE).astype(np.float32)
    return audio


def colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]
    spectrum *= freqs ** (-exponent / 2.0)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def rain(rng: np.random.Generator, n: int, drops_per_s: float) -> np.ndarray:
    """Ambience: drops at Poisson times (no pulse) over a pink-noise bed."""
    out = 0.1 * colored_noise(rng, n, 1.0)
    count = rng.poisson(drops_per_s * n / SAMPLE_RATE)
    decay = np.exp(-np.arange(int(0.03 * SAMPLE_RATE)) / (0.004 * SAMPLE_RATE)).astype(np.float32)
    for start in rng.integers(0, max(n - decay.size, 1), size=count):
        burst = decay * rng.standard_normal(decay.size).astype(np.float32) * float(rng.uniform(0.1, 1.0))
        out[start:start + decay.size] += burst[: n - start]
    return out
