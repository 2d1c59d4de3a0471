"""Fixtures of the reliability suite: sizes (fast or soak), shared media, scenarios, the report.

``SIDEPATH_SOAK=1`` (``make soak``) runs the same scenarios with larger sizes
and writes the soak table; ``SIDEPATH_RELIABILITY_SEED`` replays the random
fault moments of an earlier run (the seed is printed in the table's notes).
"""
from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.kafka_util import create_topic
from tests.reliability.mix import MediaSet, make_media_set
from tests.reliability.report import Row, report_path, write_rows
from tests.reliability.scenario import TABLE, Scenario

SOAK = os.environ.get("SIDEPATH_SOAK") == "1"


@dataclass(frozen=True)
class Sizes:
    messages: int          # per scenario
    kills: int
    hostile_copies: int    # how often the hostile set is repeated
    backlog_small: int
    backlog_large: int


FAST = Sizes(messages=600, kills=3, hostile_copies=1, backlog_small=2_000, backlog_large=20_000)
SOAK_SIZES = Sizes(messages=6_000, kills=8, hostile_copies=10, backlog_small=20_000, backlog_large=200_000)


def pytest_collection_modifyitems(config, items) -> None:
    """The soak runs longer than the project's per-test timeout (setup.cfg); hangs are still caught."""
    if SOAK:
        for item in items:
            if "tests/reliability/" in item.nodeid:
                item.add_marker(pytest.mark.timeout(3600))


@pytest.fixture(scope="session")
def sizes() -> Sizes:
    return SOAK_SIZES if SOAK else FAST


@pytest.fixture(scope="session")
def seed() -> int:
    return int(os.environ.get("SIDEPATH_RELIABILITY_SEED") or random.SystemRandom().randrange(1, 10**6))


@pytest.fixture(scope="session")
def reliability_report() -> Iterator[Callable[[Row], None]]:
    rows: list[Row] = []
    yield rows.append
    if rows:
        command = "make soak" if SOAK else "pytest tests/reliability"
        path = write_rows(rows, "soak" if SOAK else "fast", command=command, doc=report_path())
        print(f"\nreliability table written to {path} (SIDEPATH_WRITE_DOCS=1 writes docs/reliability.md)")


@pytest.fixture(scope="session")
def rel_media(tmp_path_factory) -> MediaSet:
    return make_media_set(tmp_path_factory.mktemp("rel-media"))


@pytest.fixture
def scenario(tmp_path, kafka_bootstrap, postgres_db, rel_media,
             reliability_report) -> Iterator[Callable[..., Scenario]]:
    """``scenario(name, partitions=1, models=("noop",), bootstrap=None, **config overrides)``."""
    made: list[Scenario] = []

    def make(name: str, *, partitions: int = 1, models: tuple[str, ...] = ("noop",),
             bootstrap: str | None = None, **overrides: Any) -> Scenario:
        b = bootstrap or kafka_bootstrap
        slug = "".join(c if c.isalnum() else "-" for c in name)[:30]
        topic = f"rel-{slug}-{uuid.uuid4().hex[:8]}"
        create_topic(b, topic, partitions, config=overrides.pop("topic_config", None))
        # several scenarios in one test: each its own directory and results table
        work = tmp_path / f"scenario-{len(made)}"
        work.mkdir()
        sc = Scenario(name, work, b, topic, partitions, postgres_db,
                      file_roots=[str(rel_media.dir), str(tmp_path)], models=models,
                      table=TABLE if not made else f"{TABLE}_{len(made)}",
                      overrides=overrides, report=reliability_report, patience=10.0 if SOAK else 1.0)
        made.append(sc)
        return sc

    yield make
    for sc in made:
        sc.close()
