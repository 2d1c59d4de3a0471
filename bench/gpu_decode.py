"""GPU video decoding (NVDEC through PyAV's CUDA hwaccel) vs the CPU decoder, on the same files, in one run.

    python -m bench.gpu_decode             # on a GPU machine (well under 2 minutes); table into docs/decoders.md
    python -m bench.gpu_decode --dry-run   # CPU, tiny videos: proves the script runs; the NVDEC side is skipped
    python -m bench.gpu_models             # the one GPU call: the model cases, then this

The workload is the one the issue names: 17-second 1280x720 30 fps H.264 videos (x264
veryfast, crf 23, 2 B-frames; 1- and 2-second keyframe intervals, the files of
bench/bench_decode.py), sampled at 1 fps in exact mode through ``decode_media`` -- the
worker's own path, RGB frames out.  Both decoders run over the same list of files in
interleaved rounds (CPU, NVDEC, CPU, NVDEC, ...; the median round is reported), first
one video at a time, then with ``--threads`` decode threads as the worker's decode pool
runs them.  Reported: videos per second (wall), CPU seconds per video (this process,
``time.process_time``: what limits a GPU host whose cores are the bottleneck), and the
ratios.  The NVDEC frames are also checked against the CPU frames (timestamps equal,
mean absolute difference), and the run fails if NVDEC was not actually used.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np

from bench.bench_decode import CACHE, make_bench_video
from bench.report import machine, markdown_table, write_block
from sidepath.decoders import DecodeSpec, Fetcher, decode_media
from sidepath.decoders import hwaccel as hw

__all__ = ["main"]


def _decode_all(paths: list[Path], backend: str, threads: int, fetcher: Fetcher) -> tuple[float, float, int]:
    """(wall s, CPU s, frames) for decoding every path once with ``backend`` (none | cuda)."""
    spec = DecodeSpec(fps=1.0, max_frames=64, video_mode="exact", hwaccel=backend)

    def one(p: Path) -> int:
        return len(decode_media(str(p), "video", spec, fetcher).timestamps_s)

    c0, t0 = time.process_time(), time.perf_counter()
    if threads == 1:
        frames = sum(one(p) for p in paths)
    else:
        with ThreadPoolExecutor(threads) as pool:
            frames = sum(pool.map(one, paths))
    return time.perf_counter() - t0, time.process_time() - c0, frames


def _check(path: Path, fetcher: Fetcher) -> str:
    cpu = decode_media(str(path), "video", DecodeSpec(fps=1.0, max_frames=64), fetcher)
    gpu = decode_media(str(path), "video", DecodeSpec(fps=1.0, max_frames=64, hwaccel="cuda"), fetcher)
    if gpu.timestamps_s != cpu.timestamps_s or gpu.frames.shape != cpu.frames.shape:
        return (f"MISMATCH: timestamps {gpu.timestamps_s} vs {cpu.timestamps_s}, "
                f"shapes {gpu.frames.shape} vs {cpu.frames.shape}")
    diff = np.abs(gpu.frames.astype(np.int16) - cpu.frames).astype(np.float64)
    return f"same {len(cpu.timestamps_s)} timestamps; mean abs diff {diff.mean():.3f}, max {diff.max():.0f} (0-255)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="NVDEC vs CPU video decoding (ratios in one run).")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny videos: check that the script works")
    ap.add_argument("--videos", type=int, default=12, help="videos per round, one thread")
    ap.add_argument("--threads", type=int, default=min(16, os.cpu_count() or 1),
                    help="decode threads for the parallel rows (videos per round: 4 per thread)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=17.0, help="video length")
    ap.add_argument("--no-docs", action="store_true", help="print only; leave docs/decoders.md alone")
    args = ap.parse_args(argv)
    size = (1280, 720)
    if args.dry_run:
        args.videos, args.threads, args.rounds, args.seconds, size = 2, 2, 1, 3.0, (320, 180)
    t_start = time.perf_counter()
    problem = hw.nvdec_problem(None)
    if problem and not args.dry_run:
        print(f"NVDEC is not usable here ({problem}); run with --dry-run to check the script on CPU",
              file=sys.stderr)
        return 2
    # a dry run without NVDEC still runs the "cuda" side: it exercises every line of this script,
    # through the decoder's fallback to the CPU (one warning), and is labelled as such
    backends = ["none", "cuda"]
    paths = [make_bench_video(args.seconds, k, size=size) for k in (1.0, 2.0)]
    fetcher = Fetcher(file_roots=[str(CACHE)])
    check = _check(paths[0], fetcher)
    for b in backends:                                   # warm-up: CUDA context, decoder set-up, page cache
        _decode_all(paths, b, 1, fetcher)

    rows: list[list[object]] = []
    for threads, n in ((1, args.videos), (args.threads, 4 * args.threads)):
        batch = [paths[i % len(paths)] for i in range(n)]
        runs: dict[str, list[tuple[float, float, int]]] = {b: [] for b in backends}
        for _ in range(args.rounds):
            for b in backends:
                runs[b].append(_decode_all(batch, b, threads, fetcher))
        res = {}
        for b, rs in runs.items():
            wall = statistics.median(r[0] for r in rs)
            cpu = statistics.median(r[1] for r in rs)
            res[b] = (n / wall, cpu / n, cpu / wall)
        sw, hwr = res["none"], res["cuda"]
        rows.append([threads, n, f"{sw[0]:.2f}", f"{hwr[0]:.2f}", f"{hwr[0] / sw[0]:.2f}x",
                     f"{sw[1]:.3f}", f"{hwr[1]:.3f}", f"{sw[1] / hwr[1]:.2f}x", f"{sw[2]:.1f} / {hwr[2]:.1f}"])
    st = hw.stats()
    table = markdown_table(["decode threads", "videos per round", "CPU decoder: videos/s", "NVDEC: videos/s",
                            "speed-up", "CPU decoder: CPU s/video", "NVDEC: CPU s/video", "CPU saved",
                            "cores used (CPU / NVDEC)"], rows)
    text = (f"Measured by `python -m bench.gpu_decode`: {len(paths)} files of {args.seconds:g} s "
            f"{size[0]}x{size[1]} 30 fps H.264 (keyframes every 1 s and 2 s), 1-fps exact sampling through "
            f"`decode_media` (RGB frames out), median of {args.rounds} interleaved rounds.\n\n{table}\n\n"
            f"NVDEC frames vs CPU frames: {check}. NVDEC decodes counted: {st['nvdec_videos']}, "
            f"FFmpeg software fallbacks: {st['ffmpeg_software']}, CPU retries: {st['cpu_retries']}. "
            f"PyAV {av.__version__}; {time.perf_counter() - t_start:.0f} s in all. Machine: {machine()}."
            + ("\n\nDRY RUN on CPU with tiny videos: the figures mean nothing." if args.dry_run else ""))
    if problem:
        text += f"\n\nNVDEC NOT USED ({problem}): the NVDEC columns are the CPU fallback."
    print(text)
    if problem:                # a dry run without NVDEC: done
        return 0
    if st["nvdec_videos"] == 0 or st["given_up"] or check.startswith("MISMATCH"):
        print(f"NVDEC was not used as expected: {st}; {check}", file=sys.stderr)
        return 1
    if not args.dry_run and not args.no_docs:
        print(f"written to {write_block('decoders.md', 'gpu-decode', text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
