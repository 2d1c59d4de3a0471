"""The command line a user types, end to end: dev broker, produce --demo, run --until-end, lag."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from sidepath.worker.dev.local_kafka import free_ports
from tests.worker_util import jsonl_results, sqlite_rows, worker_config, write_config_file

pytestmark = pytest.mark.kafka


def sidepath(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sidepath.worker.cli.main", "--log-format", "json", *args],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_produce_demo_then_run_until_end_then_lag(tmp_path, kafka_bootstrap, topic):
    cfg = worker_config(tmp_path, kafka_bootstrap, topic, **{"model.name": "fingerprint",
                                                            "decode.file_roots": [str(tmp_path / "media")]})
    conf = write_config_file(tmp_path / "sidepath.toml", cfg)
    r = sidepath("--config", str(conf), "produce", "--demo", "4", "--media-dir", str(tmp_path / "media"))
    assert r.returncode == 0, r.stderr
    assert f"produced 4 demo requests (3 images, 1 video) to {topic}" in r.stdout
    assert f"media in {tmp_path / 'media'} (under decode.file_roots)" in r.stdout
    r = sidepath("--config", str(conf), "run", "--until-end")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert all(json.loads(line)["level"] in ("INFO", "WARNING", "DEBUG") for line in r.stdout.splitlines())
    assert sorted(x["postid"] for x in jsonl_results(tmp_path / "results.jsonl")) == \
        [f"demo-{i:04d}" for i in range(4)]
    assert len(sqlite_rows(tmp_path / "results.db")) == 4
    r = sidepath("--config", str(conf), "lag", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(x["partition"], x["committed"], x["lag"]) for x in rows] == [(0, 4, 0)]


def test_demo_requests_are_processed_by_the_default_worker_which_reads_no_local_files(tmp_path, kafka_bootstrap,
                                                                                      topic):
    """The newcomer's first run: `produce --demo` then `run --until-end` with no config file at all
    (the old demo pointed at local files that the default worker refuses: 20 dead letters)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDEPATH_")}
    env.update({"SIDEPATH_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "SIDEPATH_KAFKA_TOPIC": topic,
                "SIDEPATH_METRICS_PORT": "0"})
    run = [sys.executable, "-m", "sidepath.worker.cli.main", "--log-format", "json"]
    r = subprocess.run([*run, "produce", "--demo", "5"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stderr
    line, = r.stdout.splitlines()       # one line: what was sent and what the worker will do with it
    assert line.startswith(f"produced 5 demo requests (4 images, 1 video) to {topic} at {kafka_bootstrap}, "
                           "media inline as base64; `sidepath run --until-end` runs model fingerprint")
    r = subprocess.run([*run, "run", "--until-end"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = jsonl_results(tmp_path / "var" / "results.jsonl")
    assert sorted(x["postid"] for x in rows) == [f"demo-{i:04d}" for i in range(5)]
    assert all(x["msg"] == "" and x["results"] for x in rows), [x["msg"] for x in rows]
    assert jsonl_results(tmp_path / "var" / "dead-letters.jsonl") == []


def test_unreachable_config_and_bad_values_are_one_line(tmp_path):
    r = sidepath("--config", str(tmp_path / "missing.toml"), "run")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "file not found" in r.stderr
    (tmp_path / "latin1.toml").write_bytes(b'[kafka]\ntopic = "caf\xe9"\n')
    (tmp_path / "a-folder").mkdir()
    for name, says in [("latin1.toml", "not UTF-8 text (byte 20)"), ("a-folder", "is a directory")]:
        r = sidepath("--config", str(tmp_path / name), "run")
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and says in r.stderr, r.stderr
    r = sidepath("run", env={"SIDEPATH_MODEL_NAME": "no-such-model", "SIDEPATH_METRICS_PORT": "0",
                             "SIDEPATH_SINKS_URLS": f"file://{tmp_path}/r.jsonl",
                             "SIDEPATH_SINKS_DEAD_LETTER": f"file://{tmp_path}/d.jsonl"})
    assert r.returncode == 2 and "model.name='no-such-model'" in r.stderr and "installed:" in r.stderr
    assert "Traceback" not in r.stderr


def test_unreachable_broker_is_said_once_with_the_fix_not_once_per_reconnect(tmp_path):
    port = free_ports(1)[0]                 # nothing listens there
    env = {"SIDEPATH_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}", "SIDEPATH_KAFKA_TOPIC": "t",
           "SIDEPATH_MODEL_NAME": "noop", "SIDEPATH_METRICS_PORT": "0",
           "SIDEPATH_SINKS_URLS": f"file://{tmp_path}/r.jsonl", "SIDEPATH_SINKS_DEAD_LETTER": f"file://{tmp_path}/d.jsonl"}
    p = subprocess.Popen([sys.executable, "-m", "sidepath.worker.cli.main", "--log-format", "json", "run"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(p.stdout), daemon=True)
    reader.start()
    try:
        # start-up (torch import, model load) may take long on a loaded machine: wait for the first
        # warning, then give librdkafka time to retry the connection many times
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any('"WARNING"' in line for line in lines):
            time.sleep(0.2)
        time.sleep(8)
    finally:
        p.send_signal(signal.SIGTERM)
        err = p.communicate(timeout=60)[1]
        reader.join(10)
        out = "".join(lines)
    warnings = [json.loads(line)["message"] for line in out.splitlines()
                if line.startswith("{") and json.loads(line)["level"] == "WARNING"]
    assert p.returncode == 0, err[-2000:]
    assert any("check kafka.bootstrap_servers" in w for w in warnings), warnings
    assert 0 < len(warnings) <= 4, warnings          # once per kind of error, not per reconnect
    assert "Traceback" not in out + err
    assert "|FAIL|" not in err, err[:500]           # no raw librdkafka lines beside the JSON log


def test_dev_kafka_start_status_stop(tmp_path):
    port = free_ports(1)[0]
    env = {"SIDEPATH_CACHE": str(tmp_path / "cache")}
    # a private cache that reuses the jars already fetched (never the user's dev broker directory)
    from sidepath.worker.dev.local_kafka import cache_dir, fetch_jars
    home = tmp_path / "cache" / cache_dir().name
    home.mkdir(parents=True)
    os.symlink(fetch_jars(), home / "jars")
    (home / ".complete").touch()
    try:
        r = sidepath("dev", "kafka", "start", "--port", str(port), env=env)
        assert r.returncode == 0 and f"127.0.0.1:{port}" in r.stdout, r.stdout + r.stderr
        assert sidepath("dev", "kafka", "status", "--port", str(port), env=env).returncode == 0
        r = sidepath("dev", "kafka", "tool", "topics", "--bootstrap-server", f"127.0.0.1:{port}", "--list", env=env)
        assert r.returncode == 0
    finally:
        r = sidepath("dev", "kafka", "stop", "--port", str(port), env=env)
    assert "stopped" in r.stdout
    assert sidepath("dev", "kafka", "status", "--port", str(port), env=env).returncode == 1
