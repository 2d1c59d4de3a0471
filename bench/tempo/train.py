"""``python -m bench.tempo.train``: train the learned beat tracker from a seed and write its weights.

Renders (or reads from the cache) the training and validation splits of
``dataset.py``, computes the network's log-mel features, and trains ``BeatTCN``
on random excerpts with time-stretched features.  Every ``--eval-every`` steps
it decodes the whole validation split and keeps the weights with the best beat
F-measure (a run cut short still leaves usable weights); at the end it picks the
no-beat gate's threshold on the validation split and writes both into the
safetensors file.  Deterministic for a given seed, thread count and torch build.
"""
from __future__ import annotations

import json
import logging
import math
import multiprocessing
import sys
import time
from pathlib import Path

import click
import numpy as np

from . import augment as audio_aug
from . import dataset

__all__ = ["main"]

log = logging.getLogger("bench.tempo.train")

EXCERPT_S = 8.0
STRETCH = (0.8, 1.25)           # feature time-stretch factors (tempo augmentation)
TARGET_SPREAD = 0.5             # weight of a target beat's neighbour frames


def load_split(split: str, workers: int, scale: float = 1.0) -> list[dataset.Item]:
    recs = dataset.recipes(split, scale)
    start = time.time()
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            items = list(pool.imap(dataset.build, recs, chunksize=2))
    else:
        items = [dataset.build(r) for r in recs]
    log.info("%s: %d clips (%.2f h) in %.0f s", split, len(items),
             sum(i.audio.size for i in items) / dataset.SR / 3600, time.time() - start)
    return items


Sample = tuple[np.ndarray, np.ndarray, np.ndarray, float]


def features(items: list[dataset.Item]) -> list[Sample]:
    """(log-mel (M, T) float16, beat frames, downbeat frames, time scale 1.0) per item, at the network's frame rate."""
    return [_features(it.audio, it.beats, it.downbeats, 1.0) for it in items]


def _features(audio: np.ndarray, beats: np.ndarray, downbeats: np.ndarray, scale: float) -> Sample:
    import torch

    from sidepath.models.tempo_net import FEATURES, feature_mel, log_mel

    fps = FEATURES.fps
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
        feat, _valid = log_mel(x, torch.tensor([x.shape[1]]), feature_mel())
    return feat[0].numpy().astype(np.float16), beats * scale * fps, downbeats * scale * fps, scale


_TO_AUGMENT: list[dataset.Item] = []     # set before the processes fork: they read it, nothing is pickled


def _augmented(job: tuple[int, int]) -> Sample:
    index, seed = job
    it = _TO_AUGMENT[index]
    aug = audio_aug.augment(it.audio, np.random.default_rng([seed, it.recipe.seed]))
    return _features(aug.audio, it.beats, it.downbeats, aug.time_scale)


def augmented_features(items: list[dataset.Item], seed: int, workers: int) -> list[Sample]:
    """One pitch-shifted, maybe compressed and re-encoded copy of each item (``augment.py``), from its seed."""
    import torch

    start = time.time()
    _TO_AUGMENT[:] = items
    jobs = [(i, seed) for i in range(len(items))]
    if workers > 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            out = list(pool.imap(_augmented, jobs, chunksize=4))
        torch.set_num_threads(threads)
    else:
        out = [_augmented(j) for j in jobs]
    _TO_AUGMENT.clear()
    log.info("augmented copies: %d clips in %.0f s", len(out), time.time() - start)
    return out


def _targets(frames: np.ndarray, positions: np.ndarray, n: int) -> np.ndarray:
    """Target per output frame: 1 at the frame nearest each beat, TARGET_SPREAD either side."""
    y = np.zeros(n, np.float32)
    idx = np.round(positions).astype(np.int64)
    for d, w in ((-1, TARGET_SPREAD), (1, TARGET_SPREAD), (0, 1.0)):
        j = idx + d
        ok = (j >= 0) & (j < n)
        y[j[ok]] = np.maximum(y[j[ok]], w)
    del frames
    return y


