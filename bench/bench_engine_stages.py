"""Per-message Python cost of each engine stage, without a broker: where the engine's CPU goes.

The stages' own functions run on one thread over pre-built Kafka messages (tiny inline
payloads, the no-op model), the way the threads run them in a worker: the poll loop takes
and hands over one consume() batch, the model runner predicts, the sink writer writes, and
the poll loop applies the completions.  The Kafka result sink's producer points at a closed
port: ``produce`` (with its headers) runs for real, but nothing is sent, so the figure is
the Python side of a write.  The cost of waiting (for the broker, for the GIL) is not in it:
`bench_engine` measures the whole thing against a raw loop.

    python -m bench.bench_engine_stages [--messages 50000]
"""
from __future__ import annotations

import argparse
import base64
import logging
import queue
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from bench.report import machine, markdown_table, write_block
from sidepath.decoders.base import DecodeSpec
from sidepath.models import create_model
from sidepath.sinks.kafka import KafkaSink
from sidepath.worker.config import EngineConfig
from sidepath.worker.engine.gc_tuning import settle_after_startup
from sidepath.worker.engine.handoff import CompletionQueue, ModelQueue, ResultQueue
from sidepath.worker.engine.model_runner import ModelRunner
from sidepath.worker.engine.poll_loop import Engine
from sidepath.worker.engine.sink_writer import SinkWriter
from sidepath.worker.engine.stages import DecodeStage, Failures
from sidepath.worker.ops.metrics import build_metrics

TOPIC = "in"
PAYLOAD = base64.b64encode(b"tiny payload").decode()
CONSUME_BATCH = 500


def messages(n: int) -> list[Message]:
    return [Message(topic=TOPIC, partition=i % 4, offset=i // 4, key=None, headers=None,
                    value=f'{{"postid":"in-{i}","uid":"u","seqid":{i},"data":"{PAYLOAD}"}}'.encode(),
                    timestamp=(1, 1_700_000_000_000 + i)) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=50000)
    args = ap.parse_args()
    logging.getLogger("sidepath.sinks").setLevel(logging.ERROR)
    msgs = messages(args.messages)
    metrics = build_metrics(CollectorRegistry())
    model = create_model("noop", max_batch=256, precision="auto", options={"frames": False})
    model.load("cpu")
    out_q: ResultQueue = queue.SimpleQueue()
    completions: CompletionQueue = queue.SimpleQueue()
    failures = Failures([model], out_q, metrics, "bench")
    model_q: ModelQueue = queue.SimpleQueue()
    decode = DecodeStage(models=[model], spec=DecodeSpec(frames=False, audio=False), decode=None,  # type: ignore[arg-type]
                         threads=0, model_queues={model.name: model_q}, failures=failures, metrics=metrics,
                         add_bytes=lambda inf, n: None)
    engine = Engine(None, topic=TOPIC, group="bench", models=[model], decode_stage=decode,  # type: ignore[arg-type]
                    failures=failures, completions=completions, metrics=metrics, limits=EngineConfig())
    for p in range(4):
        engine.tracker.assign((TOPIC, p))
    runner = ModelRunner(model, model_q, out_q, max_wait_s=0.0, failures=failures, metrics=metrics,
                         on_fatal=print, name="model")
    sink = KafkaSink("kafka://127.0.0.1:9/out?timeout_s=1&log_level=0")   # a closed port: nothing is sent
    sink.producer.wait = lambda timeout_s: True      # type: ignore[method-assign]
    writer = SinkWriter([sink], None, out_q, completions, batch_size=1000, batch_wait_s=0,  # type: ignore[arg-type]
                        retry_deadline_s=1, metrics=metrics, group="bench", on_fatal=print)
    settle_after_startup()

    spent: dict[str, float] = {}

    def clock(stage: str, fn: Callable[..., Any], *a: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*a)
        spent[stage] = spent.get(stage, 0.0) + time.perf_counter() - t0
        return out

    for start in range(0, len(msgs), CONSUME_BATCH):
        taken = clock("poll loop: take a consume() batch (parse, in-flight record, offsets)",
                      engine._take, msgs[start:start + CONSUME_BATCH])
        clock("poll loop: prepare and hand over", decode.submit, taken)
        while not model_q.empty():
            batch = runner.batcher.next_batch(0.0)
            clock("model runner: predict, results", runner._run_batch, batch)
        clock("sink writer: encode, produce", writer.write, writer._gather())
        clock("poll loop: apply completions", engine.drain_completions, 0.0)
        sink.producer._producer.purge()
    assert engine.stats.done == len(msgs), engine.stats
    total = sum(spent.values())
    rows = [[stage, f"{s / len(msgs) * 1e6:.2f} µs", f"{s / total:.0%}"] for stage, s in spent.items()]
    rows.append(["all stages", f"{total / len(msgs) * 1e6:.2f} µs", "100%"])
    table = markdown_table(["stage", "per message", "share"], rows)
    text = f"Measured on {machine()}, {len(msgs):,} messages (`python -m bench.bench_engine_stages`).\n\n{table}"
    print(text)
    write_block("benchmarks.md", "engine-stages", text)


if __name__ == "__main__":
    main()
