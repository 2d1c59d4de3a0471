"""``python -m bench.tempo``: render the corpus, run both trackers, print and record the figures."""
from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import sys
import time

import click
import numpy as np

from bench.report import summary, write_block

from . import corpus, render, report, score, trackers

__all__ = ["main"]

log = logging.getLogger(__name__)

DOC_PAGE = "tempo.md"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--seed", default=0, show_default=True, help="Corpus seed (0 is the reported one; 1-3 were used to tune)."
)
@click.option("--scale", default=1.0, show_default=True, help="Multiply the number of clips per style.")
@click.option("--repeats", default=3, show_default=True, help="Timing runs per clip and tracker (the fastest counts).")
@click.option("--batch", default=8, show_default=True, help="Also time sidepath in batches of this many clips.")
@click.option("--quick", is_flag=True, help="A quarter of the clips, one timing run, docs left alone (a smoke test).")
@click.option("--no-docs", is_flag=True, help="Print only; leave docs/tempo.md alone.")
def main(seed: int, scale: float, repeats: int, batch: int, quick: bool, no_docs: bool) -> None:
    """Score sidepath's tempo model against librosa's beat_track on rendered clips with known beats."""
    if quick:
        scale, repeats, no_docs = min(scale, 0.25), 1, True
    import torch
    from tqdm import tqdm

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    render.check_tools()
    torch.set_num_threads(1)
    specs = corpus.corpus_specs(seed, scale)
    clips = [corpus.build(s) for s in tqdm(specs, desc="rendering", file=sys.stderr)]
    ours_track, base_track = trackers.sidepath_tracker(), trackers.librosa_tracker()
    for track in (ours_track, base_track):  # JIT, caches, first-call allocations
        track(clips[0].audio)
        track(clips[-1].audio)
    ours: list[score.ClipScore] = []
    base: list[score.ClipScore] = []
    for clip in tqdm(clips, desc="tracking", file=sys.stderr):
        runs: dict[str, list[tuple[np.ndarray, float | None, float]]] = {"ours": [], "base": []}
        for _ in range(repeats):  # interleaved: a busy neighbour slows both alike
            runs["ours"].append(trackers.timed(ours_track, clip.audio))
            runs["base"].append(trackers.timed(base_track, clip.audio))
        for key, out in (("ours", ours), ("base", base)):
            beats, bpm, _ = runs[key][-1]
            seconds = min(r[2] for r in runs[key])
            out.append(score.score_clip(clip.spec.name, clip.spec.style, clip.beats, beats, bpm, seconds))
    s_ours, s_base = score.summarize(ours), score.summarize(base)
    batch_ms = _batch_ms_per_clip(clips, batch)
    counts: dict[str, int] = {}
    for clip in clips:
        if clip.is_music:
            counts[clip.spec.style] = counts.get(clip.spec.style, 0) + 1
    mean_s = float(np.mean([c.audio.size for c in clips])) / render.SAMPLE_RATE
    command = (
        "python -m bench.tempo" + (f" --seed {seed}" if seed else "") + (f" --scale {scale:g}" if scale != 1 else "")
    )
    block = "\n\n".join(
        [
            f"Measured {_dt.date.today().isoformat()} with `{command}`: {s_ours.music_clips} music clips and "
            f"{s_ours.negative_clips} negatives (mean {mean_s:.1f} s), {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs shared, torch {torch.__version__} with 1 thread, both trackers interleaved "
            f"clip by clip, fastest of {repeats} runs.",
            report.headline(s_ours, s_base),
            f"sidepath's batched core over padded batches of {batch} clips of similar length: {batch_ms:.1f} ms per "
            "clip on the CPU (which is why `predict` goes clip by clip on a CPU).",
            "Beat F-measure by style:",
            report.by_style(s_ours, s_base, counts),
            "Weakest music clips for sidepath:",
            report.worst_clips(ours, base, {c.spec.name: c.detail for c in clips}),
        ]
    )
    click.echo(block)
    summary("tempo", report.summary_rows(s_ours, s_base))
    if not no_docs:
        log.info("wrote the table into %s", write_block(DOC_PAGE, "tempo", block))


def _batch_ms_per_clip(clips: list[corpus.Clip], size: int) -> float:
    """CPU time per clip of the batched core over padded batches of clips of similar length
    (``predict`` itself goes clip by clip on a CPU)."""
    from sidepath.decoders.base import Media
    from sidepath.models.tempo import TempoModel, pad_clips

    model = TempoModel(max_batch=size)
    model.load("cpu")
    items = sorted(
        (model.prepare(Media(audio=c.audio, sample_rate=render.SAMPLE_RATE, kind="audio")) for c in clips),
        key=lambda x: x.numel(),
    )
    model.analyse(*pad_clips(items[:size], model.device))
    start = time.perf_counter()
    for i in range(0, len(items), size):
        model.analyse(*pad_clips(items[i : i + size], model.device))
    return 1000.0 * (time.perf_counter() - start) / len(items)
