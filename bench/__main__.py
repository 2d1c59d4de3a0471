"""`make bench` / `python -m bench [--quick]`: every benchmark, then one summary table.

Each benchmark measures its baseline in the same run, writes its detailed table
into its own page under docs/, and leaves its headline rows in var/bench/;
this collects them into the summary at the top of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench.report import SUMMARY_DIR, machine, markdown_table, write_block

#: (module, flags for a full run, flags for --quick, docs page of its detailed table)
BENCHES = [
    ("bench.bench_engine", [], ["--quick"], "benchmarks.md#engine-overhead"),
    ("bench.bench_engine_stages", [], ["--messages", "5000"], "benchmarks.md#engine-overhead"),
    ("bench.bench_flush_gil", [], ["--flushes", "10"], "benchmarks.md#engine-overhead"),
    ("bench.bench_batching", [], ["--quick", "--no-docs"], "models.md"),
    ("bench.bench_decode", [], ["--quick", "--no-write"], "decoders.md"),
    ("bench.bench_sinks", [], ["--quick"], "sinks.md"),
    ("bench.tempo", [], ["--quick"], "tempo.md"),
    ("bench.bench_e2e", [], ["--quick"], "benchmarks.md#end-to-end"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small runs (a smoke test; figures are noisier)")
    ap.add_argument("--only", nargs="*", help="module names to run (default: all)")
    args = ap.parse_args()
    failed = []
    for module, full, quick, _doc in BENCHES:
        if args.only and module.split(".")[-1] not in args.only:
            continue
        (SUMMARY_DIR / f"{module.split('.')[-1].removeprefix('bench_')}.json").unlink(missing_ok=True)
        print(f">> {module}", flush=True)
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", module, *(quick if args.quick else full)])
        print(f"<< {module}: exit {r.returncode} in {time.monotonic() - t0:.0f} s", flush=True)
        if r.returncode:
            failed.append(module)
    rows = []
    for module, _full, _quick, doc in BENCHES:
        name = module.split(".")[-1].removeprefix("bench_")
        path = SUMMARY_DIR / f"{name}.json"
        if path.exists():
            for r in json.loads(path.read_text())["rows"]:
                rows.append([f"{r[0]} ([details](docs/{doc}))".replace("docs/", ""), *r[1:]])
    text = (f"Machine: {machine()}. Command: `make bench`{' (quick)' if args.quick else ''}. "
            "Every baseline is measured in the same run as the figure beside it.\n\n"
            + markdown_table(["workload", "baseline (same run)", "sidepath", "ratio"], rows))
    print(text)
    write_block("benchmarks.md", "summary", text)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