def _excerpt(sample: Sample, length: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    feat, beats, downs, scale = sample
    n = feat.shape[1]
    # a pitch-shifted copy (scale != 1) is read back at its original tempo, then stretched as any clip
    stretch = scale * float(np.exp(rng.uniform(math.log(STRETCH[0]), math.log(STRETCH[1]))))
    span = length * stretch
    start = float(rng.uniform(0.0, max(n - span, 0.0)))
    pos = start + np.arange(length) * stretch
    inside = pos <= n - 1
    lo = np.clip(np.floor(pos).astype(np.int64), 0, n - 1)
    hi = np.clip(lo + 1, 0, n - 1)
    frac = (pos - lo).astype(np.float32)
    f32 = feat.astype(np.float32)
    x = (f32[:, lo] * (1 - frac) + f32[:, hi] * frac) * inside
    ym = inside.astype(np.float32)
    yb = _targets(np.arange(length), (beats - start) / stretch, length) * ym
    yd = _targets(np.arange(length), (downs - start) / stretch, length) * ym
    return x, yb, yd, ym


def evaluate(net: object, items: list[dataset.Item], feats: list, threshold: float | None = None) -> dict[str, float]:
    """Beat F-measure etc. of the full decoder over ``items`` (music), gate figures over negatives."""
    import torch

    from sidepath.models.tempo import TempoModel
    from sidepath.models.tempo_net import FEATURES

    from . import score

    decoder = TempoModel(method="learned", min_confidence=1.0)     # 1.0: no stored threshold needed
    decoder._net = net  # type: ignore[assignment]
    results = []
    with torch.inference_mode():
        for (feat, _b, _d, _s), it in zip(feats, items):
            f = torch.from_numpy(feat.astype(np.float32))[None]
            valid = torch.tensor([f.shape[-1]])
            results.append(decoder.decode_features(f, valid, torch.tensor([it.audio.size]),
                                                    peak=float(np.abs(it.audio).max()), threshold=threshold)[0])
    del FEATURES
    scores = [score.score_clip(it.recipe.name, it.recipe.style, it.beats if it.is_music else np.zeros(0),
                               np.asarray(r["beats"]), r["bpm"], 0.0) for r, it in zip(results, items)]
    s = score.summarize(scores)
    confs = {"music": [r["confidence"] for r, it in zip(results, items) if it.is_music],
             "negative": [r["confidence"] for r, it in zip(results, items) if not it.is_music]}
    return {"f": s.f_measure, "cmlt": s.cmlt, "amlt": s.amlt, "acc1": s.acc1, "acc2": s.acc2,
            "music_without_beats": s.music_without_beats, "negatives_with_beats": s.negatives_with_beats,
            "max_negative_conf": max(confs["negative"], default=0.0),
            "music_conf": confs["music"]}  # type: ignore[dict-item]


def pick_threshold(music_conf: list[float], negative_max: float) -> float:
    """The gate: halfway (in log) between the most confident negative and the 2nd percentile of music."""
    low_music = float(np.percentile(music_conf, 2)) if music_conf else 1.0
    top_neg = max(negative_max, 1e-3)
    if low_music <= top_neg:
        return round(top_neg * 1.25, 4)
    return round(math.sqrt(top_neg * low_music), 4)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--seed", default=0, show_default=True, help="Seed of the weights' initialisation and the excerpts.")
@click.option("--steps", default=6000, show_default=True, help="Optimiser steps.")
@click.option("--batch", default=32, show_default=True, help="Excerpts per step.")
@click.option("--lr", default=3e-3, show_default=True, help="Peak learning rate (cosine decay).")
@click.option("--stop-at", default=4000, show_default=True,
              help="Stop after this step (the schedule still runs over --steps): the shipped weights come from "
                   "a 6000-step schedule stopped at 4000, for time; 0 runs all --steps.")
@click.option("--augment/--no-augment", default=False, show_default=True,
              help="Add a pitch-shifted, compressed and re-encoded copy of each training clip (augment.py); "
                   "tried and not shipped: docs/tempo.md says why.")
@click.option("--eval-every", default=500, show_default=True, help="Steps between validation runs.")
@click.option("--threads", default=1, show_default=True,
              help="torch threads (1: on 2 shared cores a second thread made each step 30x slower).")
@click.option("--workers", default=2, show_default=True, help="Rendering processes.")
@click.option("--scale", default=1.0, show_default=True, help="Multiply the split sizes (smoke tests: 0.05).")
@click.option("--out", default=None, type=click.Path(path_type=Path), help="Weights file (default: the shipped one).")
def main(seed: int, steps: int, batch: int, lr: float, stop_at: int, augment: bool, eval_every: int, threads: int,
         workers: int, scale: float, out: Path | None) -> None:
    """Train the tempo model's beat network from a seed on the CPU."""
    import torch

    from sidepath.models.tempo_net import (
        FEATURES,
        WEIGHTS,
        BeatTCN,
        NetConfig,
        save_net,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    out = out or WEIGHTS
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    train_items = load_split("train", workers, scale)
    val_items = load_split("validation", workers, scale)
    # the copies first: they fork the rendering processes again, before the features run torch here
    extra = augmented_features(train_items, seed, workers) if augment else []
    train_f, val_f = features(train_items) + extra, features(val_items)
    length = int(EXCERPT_S * FEATURES.fps)
    net = BeatTCN(NetConfig())
    log.info("network: %d weights", sum(p.numel() for p in net.parameters()))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    rng = np.random.default_rng(seed)
    # music clips twice as often as negatives: they carry the beats
    weights = np.array([2.0 if it.is_music else 1.0 for it in train_items] * (2 if augment else 1))
    weights /= weights.sum()
    best = -1.0
    history = []
    start = time.time()
    running = 0.0
    last = min(steps, stop_at) if stop_at > 0 else steps
    for step in range(1, last + 1):
        net.train()
        picks = rng.choice(len(train_f), size=batch, p=weights)
        parts = [_excerpt(train_f[i], length, rng) for i in picks]
        x = torch.from_numpy(np.stack([p[0] for p in parts]))
        yb = torch.from_numpy(np.stack([p[1] for p in parts]))
        yd = torch.from_numpy(np.stack([p[2] for p in parts]))
        ym = torch.from_numpy(np.stack([p[3] for p in parts]))
        logits = net(x, ym > 0)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        loss = ((bce(logits[:, 0], yb, reduction="none") + 0.5 * bce(logits[:, 1], yd, reduction="none")) * ym).sum()
        loss = loss / ym.sum().clamp(min=1)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        value = float(loss.detach())
        running = 0.98 * running + 0.02 * value if step > 1 else value
        if step % 50 == 0:
            log.info("step %d/%d loss %.4f lr %.2e (%.0f s)", step, steps, running, sched.get_last_lr()[0],
                     time.time() - start)
        if step % eval_every == 0 or step == last:
            net.eval()
            m = evaluate(net, val_items, val_f, threshold=0.0)
            history.append({"step": step, **{k: v for k, v in m.items() if k != "music_conf"}})
            log.info("validation at step %d: F %.3f CMLt %.3f AMLt %.3f Acc1 %.3f Acc2 %.3f, max negative conf %.3f",
                     step, m["f"], m["cmlt"], m["amlt"], m["acc1"], m["acc2"], m["max_negative_conf"])
            if m["f"] > best:
                best = m["f"]
                threshold = pick_threshold(m["music_conf"], m["max_negative_conf"])  # type: ignore[arg-type]
                save_net(net, out, {"min_confidence": str(threshold), "seed": str(seed), "step": str(step),
                                    "validation": json.dumps(history[-1]),
                                    "command": _command(seed, steps, batch, lr, stop_at, augment)})
                log.info("kept step %d (validation F %.3f), gate threshold %.4f -> %s", step, best, threshold, out)
    log.info("done in %.0f s; best validation F %.3f", time.time() - start, best)


def _command(seed: int, steps: int, batch: int, lr: float, stop_at: int, augment: bool) -> str:
    flag = "--augment" if augment else "--no-augment"
    return (f"python -m bench.tempo.train --seed {seed} --steps {steps} --stop-at {stop_at} --batch {batch} "
            f"--lr {lr:g} {flag}")


if __name__ == "__main__":
    main()
