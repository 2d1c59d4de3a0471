"""Docs as tests: every shell block of README.md and docs/*.md runs as written.

Each Markdown file is one test: its blocks run in order, in a fresh empty folder, as a new
user would type them (``bash -e -o pipefail``, the installed ``sidepath`` first on PATH).
``sidepath dev kafka start`` starts a real broker; the environment moves it to a free port
(``SIDEPATH_DEV_KAFKA_PORT`` and ``SIDEPATH_KAFKA_BOOTSTRAP_SERVERS``) and turns the metrics
port off, so parallel runs never meet.  The broker is stopped afterwards.  Markers and the
console-output rules: tests/doc_blocks.py.  A run's list of skipped blocks and their
reasons is printed (``pytest -s`` or ``-rA`` shows it).
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.doc_blocks import Block, blocks_of, console_commands, output_matches

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK_TIMEOUT_S = 300


def _free_port_pair() -> int:
    """A free port whose successor is free too (the dev broker's controller takes port + 1)."""
    from sidepath.worker.dev.local_kafka import free_ports

    for _ in range(50):
        port = free_ports(1)[0]
        if port < 65535 and port + 1 not in _busy([port + 1]):
            return port
    raise RuntimeError("no two adjacent free ports on loopback")


def _busy(ports: list[int]) -> set[int]:
    import socket

    busy = set()
    for p in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                busy.add(p)
    return busy


@pytest.fixture()
def doc_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A user's environment in an empty folder: no SIDEPATH_* of ours, the dev broker on a free port."""
    from sidepath.worker.dev.local_kafka import Broker, cache_dir

    port = _free_port_pair()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDEPATH_") or k == "SIDEPATH_CACHE"}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "SIDEPATH_DEV_KAFKA_PORT": str(port),
        "SIDEPATH_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "SIDEPATH_METRICS_PORT": "0",
        "PWD": str(tmp_path),
    })
    yield env
    broker = Broker(cache_dir() / f"dev-broker-{port}", port=port, controller_port=port + 1)
    broker.stop()
    shutil.rmtree(broker.workdir, ignore_errors=True)


def _run(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S, stdin=subprocess.DEVNULL)


def _tail(text: str, n: int = 25) -> str:
    return "\n".join(text.splitlines()[-n:])


def run_block(block: Block, cwd: Path, env: dict[str, str]) -> None:
    """Run one block; fail with the command, its exit code and the tail of its output."""
    if block.setup:
        r = _run(block.setup, cwd, env)
        assert r.returncode == 0, f"{block.where}: doc-test setup failed ({r.returncode}):\n{_tail(r.stderr)}"
    if block.lang != "console":
        r = _run(block.text, cwd, env)
        assert r.returncode == 0, (f"{block.where}: exit code {r.returncode} from\n{block.text}\n"
                                   f"--- stdout\n{_tail(r.stdout)}\n--- stderr\n{_tail(r.stderr)}")
        return
    for cmd in console_commands(block.text):
        r = _run(cmd.text, cwd, env)
        assert r.returncode == 0, (f"{block.where}: exit code {r.returncode} from $ {cmd.text}\n"
                                   f"--- stdout\n{_tail(r.stdout)}\n--- stderr\n{_tail(r.stderr)}")
        missing = output_matches(cmd.expected, r.stdout)
        assert missing is None, (f"{block.where}: $ {cmd.text}\nthe docs show {missing!r}, "
                                 f"the command printed:\n{_tail(r.stdout)}")


def run_doc(path: Path, cwd: Path, env: dict[str, str]) -> tuple[int, list[tuple[str, str]]]:
    """Run every block of ``path`` in order; (blocks run, [(where, reason) skipped])."""
    ran, skipped = 0, []
    for block in blocks_of(path):
        if block.skip:
            skipped.append((block.where, block.skip))
            continue
        run_block(block, cwd, env)
        ran += 1
    print(f"\n{path.name}: {ran} blocks run, {len(skipped)} skipped"
          + "".join(f"\n  skipped {where}: {why}" for where, why in skipped))
    return ran, skipped


@pytest.mark.parametrize("doc", [d for d in DOCS if d.name != "README.md" and blocks_of(d)], ids=lambda d: d.name)
def test_doc_commands_run_as_written(doc: Path, tmp_path: Path, doc_env: dict[str, str]) -> None:
    run_doc(doc, tmp_path, doc_env)


def test_readme_commands_run_as_written_and_the_demo_gives_20_results(tmp_path: Path, doc_env) -> None:
    """The newcomer's path: README's "Using it" in an empty folder, every line exit 0, 20 good rows."""
    ran, _skipped = run_doc(ROOT / "README.md", tmp_path, doc_env)
    assert ran >= 2
    with sqlite3.connect(tmp_path / "var" / "results.db") as db:
        rows = db.execute("SELECT postid, status, msg FROM sidepath_results WHERE model = 'fingerprint'").fetchall()
    assert len(rows) == 20 and {p for p, *_ in rows} == {f"demo-{i:04d}" for i in range(20)}
    assert all(status == "ok" and msg == "" for _p, status, msg in rows), rows
    dead = tmp_path / "var" / "dead-letters.jsonl"
    assert not dead.exists() or not dead.read_text().strip()
