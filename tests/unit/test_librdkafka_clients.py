"""Every librdkafka client of the project and of its tests logs through Python logging.

A client built without ``librdkafka_logging()`` writes raw ``%3|...|FAIL|`` lines on stderr for
every reconnect once its broker is gone: the suite used to end with such lines from a test
producer that was collected at interpreter exit, after the session's broker had stopped.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = {"Producer", "Consumer", "AdminClient"}
#: helpers that return a config with librdkafka_logging() in it (worker/kafka_config.py)
CONFIG_HELPERS = {"consumer_config", "lag_reader_config", "producer_config", "admin_config"}


def _name(node: ast.AST) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def _logs_through_logging(arg: ast.AST) -> bool:
    if isinstance(arg, ast.Call):
        return _name(arg.func) in CONFIG_HELPERS
    if isinstance(arg, ast.Dict):
        return any(k is None and isinstance(v, ast.Call) and _name(v.func) == "librdkafka_logging"
                   for k, v in zip(arg.keys, arg.values, strict=True))
    return False


def _constructions(path: Path) -> list[tuple[int, bool]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [(node.lineno, bool(node.args) and _logs_through_logging(node.args[0]))
            for node in ast.walk(tree) if isinstance(node, ast.Call) and _name(node.func) in CLIENTS]


@pytest.mark.parametrize("package", ["worker", "sinks", "tests"])
def test_every_kafka_client_is_built_with_librdkafka_logging(package):
    bad = [f"{path.relative_to(ROOT)}:{line}" for path in sorted((ROOT / package).rglob("*.py"))
           for line, ok in _constructions(path) if not ok]
    assert not bad, f"build these with {{**librdkafka_logging(), ...}} (sidepath.worker.ops.log_format): {bad}"
