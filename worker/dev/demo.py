"""`make demo`: the whole main job on embedded defaults, end to end.

Starts a local Kafka broker, produces demo requests with the media they point
at, runs the worker until the end of the topic, shows the results from SQLite
and JSONL, and asks Kafka's own consumer-groups tool for the group's lag.
"""
from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

from sidepath.worker.config import load_config
from sidepath.worker.dev.local_kafka import Broker, cache_dir, kafka_tool
from sidepath.worker.engine.runner import run_worker
from sidepath.worker.jobs.produce import demo_requests, produce_requests
from sidepath.worker.ops.log_format import setup_logging

__all__ = ["main"]

N_REQUESTS = 12


def main(workdir: Path = Path("var/demo")) -> int:
    setup_logging("INFO", "text")
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for old in ("results.jsonl", "results.db", "dead-letters.jsonl"):
        (workdir / old).unlink(missing_ok=True)
    print(">> starting a local Apache Kafka broker (KRaft)")
    broker = Broker(cache_dir() / "demo-broker")
    broker.format()
    broker.start()
    try:
        media = workdir / "media"
        cfg = load_config(None, overrides={
            "service.name": "sidepath-demo",
            "kafka.bootstrap_servers": broker.bootstrap, "kafka.topic": "posts", "kafka.group_id": "sidepath-demo",
            "model.name": "fingerprint",
            "sinks.urls": [f"file://{workdir}/results.jsonl", f"sqlite:///{workdir}/results.db"],
            "sinks.dead_letter": f"file://{workdir}/dead-letters.jsonl",
            "decode.file_roots": [str(media)], "metrics.port": 0, "engine.commit_interval_s": 1.0,
        })
        kafka_tool("topics", "--bootstrap-server", broker.bootstrap, "--create", "--topic", "posts",
                   "--partitions", "3", "--replication-factor", "1")
        n = produce_requests(cfg, demo_requests(N_REQUESTS, media))
        print(f">> produced {n} demo requests (images and 3 s videos) to topic 'posts'")
        print(">> running the worker until the end of the topic")
        stats = run_worker(cfg, until_end=True)
        print(f">> worker finished: {stats}")
        _show_results(workdir)
        print(">> Kafka's own consumer-groups tool on group 'sidepath-demo':")
        print(kafka_tool("groups", "--bootstrap-server", broker.bootstrap, "--describe",
                         "--group", "sidepath-demo").stdout)
        return 0 if stats.get("fatal") is None else 1
    finally:
        broker.stop()


def _show_results(workdir: Path) -> None:
    with sqlite3.connect(workdir / "results.db") as db:
        table = next(r[0] for r in db.execute("select name from sqlite_master where type='table'"))
        rows = db.execute(f"select postid, model, status, msg from {table} order by postid").fetchall()
    print(f">> SQLite {workdir / 'results.db'} table {table}: {len(rows)} rows")
    for postid, model, status, msg in rows:
        print(f"   {postid}  {model}  {status}  {msg}")
    lines = (workdir / "results.jsonl").read_text().splitlines()
    print(f">> JSONL {workdir / 'results.jsonl'}: {len(lines)} lines; first one:")
    print("   " + json.dumps(json.loads(lines[0]))[:300])


if __name__ == "__main__":
    sys.exit(main())
