"""How long a librdkafka ``flush()`` takes while another thread of the same process runs Python.

The Kafka sink writes a batch and flushes it (docs/sinks.md).  confluent-kafka releases the
GIL for the flush but takes it back to hand each delivery report over, so a thread that keeps
the GIL busy (sidepath's poll loop, say) stretches the flush: the flushing thread waits up to
``sys.getswitchinterval()`` each time.  This measures a flush of one batch with no other
thread (the baseline), with one busy Python thread, and with a shorter switch interval.

    python -m bench.bench_flush_gil [--batch 256] [--flushes 100]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Producer

from bench.report import machine, markdown_table, write_block
from sidepath.worker.dev.local_kafka import Broker
from tests.kafka_util import create_topic

VALUE = b"x" * 300          # about the size of a result


def flush_ms(producer: Producer, topic: str, batch: int, flushes: int) -> float:
    """Median milliseconds to flush ``batch`` freshly produced messages."""
    times = []
    for _ in range(flushes):
        for i in range(batch):
            producer.produce(topic, VALUE, str(i).encode())
        t0 = time.perf_counter()
        producer.flush(30)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--flushes", type=int, default=100)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-flush-"))
    broker = Broker(tmp / "kafka")
    broker.format()
    broker.start()
    default_interval = sys.getswitchinterval()
    busy = threading.Event()

    def spin() -> None:
        x = 0
        while busy.is_set():
            x += 1

    try:
        create_topic(broker.bootstrap, "flush", 4)
        p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "acks": "all",
                      "linger.ms": 5, "delivery.report.only.error": True})
        flush_ms(p, "flush", args.batch, 400)        # connect, and let the broker's JIT warm up
        idle = flush_ms(p, "flush", args.batch, args.flushes)
        rows = [[f"flush of {args.batch} messages, no other thread", "-", f"{idle:.2f} ms", "1.0x"]]
        busy.set()
        threading.Thread(target=spin, daemon=True).start()
        for interval in (default_interval, 0.0005, 0.0001):
            sys.setswitchinterval(interval)
            ms = flush_ms(p, "flush", args.batch, args.flushes)
            rows.append([f"the same while one other thread runs Python, switch interval {interval * 1000:g} ms",
                         f"no other thread: {idle:.2f} ms", f"{ms:.2f} ms", f"{ms / idle:.1f}x slower"])
    finally:
        busy.clear()
        sys.setswitchinterval(default_interval)
        broker.stop()
    table = markdown_table(["workload", "baseline (same run)", "measured", "ratio"], rows)
    text = f"Measured on {machine()}, median of {args.flushes} flushes each " \
           f"(`python -m bench.bench_flush_gil`).\n\n{table}"
    print(text)
    write_block("benchmarks.md", "flush", text)


if __name__ == "__main__":
    main()
