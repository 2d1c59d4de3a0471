"""The model runtime on a GPU: one prepared script, a few minutes on one GPU.

    python -m bench.gpu_models               # on a GPU machine; writes the table into docs/models.md
    python -m bench.gpu_models --dry-run     # CPU, tiny sizes: proves the script runs end to end
    python -m bench.gpu_models --no-decode   # the model cases only

This is the one call for a GPU machine: after the model cases it runs bench/gpu_decode.py
(NVDEC vs CPU video decoding on the same files, under 2 minutes; its table goes into
docs/decoders.md), with the same --dry-run / --no-docs.

Each ratio is against a baseline measured in the same run, same model, same frames:

1. batched (``--batch`` frames per call) vs one frame per call, fp32        target 4x
2. fp16 autocast + channels_last vs fp32, both batched                      target 2x
3. uploads through pinned, double-buffered memory with the next batch staged
   while the current one computes (``stage``/``run``) vs pageable synchronous
   copies (``predict``), fp16 + channels_last                               target 1.2x

The network is the built-in embedding net made wider (``--width``) so that it
weighs about what a small production CNN does.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bench.report import machine, markdown_table, write_block
from sidepath.decoders.base import Media
from sidepath.models import create_model, pick_device
from sidepath.models.staging import HostStager

__all__ = ["main"]


@dataclass
class Case:
    name: str
    baseline: str
    candidate: str
    base_rate: float       # frames per second
    cand_rate: float
    target: float
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.cand_rate / self.base_rate


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn: Callable[[], int], device: torch.device, *, seconds: float, min_iters: int) -> float:
    """Frames per second of ``fn`` (which returns the frames it processed), after one warm call."""
    fn()
    _sync(device)
    frames, iters, t0 = 0, 0, time.perf_counter()
    while iters < min_iters or time.perf_counter() - t0 < seconds:
        frames += fn()
        iters += 1
    _sync(device)
    return frames / (time.perf_counter() - t0)


def _frames(n: int, side: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, max(2, side // 8), max(2, side // 8), 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 8, axis=1), 8, axis=2)[:, :side, :side]   # blocky, not pure noise


def _model(device: torch.device, *, precision: str, channels_last: bool, args: argparse.Namespace) -> Any:
    model = create_model("embedding", max_batch=args.batch, precision=precision,
                         options={"size": args.size, "width": args.width, "channels_last": channels_last})
    model.load(device)
    model.warmup()
    return model


def _items(model: Any, frames: np.ndarray) -> list[Any]:
    return [model.prepare(Media(frames=f[None], timestamps_s=(0.0,), kind="image")) for f in frames]


def case_batching(device: torch.device, args: argparse.Namespace) -> Case:
    model = _model(device, precision="fp32", channels_last=False, args=args)
    items = _items(model, _frames(args.batch, args.size, 1))

    def one() -> int:
        for item in items:
            model.predict([item])
        return len(items)

    def batched() -> int:
        model.predict(items)
        return len(items)

    base = _rate(one, device, seconds=args.seconds, min_iters=2)
    cand = _rate(batched, device, seconds=args.seconds, min_iters=2)
    return Case("batching", "1 frame per call", f"{args.batch} frames per call", base, cand, 4.0)


def case_precision(device: torch.device, args: argparse.Namespace) -> Case:
    fp32 = _model(device, precision="fp32", channels_last=False, args=args)
    half = _model(device, precision="fp16", channels_last=True, args=args)
    frames = _frames(args.batch, args.size, 2)
    items32, items16 = _items(fp32, frames), _items(half, frames)
    a = np.asarray([r["embedding"] for r in fp32.predict(items32)])
    b = np.asarray([r["embedding"] for r in half.predict(items16)])
    cosine = float(np.min(np.sum(a * b, axis=1)))       # both unit length
    base = _rate(lambda: len(fp32.predict(items32)), device, seconds=args.seconds, min_iters=3)
    cand = _rate(lambda: len(half.predict(items16)), device, seconds=args.seconds, min_iters=3)
    return Case("precision", "fp32", f"{str(half.dtype).replace('torch.', '')} + channels_last", base, cand, 2.0,
                f"lowest cosine similarity to fp32: {cosine:.5f}")


def case_uploads(device: torch.device, args: argparse.Namespace) -> Case:
    model = _model(device, precision="fp16", channels_last=True, args=args)
    batches = [_items(model, _frames(args.batch, args.size, 10 + i)) for i in range(args.pipeline_batches)]

    def pageable() -> int:
        model.stager = HostStager(model.device, pinned=False)
        for batch in batches:
            model.predict(batch)
        return sum(len(b) for b in batches)

    pinned_stager = HostStager(model.device, pinned=True)

    def pinned() -> int:
        model.stager = pinned_stager
        staged = model.stage(batches[0])
        for k in range(len(batches)):
            nxt = model.stage(batches[k + 1]) if k + 1 < len(batches) else None
            model.run(staged)          # the next batch's copy runs meanwhile on the copy stream
            staged = nxt
        return sum(len(b) for b in batches)

    base = _rate(pageable, device, seconds=args.seconds, min_iters=2)
    cand = _rate(pinned, device, seconds=args.seconds, min_iters=2)
    mb = args.batch * args.size * args.size * 3 / 2**20
    return Case("uploads", "pageable, synchronous", "pinned, double-buffered, staged ahead", base, cand, 1.2,
                f"{mb:.1f} MiB uint8 per batch")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="GPU benchmark of the model runtime (ratios in one run).")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: check that the script works")
    ap.add_argument("--batch", type=int, default=64, help="frames per batched call")
    ap.add_argument("--size", type=int, default=224, help="input side in pixels")
    ap.add_argument("--width", type=int, default=64, help="embedding net width (64: ~conv stages 64..512)")
    ap.add_argument("--seconds", type=float, default=6.0, help="measuring time per configuration")
    ap.add_argument("--pipeline-batches", type=int, default=8)
    ap.add_argument("--no-docs", action="store_true", help="print only; leave docs/models.md alone")
    ap.add_argument("--no-decode", action="store_true", help="skip the NVDEC decoding case (bench/gpu_decode.py)")
    args = ap.parse_args(argv)
    if args.dry_run:
        args.batch, args.size, args.width, args.seconds, args.pipeline_batches = 4, 32, 4, 0.0, 2
        device = pick_device("cpu")
    else:
        device = pick_device("auto")
        if device.type != "cuda":
            print("no CUDA device visible; run with --dry-run to check the script on CPU", file=sys.stderr)
            return 2
        torch.backends.cudnn.benchmark = True      # the same for every configuration
    t0 = time.perf_counter()
    cases = [case_batching(device, args), case_precision(device, args), case_uploads(device, args)]
    rows: list[list[object]] = [
        [
            c.name,
            c.baseline,
            c.candidate,
            f"{c.base_rate:.0f}",
            f"{c.cand_rate:.0f}",
            f"{c.ratio:.2f}x",
            f"{c.target:g}x",
            "yes" if c.ratio >= c.target else "no",
            c.note,
        ]
        for c in cases
    ]
    table = markdown_table(
        ["case", "baseline", "candidate", "baseline frames/s", "candidate frames/s", "ratio", "target", "met", "note"],
        rows,
    )
    tf32 = f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, TF32 cudnn {torch.backends.cudnn.allow_tf32}"
    text = (
        f"{table}\n\nEmbedding net width {args.width} at {args.size}x{args.size}, batch {args.batch}, "
        f"torch {torch.__version__}, {tf32}; {time.perf_counter() - t0:.0f} s in all. Machine: {machine()}."
        + ("\n\nDRY RUN on CPU with tiny sizes: the ratios mean nothing." if args.dry_run else "")
    )
    print(text)
    if not args.dry_run and not args.no_docs:
        print(f"written to {write_block('models.md', 'gpu', text)}")
    rc = 0 if all(math.isfinite(c.ratio) for c in cases) else 1
    if not args.no_decode:
        from bench import gpu_decode

        print("\n## NVDEC decoding (bench/gpu_decode.py)\n", flush=True)
        rc = max(rc, gpu_decode.main([f for f, on in (("--dry-run", args.dry_run), ("--no-docs", args.no_docs)) if on]))
    return rc


if __name__ == "__main__":
    sys.exit(main())
