"""Shared fixtures: a real Kafka broker per test session, a fresh topic per test.

Area-specific fixtures live in tests/fixtures/ and are loaded as plugins.
"""
from __future__ import annotations

import logging
import os
import signal
import uuid

import pytest
from hypothesis import settings as hypothesis_settings

# CI (CI=true) replays the same examples every run, so its verdict depends on the commit alone; local
# runs keep exploring new ones and report any failing example, which then goes into an @example.
hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    hypothesis_settings.load_profile("ci")

pytest_plugins = [
    "tests.fixtures.media",
    "tests.fixtures.postgres",
]


@pytest.fixture(scope="session")
def kafka_broker():
    """A real single-node Apache Kafka (KRaft) on free loopback ports."""
    from tests.kafka_util import private_broker

    if os.environ.get("KAFKA_BOOTSTRAP"):        # an already running broker (see docs/operations.md)
        yield None
        return
    with private_broker() as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker) -> str:
    return os.environ.get("KAFKA_BOOTSTRAP") or kafka_broker.bootstrap


@pytest.fixture
def topic(kafka_bootstrap, request) -> str:
    """A fresh 1-partition topic named after the test (parametrise via ``topic_partitions``)."""
    from tests.kafka_util import create_topic

    partitions = getattr(request, "param", None) or 1
    name = f"t-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")
    name = "".join(c if c.isalnum() or c in "-._" else "-" for c in name)
    create_topic(kafka_bootstrap, name, partitions)
    return name


@pytest.fixture
def run_cli():
    """The real CLI in this process (torch imported once, so fast); the logging setup and the
    signal handlers that `sidepath run` installs are restored afterwards."""
    from click.testing import CliRunner

    from sidepath.worker.cli.main import cli

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def run(*args: str):
        return CliRunner().invoke(cli, ["--log-format", "json", *args])

    yield run
    root.handlers[:], level = saved
    root.setLevel(level)
    for s, h in handlers.items():
        signal.signal(s, h)
