"""The benchmark's markdown: the headline table with targets, F-measure by style, the
weakest clips.  (bench/report.py writes it into docs/tempo.md.)"""
from __future__ import annotations

from dataclasses import dataclass

from .score import ClipScore, Summary

__all__ = ["Targets", "headline", "by_style", "worst_clips", "summary_rows"]


@dataclass(frozen=True, slots=True)
class Targets:
    f_ratio: float = 1.05
    amlt_ratio: float = 1.08
    acc_ratio: float = 1.0
    bias_ms: float = 15.0
    gated_music: float = 0.10
    speed_ratio: float = 1.0


def _ratio(ours: float, base: float) -> float:
    return ours / base if base > 0 else float("inf")


def _mark(ok: bool) -> str:
    return "yes" if ok else "**no**"


def headline(ours: Summary, base: Summary, t: Targets = Targets()) -> str:
    rows = [("| metric | librosa beat_track | sidepath tempo | ratio | target | met |"),
            ("|---|---:|---:|---:|---|---|")]
    for name, attr, target in (("beat F-measure (70 ms, no trim)", "f_measure", t.f_ratio),
                               ("CMLt", "cmlt", None), ("AMLt", "amlt", t.amlt_ratio),
                               ("tempo Acc1 (4%)", "acc1", t.acc_ratio),
                               ("tempo Acc2 (x2, x3, /2, /3)", "acc2", t.acc_ratio)):
        a, b = getattr(base, attr), getattr(ours, attr)
        r = _ratio(b, a)
        rows.append(f"| {name} | {a:.3f} | {b:.3f} | {r:.2f}x | "
                    + (f">= {target:.2f}x | {_mark(r >= target)} |" if target else "| |"))
    rows.append(f"| median beat bias | {base.median_bias_ms:+.1f} ms | {ours.median_bias_ms:+.1f} ms | | "
                f"within {t.bias_ms:.0f} ms | {_mark(abs(ours.median_bias_ms) <= t.bias_ms)} |")
    gated = ours.music_without_beats / max(ours.music_clips, 1)
    rows.append(f"| music clips with no beats | {base.music_without_beats}/{base.music_clips} | "
                f"{ours.music_without_beats}/{ours.music_clips} ({gated:.0%}) | | <= {t.gated_music:.0%} | "
                f"{_mark(gated <= t.gated_music)} |")
    rows.append(f"| negative clips with beats | {base.negatives_with_beats}/{base.negative_clips} | "
                f"{ours.negatives_with_beats}/{ours.negative_clips} | | 0 | {_mark(ours.negatives_with_beats == 0)} |")
    speed = _ratio(base.ms_per_clip, ours.ms_per_clip)
    rows.append(f"| CPU time per clip, batch 1, 1 thread | {base.ms_per_clip:.1f} ms | {ours.ms_per_clip:.1f} ms | "
                f"{speed:.2f}x faster | >= {t.speed_ratio:.1f}x | {_mark(speed >= t.speed_ratio)} |")
    return "\n".join(rows)


def by_style(ours: Summary, base: Summary, counts: dict[str, int]) -> str:
    rows = ["| style | clips | librosa F | sidepath F |", "|---|---:|---:|---:|"]
    for style, f in ours.by_style.items():
        rows.append(f"| {style} | {counts.get(style, 0)} | {base.by_style.get(style, 0.0):.2f} | {f:.2f} |")
    return "\n".join(rows)


def worst_clips(ours: list[ClipScore], base: list[ClipScore], details: dict[str, str], n: int = 12) -> str:
    pairs = sorted(((o, b) for o, b in zip(ours, base) if o.is_music), key=lambda p: p[0].f_measure)[:n]
    rows = [
        "| clip | content | reference BPM | librosa BPM / F | sidepath BPM / F / AMLt |",
        "|---|---|---:|---:|---:|",
    ]

    def bpm(x: float | None) -> str:
        return f"{x:.1f}" if x else "none"

    for o, b in pairs:
        rows.append(
            f"| {o.name} | {details[o.name]} | {bpm(o.ref_bpm)} | {bpm(b.bpm)} / {b.f_measure:.2f} | "
            f"{bpm(o.bpm)} / {o.f_measure:.2f} / {o.amlt:.2f} |"
        )
    return "\n".join(rows)


def summary_rows(ours: Summary, base: Summary) -> list[tuple[str, str, str, str]]:
    """Headline rows (workload, baseline, sidepath, ratio) for the summary of ``python -m bench``."""
    n = ours.music_clips
    return [
        (
            f"tempo & beats: beat F-measure ({n} rendered music clips)",
            f"librosa {base.f_measure:.3f}",
            f"{ours.f_measure:.3f}",
            f"{_ratio(ours.f_measure, base.f_measure):.2f}x",
        ),
        ("tempo & beats: AMLt", f"librosa {base.amlt:.3f}", f"{ours.amlt:.3f}", f"{_ratio(ours.amlt, base.amlt):.2f}x"),
        (
            f"tempo & beats: negatives with beats ({ours.negative_clips} clips)",
            f"librosa {base.negatives_with_beats}",
            f"{ours.negatives_with_beats}",
            "",
        ),
        (
            "tempo & beats: CPU ms per clip, batch 1",
            f"librosa {base.ms_per_clip:.1f} ms",
            f"{ours.ms_per_clip:.1f} ms",
            f"{_ratio(base.ms_per_clip, ours.ms_per_clip):.2f}x faster",
        ),
    ]
