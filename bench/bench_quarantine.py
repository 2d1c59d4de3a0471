"""What crash quarantine costs (docs/reliability.md, "Crash quarantine"): the same backlog drained
with ``engine.max_crashes = 0`` (off) and ``2`` (on: a synchronous commit whenever a message
passes the marked ``hi``, which is marked ahead with headroom), the same with no headroom (a
commit before each consume() batch: how it was before the headroom), and again with a suspect
range left by a "crashed" predecessor (its commit metadata written by hand), which runs one
message at a time.  Rounds interleave; prints a table.

    python -m bench.bench_quarantine [--messages 20000] [--suspects 50] [--rounds 3] [--item-ms 0]
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench.report import machine
from sidepath.worker.dev.local_kafka import Broker
from sidepath.worker.engine.quarantine import Quarantine
from tests.kafka_util import create_topic, produce
from tests.worker_util import ThreadWorker, worker_config

PARTITIONS = 4
PAYLOAD = base64.b64encode(b"tiny payload").decode()


def _drain(bootstrap: str, topic: str, tmp: Path, max_crashes: int, suspects: int, n: int,
           item_ms: float = 0.0) -> tuple[float, int]:
    """(seconds busy, messages isolated) for one worker draining ``topic`` in a fresh group."""
    group = f"g-{topic}-{max_crashes}-{suspects}-{time.time_ns()}"
    if suspects:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        meta = json.dumps({"t": time.time(), "q": {"hi": suspects}})
        c.commit(offsets=[TopicPartition(topic, p, 0, metadata=meta) for p in range(PARTITIONS)], asynchronous=False)
        c.close()
    cfg = worker_config(tmp, bootstrap, topic, **{
        "kafka.group_id": group, "sinks.urls": [f"file://{tmp}/{group}.jsonl"], "model.name": "noop",
        "model.options": {"frames": False, "item_ms": item_ms}, "model.max_batch": 256,
        "engine.max_crashes": max_crashes,
        "sinks.dead_letter": f"file://{tmp}/{group}-dl.jsonl", "engine.commit_interval_s": 1.0})
    stats = ThreadWorker(cfg, until_end=True).wait(900)
    assert stats["done"] == n, stats
    return stats["busy_s"], stats["isolated"]


@contextmanager
def _no_headroom() -> Iterator[None]:
    """Quarantine marking ``hi`` just past each batch (mark_ahead = 0), in this process only."""
    original = Quarantine.__init__

    def init(self: Quarantine, engine: Any, *, max_crashes: int, mark_ahead: int | None = None) -> None:
        original(self, engine, max_crashes=max_crashes, mark_ahead=0)

    Quarantine.__init__ = init          # type: ignore[method-assign]
    try:
        yield
    finally:
        Quarantine.__init__ = original  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--suspects", type=int, default=50, help="per partition")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--item-ms", type=float, default=0.0, help="the no-op model's cost per item (0: the engine alone)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="bench-quarantine-"))
    broker = Broker(tmp / "kafka")
    broker.format()
    broker.start()
    try:
        b = broker.bootstrap
        topic = "q"
        create_topic(b, topic, PARTITIONS)
        produce(b, topic, [{"postid": f"p{i}", "uid": "u", "seqid": i, "data": PAYLOAD} for i in range(args.messages)])
        _drain(b, topic, tmp, 0, 0, args.messages)          # warm-up (broker JIT)
        off, on, every, iso, isolated = [], [], [], [], 0
        for _ in range(args.rounds):
            off.append(_drain(b, topic, tmp, 0, 0, args.messages, args.item_ms)[0])
            on.append(_drain(b, topic, tmp, 2, 0, args.messages, args.item_ms)[0])
            with _no_headroom():
                every.append(_drain(b, topic, tmp, 2, 0, args.messages, args.item_ms)[0])
            t, isolated = _drain(b, topic, tmp, 2, args.suspects, args.messages, args.item_ms)
            iso.append(t)
    finally:
        broker.stop()
    n = args.messages
    m_off, m_on, m_iso = statistics.median(off), statistics.median(on), statistics.median(iso)
    m_every = statistics.median(every)
    per_iso_ms = (m_iso - m_on) / max(1, isolated) * 1000
    print(f"{machine()}; {n:,} messages over {PARTITIONS} partitions, no-op model at {args.item_ms} ms an item, "
          f"median of {args.rounds} rounds")
    print("| run | messages/s | vs off |\n|---|---|---|")
    print(f"| quarantine off (max_crashes = 0) | {n / m_off:,.0f} | 1.00 |")
    print(f"| quarantine on, no suspects | {n / m_on:,.0f} | {m_off / m_on:.2f} |")
    print(f"| on, no headroom (a marking commit per batch, as before) | {n / m_every:,.0f} | {m_off / m_every:.2f} |")
    print(f"| on, {isolated} suspects run alone first | {n / m_iso:,.0f} | {m_off / m_iso:.2f} |")
    print(f"extra time per isolated message: {per_iso_ms:.1f} ms")


if __name__ == "__main__":
    main()
