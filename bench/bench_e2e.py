"""End to end: 17-second 720p H.264 videos per second through the whole worker
(Kafka -> fetch -> 1-fps decode -> batched frame model -> SQLite + JSONL -> commit),
against the old per-request service pattern (fetch, decode, run the model on one
request, write its row, next) over the same videos in the same run.  The time
split per stage shows where the bottleneck is.

    python -m bench.bench_e2e [--videos 48] [--model embedding] [--quick]
    python -m bench.bench_e2e --device cuda --hwaccel auto --decode-threads 12 --block e2e-gpu
                                   # the GPU run of bench/gpu_suite.py, with GPU utilisation
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from bench.gpu_util import GpuSampler
from bench.report import machine, markdown_table, summary, write_block
from sidepath.decoders import Fetcher, decode_media
from sidepath.models import create_model, pick_device
from sidepath.worker.dev.demo_media import make_video
from sidepath.worker.dev.local_kafka import Broker
from sidepath.worker.engine.pipeline import merged_spec
from tests.kafka_util import create_topic, produce
from tests.worker_util import ThreadWorker, worker_config

STAGES = ("fetch", "decode", "infer", "sink")


def per_request(paths: list[Path], model_name: str, cfg, out: Path) -> float:
    """The old pattern: one request at a time, start to finish."""
    model = create_model(model_name, max_batch=cfg.model.max_batch)
    model.load(pick_device(cfg.model.device))
    model.warmup()
    spec = merged_spec(cfg, [model])
    fetcher = Fetcher(max_bytes=cfg.decode.max_bytes, file_roots=cfg.decode.file_roots)
    t0 = time.monotonic()
    with out.open("w") as fh:
        for i, p in enumerate(paths):
            media = decode_media(str(p), "video", spec, fetcher)
            res = model.predict([model.prepare(media)])[0]
            fh.write(json.dumps({"postid": f"v{i}", "results": res}) + "\n")
            fh.flush()
    return len(paths) / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=48)
    ap.add_argument("--model", default="embedding")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="auto", help="model.device for both modes")
    ap.add_argument("--hwaccel", default="none", help="decode.hwaccel for both modes (none | cuda | auto)")
    ap.add_argument("--decode-threads", type=int, default=2)
    ap.add_argument("--block", default="e2e", help="the docs/benchmarks.md block to write")
    ap.add_argument("--no-docs", action="store_true", help="print only")
    args = ap.parse_args()
    if args.quick:
        args.videos = 4
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    paths = [make_video(tmp / f"v{i}.mp4", seconds=17, fps=30, size=(1280, 720), seed=i, keyint_s=2.0)
             for i in range(min(args.videos, 4))]
    paths = [paths[i % len(paths)] for i in range(args.videos)]     # the same few files, distinct requests
    broker = Broker(tmp / "kafka")
    broker.format()
    broker.start()
    try:
        b = broker.bootstrap
        create_topic(b, "videos", 2)
        produce(b, "videos", [{"postid": f"v{i}", "uid": "u", "seqid": 1, "video": str(p)}
                              for i, p in enumerate(paths)])
        cfg = worker_config(tmp, b, "videos", **{"model.name": args.model, "model.max_batch": 64,
                                                 "model.max_wait_ms": 50, "decode.threads": args.decode_threads,
                                                 "decode.timeout_s": 60.0, "model.device": args.device,
                                                 "decode.hwaccel": args.hwaccel})
        baseline = per_request(paths, args.model, cfg, tmp / "baseline.jsonl")
        with GpuSampler() as gpu:
            w = ThreadWorker(cfg, until_end=True)
            stats = w.wait(1800)
        assert stats["done"] == args.videos and stats["errors"] == 0, stats
        rate = args.videos / stats["busy_s"]
        split = {s: (w.metric("sidepath_stage_duration_seconds_sum", {"stage": s}) or 0.0) for s in STAGES}
        counts = {s: (w.metric("sidepath_stage_duration_seconds_count", {"stage": s}) or 0.0) for s in STAGES}
        batch_mean = (w.metric("sidepath_batch_size_units_sum", {"model": args.model}) or 0) / \
            max(1.0, w.metric("sidepath_batch_size_units_count", {"model": args.model}) or 1)
    finally:
        broker.stop()
    total = sum(split.values()) or 1.0
    if not args.no_docs:
        summary(args.block, [(f"{args.videos} x 17 s 720p videos end to end, model {args.model} (stage split: "
                              + ", ".join(f"{s} {100 * split[s] / total:.0f}%" for s in STAGES) + ")",
                              f"one request at a time: {baseline:.2f} videos/s", f"{rate:.2f} videos/s",
                              f"{rate / baseline:.2f}x")])
    where = "" if args.device in ("auto", "cpu") and args.hwaccel == "none" else \
        f", device {args.device}, decode.hwaccel {args.hwaccel}, {args.decode_threads} decode threads"
    rows = [[f"{args.videos} x 17 s 720p H.264 videos, 1 fps, model `{args.model}`, SQLite + JSONL sinks{where}",
             f"one request at a time: {baseline:.2f} videos/s", f"{rate:.2f} videos/s",
             f"{rate / baseline:.2f}x"]]
    split_rows = [[s, f"{split[s]:.2f} s", f"{1000 * split[s] / max(1.0, counts[s]):.1f} ms",
                   f"{100 * split[s] / total:.0f}%"] for s in STAGES]
    cmd = "python -m bench.bench_e2e" + (" --quick" if args.quick else "") + (
        f" --device {args.device} --hwaccel {args.hwaccel} --decode-threads {args.decode_threads}" if where else "")
    text = (f"Measured on {machine()} (`{cmd}`).\n\n"
            + markdown_table(["workload", "baseline (same run)", "sidepath", "ratio"], rows)
            + f"\n\nTime per stage inside the worker (stage seconds summed over threads; mean batch "
              f"{batch_mean:.1f} frames):\n\n"
            + markdown_table(["stage", "total", "per observation", "share"], split_rows))
    if args.device not in ("auto", "cpu") or args.hwaccel != "none":
        text += f"\n\nDuring the worker's run: {gpu.summary()}."
    print(text)
    if not args.no_docs:
        write_block("benchmarks.md", args.block, text)


if __name__ == "__main__":
    main()
