"""Alert rules and dashboard queries, checked with Prometheus' own promtool.

``promtool check rules`` parses charts/sidepath/files/alerts.yaml (the file the
chart wraps in a PrometheusRule) and ``promtool test rules`` runs the unit tests
in tests/promtool/alerts_test.yaml against it. A mutation check proves that every
alert has a case that must fire and one that must not; a name check proves that
rules and dashboard only use metrics the worker really exports.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sidepath.worker.engine.pacing import build_pacing_metrics
from sidepath.worker.ops.broker_stats import throttle_stats_cb
from sidepath.worker.ops.metrics import build_metrics

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "charts" / "sidepath" / "files" / "alerts.yaml"
DASHBOARD = ROOT / "charts" / "sidepath" / "files" / "dashboard.json"
RULE_TESTS = ROOT / "tests" / "promtool" / "alerts_test.yaml"


@pytest.fixture(scope="module")
def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: run scripts/bootstrap.sh --test (Debian package 'prometheus')")
    return exe


def run(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *map(str, args)], capture_output=True, text=True, timeout=60)


def alert_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


#: the series names each metric type exposes (labelled metrics have no samples yet)
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}


def worker_metric_names() -> set[str]:
    """Every series name the worker's metrics (worker/ops/metrics.py, worker/engine/pacing.py,
    worker/ops/broker_stats.py) can expose."""
    registry = build_metrics().registry
    build_pacing_metrics(registry)
    throttle_stats_cb(registry)
    return {family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]}


def metric_names_in(expr: str) -> set[str]:
    return set(re.findall(r"\bsidepath_[a-z0-9_]+", expr))


def test_promtool_accepts_the_alert_rules(promtool):
    r = run(promtool, "check", "rules", ALERTS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in r.stdout


def test_promtool_unit_tests_of_the_alerts_pass(promtool):
    r = run(promtool, "test", "rules", RULE_TESTS)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_required_alerts_exist_with_a_severity_and_a_runbook():
    rules = {r["alert"]: r for r in alert_rules()}
    required = {"SidepathWorkerAbsent", "SidepathPollLoopStuck", "SidepathGroupStalled", "SidepathLagGrowing",
                "SidepathErrorRate", "SidepathDeadLetterRate", "SidepathLatencySLO",
                "SidepathGpuMemoryOverBudget"}
    assert required <= set(rules), required - set(rules)
    operations = (ROOT / "docs" / "operations.md").read_text().lower()
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert f"### {anchor}" in operations, f"docs/operations.md has no runbook section for {name}"


def test_every_alert_is_unit_tested():
    tested = {case["alertname"] for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for case in t.get("alert_rule_test", [])}
    assert {r["alert"] for r in alert_rules()} <= tested


@pytest.mark.parametrize("alert", [r["alert"] for r in alert_rules()])
def test_unit_tests_catch_an_alert_that_never_fires_or_always_fires(promtool, alert, tmp_path):
    """Each alert's expression replaced by one that never / always holds must fail
    the unit tests: every alert has a firing case and a quiet case."""
    tests = yaml.safe_load(RULE_TESTS.read_text())
    # keep only this alert's cases so that a failure can only come from it
    tests["tests"] = [dict(t, alert_rule_test=[c for c in t["alert_rule_test"] if c["alertname"] == alert])
                      for t in tests["tests"] if any(c["alertname"] == alert for c in t["alert_rule_test"])]
    for label, expr in (("never", "vector(1) == 0"), ("always", "vector(1)")):
        doc = yaml.safe_load(ALERTS.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == alert:
                    rule["expr"] = expr
                    rule["for"] = "0s"
        rules = tmp_path / f"{label}.rules.yaml"
        rules.write_text(yaml.safe_dump(doc))
        case = tmp_path / f"{label}.test.yaml"
        case.write_text(yaml.safe_dump(dict(tests, rule_files=[rules.name])))
        r = run(promtool, "test", "rules", case)
        assert r.returncode != 0, f"{alert}: the unit tests pass even when it {label} fires"
        # the untouched rules pass the same reduced tests
        honest = tmp_path / f"{label}.honest.yaml"
        honest.write_text(yaml.safe_dump(dict(tests, rule_files=[str(ALERTS)])))
        ok = run(promtool, "test", "rules", honest)
        assert ok.returncode == 0, ok.stdout + ok.stderr


def test_alerts_only_use_metrics_the_worker_exports():
    known = worker_metric_names() | {"up"}
    for rule in alert_rules():
        unknown = metric_names_in(rule["expr"]) - known
        assert not unknown, f"{rule['alert']} uses unknown metrics {unknown}"


def dashboard_queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]


def test_dashboard_only_uses_metrics_the_worker_exports():
    known = worker_metric_names()
    for title, expr in dashboard_queries():
        unknown = metric_names_in(expr) - known
        assert not unknown, f"panel {title!r} uses unknown metrics {unknown}"


def test_dashboard_queries_are_valid_promql(promtool, tmp_path):
    """Grafana's variables filled in, every query must parse as a recording rule."""
    rules = []
    for i, (title, expr) in enumerate(dashboard_queries()):
        expr = (expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
                .replace("$namespace", "ml").replace("$release", ".*"))
        assert "$" not in expr, f"panel {title!r}: unknown variable in {expr}"
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = run(promtool, "check", "rules", path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboard_query_check_rejects_broken_promql(promtool, tmp_path):
    path = tmp_path / "broken.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "x:y", "expr": "sum by (topic (sidepath_consumer_lag_messages)"}]}]}))
    assert run(promtool, "check", "rules", path).returncode != 0
