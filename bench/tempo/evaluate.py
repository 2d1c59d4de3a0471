"""``python -m bench.tempo.evaluate``: the learned tracker on its three splits, and on the held-out
test split against librosa's ``beat_track`` and the ``dsp`` method in the same run.

Train and validation: the learned and the dsp method (scores only).  Test: all three trackers
interleaved clip by clip, each clip timed at batch 1 on one thread (fastest of ``--repeats``
runs).  Writes the tables into docs/tempo.md (block ``tempo-learned``) unless ``--no-docs``.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import sys

# one thread for every numeric library, set before they are imported (they read it once)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import click  # noqa: E402
import numpy as np  # noqa: E402

from bench.report import write_block  # noqa: E402

from . import dataset, score, trackers  # noqa: E402
from .train import load_split  # noqa: E402

__all__ = ["main"]

log = logging.getLogger("bench.tempo.evaluate")

#: the issue's targets on the test split: (attribute, minimum)
TARGETS = {"f_measure": 0.88, "cmlt": 0.80, "amlt": 0.93, "acc1": 0.85, "acc2": 0.97}
GROUPS = {"music": "generator styles, held-out soundfont and kits", "blupi": "Planet Blupi MIDI songs",
          "h2song": "Hydrogen demo songs"}


def _run(track: trackers.Tracker, items: list[dataset.Item], repeats: int) -> list[score.ClipScore]:
    out = []
    for it in items:
        runs = [trackers.timed(track, it.audio) for _ in range(repeats)]
        beats, bpm, _ = runs[-1]
        out.append(score.score_clip(it.recipe.name, it.recipe.style, it.beats if it.is_music else np.zeros(0),
                                    beats, bpm, min(r[2] for r in runs)))
    return out


def _interleaved(tracks: dict[str, trackers.Tracker], items: list[dataset.Item],
                 repeats: int) -> dict[str, list[score.ClipScore]]:
    from tqdm import tqdm

    out: dict[str, list[score.ClipScore]] = {k: [] for k in tracks}
    for it in tqdm(items, desc="test split", file=sys.stderr):
        runs: dict[str, list] = {k: [] for k in tracks}
        for _ in range(repeats):                    # interleaved: a busy neighbour slows all alike
            for k, track in tracks.items():
                runs[k].append(trackers.timed(track, it.audio))
        for k in tracks:
            beats, bpm, _ = runs[k][-1]
            out[k].append(score.score_clip(it.recipe.name, it.recipe.style,
                                           it.beats if it.is_music else np.zeros(0), beats, bpm,
                                           min(r[2] for r in runs[k])))
    return out


def _row(name: str, s: score.Summary, per17: float | None = None) -> str:
    gated = s.music_without_beats / max(s.music_clips, 1)
    timing = f" {s.ms_per_clip:.1f} / {per17:.1f} |" if per17 is not None else ""
    return (f"| {name} | {s.f_measure:.3f} | {s.cmlt:.3f} | {s.amlt:.3f} | {s.acc1:.3f} | {s.acc2:.3f} | "
            f"{s.median_bias_ms:+.1f} ms | {s.music_without_beats}/{s.music_clips} ({gated:.0%}) | "
            f"{s.negatives_with_beats}/{s.negative_clips} |{timing}")


HEADER = ("| tracker | F (70 ms, no trim) | CMLt | AMLt | Acc1 | Acc2 | median bias | music with no beats | "
          "negatives with beats |")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--repeats", default=3, show_default=True, help="Timing runs per test clip and tracker.")
@click.option("--workers", default=2, show_default=True, help="Rendering processes (first run only).")
@click.option("--no-docs", is_flag=True, help="Print only; leave docs/tempo.md alone.")
def main(repeats: int, workers: int, no_docs: bool) -> None:
    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    learned, dsp, base = (trackers.sidepath_tracker(method="learned"), trackers.sidepath_tracker(method="dsp"),
                          trackers.librosa_tracker())
    splits = {s: load_split(s, workers) for s in ("train", "validation", "test")}
    for t in (learned, dsp, base):
        t(splits["test"][0].audio)
    blocks = []
    rows = [HEADER + "\n|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for split in ("train", "validation"):
        items = splits[split]
        for name, track in (("learned", learned), ("dsp", dsp)):
            rows.append(_row(f"{split}: {name}", score.summarize(_run(track, items, 1))))
    test = splits["test"]
    res = _interleaved({"librosa beat_track": base, "sidepath dsp": dsp, "sidepath learned": learned}, test, repeats)
    seconds = float(sum(it.audio.size for it in test)) / dataset.SR
    test_rows = [HEADER + " CPU ms per clip / per 17 s |", "|---|---:|---:|---:|---:|---:|---:|---|---|---:|"]
    for name, scores in res.items():
        total = sum(s.seconds for s in scores)
        test_rows.append(_row(name, score.summarize(scores), 1000.0 * total / seconds * 17.0))
    ours = score.summarize(res["sidepath learned"])
    base_s = score.summarize(res["librosa beat_track"])
    met = [f"{k} {getattr(ours, k):.3f} {'>=' if getattr(ours, k) >= v else '<'} {v}" for k, v in TARGETS.items()]
    group_rows = ["| test group | clips | librosa F / AMLt | dsp F / AMLt | learned F / CMLt / AMLt / Acc1 / Acc2 |",
                  "|---|---:|---|---|---|"]
    for kind, label in GROUPS.items():
        idx = [i for i, it in enumerate(test) if it.recipe.kind == kind]
        if not idx:
            continue
        g = {k: score.summarize([v[i] for i in idx]) for k, v in res.items()}
        lr, ds, le = g["librosa beat_track"], g["sidepath dsp"], g["sidepath learned"]
        group_rows.append(f"| {label} | {len(idx)} | {lr.f_measure:.3f} / {lr.amlt:.3f} | {ds.f_measure:.3f} / "
                          f"{ds.amlt:.3f} | {le.f_measure:.3f} / {le.cmlt:.3f} / {le.amlt:.3f} / {le.acc1:.3f} / "
                          f"{le.acc2:.3f} |")
    style_rows = ["| style (test) | clips | librosa F | dsp F | learned F |", "|---|---:|---:|---:|---:|"]
    by = {k: score.summarize(v).by_style for k, v in res.items()}
    for style, f in sorted(by["sidepath learned"].items()):
        n = sum(1 for it in test if it.is_music and it.recipe.style == style)
        style_rows.append(f"| {style} | {n} | {by['librosa beat_track'].get(style, 0):.2f} | "
                          f"{by['sidepath dsp'].get(style, 0):.2f} | {f:.2f} |")
    worst = sorted((s for s in res["sidepath learned"] if s.is_music), key=lambda s: s.f_measure)[:10]
    details = {it.recipe.name: it.detail for it in test}
    worst_rows = ["| test clip | content | reference BPM | learned BPM / F / AMLt |", "|---|---|---:|---:|"]
    for s in worst:
        worst_rows.append(f"| {s.name} | {details[s.name]} | {s.ref_bpm:.1f} | "
                          f"{(f'{s.bpm:.1f}' if s.bpm else 'none')} / {s.f_measure:.2f} / {s.amlt:.2f} |")
    counts = {k: len(v) for k, v in splits.items()}
    blocks = [
        f"Measured {_dt.date.today().isoformat()} with `python -m bench.tempo.evaluate`: train {counts['train']}, "
        f"validation {counts['validation']}, test {counts['test']} clips; {platform.machine()}, {os.cpu_count()} "
        f"CPUs shared, torch {torch.__version__} with 1 thread. Test clips average "
        f"{seconds / len(test):.1f} s; the three trackers ran interleaved clip by clip, fastest of {repeats} runs.",
        "Test split (held out: never used for training, checkpoint choice or the gate's threshold):",
        "\n".join(test_rows),
        f"The issue's targets on the test split (learned): {'; '.join(met)}; median bias "
        f"{ours.median_bias_ms:+.1f} ms (target within 15); negatives with beats {ours.negatives_with_beats} "
        f"(target 0); music with no beats {ours.music_without_beats}/{ours.music_clips} (target <= 5%). "
        f"CPU time per clip: learned {ours.ms_per_clip:.1f} ms, librosa {base_s.ms_per_clip:.1f} ms.",
        "By group of the test split:", "\n".join(group_rows),
        "By style (test split):", "\n".join(style_rows),
        "Weakest test clips for the learned tracker:", "\n".join(worst_rows),
        "Training and validation splits (scores only, no timing):", "\n".join(rows),
    ]
    text = "\n\n".join(blocks)
    click.echo(text)
    if not no_docs:
        log.info("wrote %s", write_block("tempo.md", "tempo-learned", text))


if __name__ == "__main__":
    main()
