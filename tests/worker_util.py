"""Run real sidepath workers in tests: in a thread (fast) or as a process (signals, crashes)."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from sidepath.worker.config import Config, load_config, to_toml


def worker_config(tmp_path: Path, bootstrap: str, topic: str, **overrides: Any) -> Config:
    """A test worker config: JSONL + SQLite sinks under tmp_path, fast commits, no HTTP port."""
    base = {
        "kafka.bootstrap_servers": bootstrap, "kafka.topic": topic, "kafka.group_id": f"g-{topic}",
        "kafka.session_timeout_ms": 6000,
        "model.name": "noop", "model.max_wait_ms": 5,
        "sinks.urls": [f"file://{tmp_path}/results.jsonl", f"sqlite:///{tmp_path}/results.db"],
        "sinks.dead_letter": f"file://{tmp_path}/dead-letters.jsonl",
        "decode.file_roots": [str(tmp_path)], "decode.allow_hosts": ["127.0.0.1"], "decode.retries": 0,
        "decode.timeout_s": 5.0, "metrics.port": 0, "engine.commit_interval_s": 0.5,
        "engine.shutdown_grace_s": 10.0,
        "decode.threads": 2,      # as before the automatic default: tests do not depend on the machine's CPUs
    }
    base.update(overrides)
    return load_config(None, environ={}, overrides=base)


class ThreadWorker:
    """``run_worker`` in a thread with its own metrics registry; ``stop()`` drains like SIGTERM."""

    def __init__(self, cfg: Config, **kwargs: Any) -> None:
        from sidepath.worker.engine.runner import run_worker

        self.registry = CollectorRegistry()
        self.engine: Any = None
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None

        def target() -> None:
            try:
                self.result = run_worker(cfg, registry=self.registry, on_engine=self._set, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def _set(self, engine: Any) -> None:
        self.engine = engine

    def wait(self, timeout: float = 120) -> dict[str, Any]:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError("worker did not stop")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def stop(self, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while self.engine is None and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.engine is not None:
            self.engine.request_stop()
        return self.wait(timeout)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.registry.get_sample_value(name, labels or {})


def write_config_file(path: Path, cfg: Config) -> Path:
    path.write_text(to_toml(cfg.to_dict()))
    return path


def start_worker_process(config_path: Path, *args: str, log_path: Path | None = None,
                         env: dict[str, str] | None = None) -> subprocess.Popen:
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "sidepath.worker.cli.main", "--log-format", "json", "--config", str(config_path),
         "run", *args],
        stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})


def jsonl_results(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sqlite_rows(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        table = next(r[0] for r in db.execute("select name from sqlite_master where type='table'"))
        return [dict(r) for r in db.execute(f"select * from {table}")]


def wait_for(pred: Any, timeout: float = 60, interval: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")
