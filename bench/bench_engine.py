"""Engine overhead: sidepath (no-op model, tiny inline payloads, Kafka result sink)
against a raw confluent-kafka loop that consumes, decodes the JSON, produces a
JSON result and commits -- same broker, same messages, same run.  Also the peak
RSS of a worker process with a small and a large backlog (bounded by the caps).

A third loop in each round runs the same worker with a JSONL result sink (a file in
memory) instead of Kafka: not a target, it shows how much of the gap is the Kafka sink.

Both loops run in this one process under the same garbage-collector settings: a
worker tunes the collector once its models are loaded (worker/engine/gc_tuning.py),
and the raw loop gets the same tuning first, so the ratio measures the engine,
not the collector.

    python -m bench.bench_engine [--messages 100000] [--rounds 4] [--backlog 200000] [--quick]
                                 [--max-crashes 2]   (0: crash quarantine off, not written to the docs)
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer

from bench.report import machine, markdown_table, summary, write_block
from sidepath.worker.dev.local_kafka import Broker
from sidepath.worker.engine.gc_tuning import settle_after_startup
from tests.kafka_util import create_topic, produce
from tests.worker_util import ThreadWorker, worker_config, write_config_file

PAYLOAD = base64.b64encode(b"tiny payload").decode()


def requests(n: int, tag: str):
    for i in range(n):
        yield {"postid": f"{tag}-{i}", "uid": "u", "seqid": i, "data": PAYLOAD}


def raw_loop(bootstrap: str, topic: str, out_topic: str, n: int) -> tuple[float, float]:
    """The baseline: what a hand-written consumer would do, committing every 1000 messages.
    Returns (messages/s, process CPU microseconds per message)."""
    cpu0 = time.process_time()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{topic}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    c.subscribe([topic])
    seen, t0 = 0, None
    while seen < n:
        for m in c.consume(500, 1.0):
            if m.error():
                continue
            t0 = t0 or time.monotonic()
            doc = json.loads(m.value())
            res = {"postid": doc["postid"], "uid": doc["uid"], "seqid": doc["seqid"], "model": "noop",
                   "msg": "", "results": {"bytes": len(doc["data"])}}
            while True:
                try:
                    p.produce(out_topic, json.dumps(res).encode(), key=str(doc["postid"]).encode())
                    break
                except BufferError:
                    p.poll(0.05)
            seen += 1
            if seen % 1000 == 0:
                p.flush()
                c.commit(asynchronous=False)
        p.poll(0)
    p.flush()
    if seen % 1000:
        c.commit(asynchronous=False)
    elapsed = time.monotonic() - (t0 or time.monotonic())
    c.close()
    return n / elapsed, (time.process_time() - cpu0) / n * 1e6


def sidepath_loop(bootstrap: str, topic: str, out_topic: str, n: int, tmp: Path,
                  sink_url: str = "", max_crashes: int = 2) -> tuple[float, float]:
    """(messages/s, process CPU microseconds per message, start-up and shutdown included).
    The results go to ``out_topic`` unless ``sink_url`` names another sink."""
    cpu0 = time.process_time()
    cfg = worker_config(tmp, bootstrap, topic, **{
        "sinks.urls": [sink_url or f"kafka://{bootstrap}/{out_topic}"], "model.name": "noop", "model.max_batch": 256,
        "model.options": {"frames": False},
        "engine.commit_interval_s": 1.0, "sinks.batch_size": 1000, "decode.threads": 2,
        "engine.max_crashes": max_crashes})
    stats = ThreadWorker(cfg, until_end=True).wait(600)
    assert stats["done"] == n, stats
    return n / stats["busy_s"], (time.process_time() - cpu0) / n * 1e6


def peak_rss_mb(bootstrap: str, topic: str, tmp: Path, n: int) -> float:
    """Peak RSS (MiB) of a worker process draining a backlog of ``n`` messages."""
    cfg = worker_config(tmp, bootstrap, topic, **{
        "sinks.urls": [f"file://{tmp}/rss-results.jsonl"], "engine.max_inflight_messages": 2000,
        "model.name": "noop", "model.options": {"frames": False},
        "engine.max_inflight_bytes": 64 * 1024 * 1024, "kafka.group_id": f"rss-{topic}"})
    path = write_config_file(tmp / f"rss-{n}.toml", cfg)
    code = ("import resource,sys;from sidepath.worker.cli.main import main;"
            f"sys.argv=['sidepath','--config',{str(path)!r},"
            "'run','--until-end'];\ntry: main()\nexcept SystemExit: pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--backlog", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--max-crashes", type=int, default=2, help="engine.max_crashes of the sidepath loops")
    args = ap.parse_args()
    if args.quick:
        args.messages, args.backlog, args.rounds = 5000, 20000, 1
    logging.basicConfig(level=logging.WARNING)
    settle_after_startup()          # the raw loop under the collector settings a worker uses
    tmp = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    broker = Broker(tmp / "kafka")
    broker.format()
    broker.start()
    try:
        b = broker.bootstrap
        # a fresh broker's JVM is slow until its JIT warms up, and the first loop timed would pay for it
        warm = max(2000, args.messages // 5)
        create_topic(b, "warm-up", 4)
        create_topic(b, "warm-up-out", 4)
        produce(b, "warm-up", requests(warm, "warm-up"))
        raw_loop(b, "warm-up", "warm-up-out", warm)
        raw, side, jsonl = [], [], []
        files = Path("/dev/shm") if Path("/dev/shm").is_dir() else tmp      # memory, like the broker's page cache
        for r in range(args.rounds):          # interleaved rounds, fresh topics each
            for kind in ("raw", "sidepath", "jsonl"):
                t, out = f"in-{kind}-{r}", f"out-{kind}-{r}"
                create_topic(b, t, 4)
                create_topic(b, out, 4)
                produce(b, t, requests(args.messages, t))
                if kind == "raw":
                    raw.append(raw_loop(b, t, out, args.messages))
                elif kind == "sidepath":
                    side.append(sidepath_loop(b, t, out, args.messages, tmp, max_crashes=args.max_crashes))
                else:       # where the time goes: the same engine with a sink that needs no producer
                    path = files / f"sidepath-bench-{os.getpid()}-{r}.jsonl"
                    try:
                        jsonl.append(sidepath_loop(b, t, out, args.messages, tmp, f"file://{path}?fsync=false",
                                                   max_crashes=args.max_crashes))
                    finally:
                        path.unlink(missing_ok=True)
        (raw_best, raw_cpu), (side_best, side_cpu), (jsonl_best, _) = max(raw), max(side), max(jsonl)
        # rounds run one after the other, so a ratio within a round sees the same machine (this one's
        # neighbours move the raw loop's figure by half from round to round)
        per_round = statistics.median(s[0] / r[0] for s, r in zip(side, raw))
        small = max(2000, args.backlog // 10)
        create_topic(b, "rss-small", 4)
        produce(b, "rss-small", requests(small, "s"))
        create_topic(b, "rss-large", 4)
        produce(b, "rss-large", requests(args.backlog, "l"))
        rss_small = peak_rss_mb(b, "rss-small", tmp, small)
        rss_large = peak_rss_mb(b, "rss-large", tmp, args.backlog)
    finally:
        broker.stop()
    rows = [
        [
            f"{args.messages} tiny messages, 4 partitions, no-op model, Kafka result sink",
            f"raw confluent-kafka loop: {raw_best:,.0f} msg/s",
            f"{side_best:,.0f} msg/s",
            f"{side_best / raw_best:.2f}x; median of the rounds' ratios {per_round:.2f}x (target >= 0.7x)",
        ],
        [
            "the same, results to a JSONL file in memory instead of Kafka (where the time goes, not the target)",
            f"raw confluent-kafka loop: {raw_best:,.0f} msg/s",
            f"{jsonl_best:,.0f} msg/s",
            f"{jsonl_best / raw_best:.2f}x",
        ],
        [
            "process CPU per message in the best round of each (sidepath's includes its start-up)",
            f"raw loop: {raw_cpu:.0f} µs",
            f"{side_cpu:.0f} µs",
            f"{side_cpu / raw_cpu:.1f}x the CPU",
        ],
        [
            f"peak RSS of a worker process, backlog {small:,} vs {args.backlog:,} messages",
            f"{small:,} backlog: {rss_small:,.0f} MiB",
            f"{args.backlog:,} backlog: {rss_large:,.0f} MiB",
            f"{rss_large / rss_small:.2f}x (bounded: ~1.0x)",
        ],
    ]
    table = markdown_table(["workload", "baseline (same run)", "sidepath", "ratio"], rows)
    if args.max_crashes == 2:       # the documented figures are the defaults
        summary("engine", [tuple(r) for i, r in enumerate(rows) if i != 1])  # the JSONL row is an explanation
    text = (
        f"Measured on {machine()}, best of {args.rounds} interleaved rounds "
        f"(`python -m bench.bench_engine{' --quick' if args.quick else ''}`).\n\n{table}"
    )
    print(text)
    if args.max_crashes == 2:
        write_block("benchmarks.md", "engine", text)


if __name__ == "__main__":
    main()
