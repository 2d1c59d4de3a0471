"""Sink throughput: batched writes against one-result-at-a-time writes, same run, same sink.

    python -m bench.bench_sinks [--quick]

The baseline is the same sink, the same statement and the same durability
(one transaction or fsync per call), called with one result at a time: what
a per-request service does.  The batched run calls ``write`` with the worker's
default micro-batch (sinks.batch_size = 200).  PostgreSQL is a private cluster
started for the run (tests/fixtures/postgres.py); SQLite runs in WAL mode with
synchronous=FULL; JSONL fsyncs every call.  Prints a markdown table and writes
it into docs/sinks.md.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.report import machine, markdown_table, summary, write_block
from sidepath.sinks import open_sink
from sidepath.sinks.base import Result, SourceRef

BATCH = 200


def results(n: int, tag: str) -> list[Result]:
    return [Result(f"{tag}-{i}", f"u{i % 977}", str(i % 7), "age", "1.0", "",
                   {"age": 20 + i % 50, "confidence": 0.875, "faces": i % 3},
                   SourceRef("posts", i % 12, 100_000 + i), {"fetch": 12.5, "decode": 4.25, "infer": 2.0})
            for i in range(n)]


def rate(write: Callable[[Sequence[Result]], object], rows: list[Result], batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        write(rows[i:i + batch])
    return len(rows) / (time.perf_counter() - t0)


def measure(name: str, url_of: Callable[[str], str], *, single: int, batched: int) -> list[object]:
    one = open_sink(url_of("one_at_a_time"))
    many = open_sink(url_of("batched"))
    rate(one.write, results(20, "warm"), 1)          # connections open, statements cached
    rate(many.write, results(BATCH, "warm"), BATCH)
    r1 = rate(one.write, results(single, "one"), 1)
    rb = rate(many.write, results(batched, "many"), BATCH)
    one.close()
    many.close()
    return [name, f"{r1:,.0f}", f"{rb:,.0f}", f"{rb / r1:.1f}x"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rows (a smoke run; the table is not written)")
    args = ap.parse_args()
    scale = 0.1 if args.quick else 1.0
    n1, nb = int(2000 * scale), int(40_000 * scale)
    work = Path(tempfile.mkdtemp(prefix="sidepath-bench-sinks-"))
    rows: list[list[object]] = []

    from tests.fixtures.postgres import PASSWORD_ENV, start_server

    try:
        server = start_server()
    except FileNotFoundError as exc:
        print(f"PostgreSQL skipped: {exc}")
    else:
        os.environ[PASSWORD_ENV] = server.password
        try:
            db = server.create_database()
            rows.append(measure("PostgreSQL upsert (psycopg 3)", lambda t: f"{db.url}?table={t}",
                                single=n1, batched=nb))
        finally:
            server.destroy()
    rows.append(measure("SQLite upsert (WAL, synchronous=FULL)",
                        lambda t: f"sqlite:///{work}/bench.db?table={t}", single=n1, batched=nb))
    rows.append(measure("JSONL append (fsync per call)", lambda t: f"file://{work}/{t}.jsonl",
                        single=n1 * 2, batched=nb * 3))

    table = markdown_table(["sink", "one result per write (rows/s)", f"batches of {BATCH} (rows/s)", "speed-up"],
                           rows)
    summary("sinks", [(f"{r[0]}, rows/s", f"one result per write: {r[1]}", f"batches of {BATCH}: {r[2]}", str(r[3]))
                      for r in rows])
    note = (f"Measured by `python -m bench.bench_sinks` on {machine()}, shared with other work; "
            "ratios matter more than absolute numbers.")
    print(table)
    print()
    print(note)
    if not args.quick:
        print(f"written to {write_block('sinks.md', 'sinks', table + chr(10) + chr(10) + note)}")


if __name__ == "__main__":
    main()
