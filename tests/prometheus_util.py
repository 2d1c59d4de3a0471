"""A real Prometheus for tests: Debian's ``prometheus`` server on a free loopback port, scraping
worker metrics ports with a test copy of the chart's alert rules (charts/sidepath/files/alerts.yaml).

The copy keeps every expression as shipped except the time constants the caller asks to shorten,
so that an alert that would misfire in production shows (pending, then firing) within a test.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidepath.worker.dev.local_kafka import free_ports
from tests.worker_util import wait_for

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "charts" / "sidepath" / "files" / "alerts.yaml"
STUCK_POLL_S = 120              # the chart's stuck-poll window (seconds since the last poll)

_DURATION = re.compile(r"(\d+)([smhd])\b")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _scaled(duration: str, divisor: int) -> str:
    """'15m' / 60 -> '15s'; never below one second."""
    def one(m: re.Match[str]) -> str:
        return f"{max(1, int(m.group(1)) * _SECONDS[m.group(2)] // divisor)}s"
    return _DURATION.sub(one, duration)


def write_rules(path: Path, *, stuck_after_s: int, for_: str | None = None, time_divisor: int = 1,
               extra: list[dict[str, Any]] | None = None) -> Path:
    """Write the chart's rules to ``path`` with a ``stuck_after_s`` stuck-poll window and either one
    ``for_`` for every alert, or (``time_divisor`` > 1) every ``for:`` and every range and offset in
    the expressions divided by ``time_divisor`` (60: one minute of the chart is one second here).
    ``extra`` rules are appended as a group of their own (controls that must fire)."""
    doc = yaml.safe_load(ALERTS.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            expr = rule["expr"]
            if time_divisor > 1:
                rule["for"] = _scaled(rule["for"], time_divisor)
                expr = re.sub(r"\[[^\]]+\]|\boffset \d+[smhd]\b", lambda m: _scaled(m.group(0), time_divisor), expr)
            if for_ is not None:
                rule["for"] = for_
            if rule.get("alert") == "SidepathPollLoopStuck":
                assert f"> {STUCK_POLL_S}" in expr, "the stuck-poll window moved: update tests/prometheus_util.py"
                expr = expr.replace(f"> {STUCK_POLL_S}", f"> {stuck_after_s}")
            rule["expr"] = expr
    if extra:
        doc["groups"].append({"name": "test.controls", "rules": extra})
    path.write_text(yaml.safe_dump(doc))
    return path


class Prometheus:
    """``targets``: {release: metrics port}; each target carries the pod labels the chart's
    ServiceMonitor copies (namespace ml, pod <release>-0)."""

    def __init__(self, workdir: Path, targets: dict[str, int], rules: Path, *, scrape_interval_s: int = 1) -> None:
        exe = shutil.which("prometheus")
        if exe is None:
            pytest.fail("prometheus not found: run scripts/bootstrap.sh --test (Debian package 'prometheus')")
        self.port = free_ports(1)[0]
        interval = f"{scrape_interval_s}s"
        config = {
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{
                "job_name": "sidepath",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port}"],
                     "labels": {"app_kubernetes_io_name": "sidepath", "app_kubernetes_io_instance": release,
                                "namespace": "ml", "pod": f"{release}-0"}}
                    for release, port in targets.items()],
            }],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(workdir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [exe, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self._ready, 60, interval=0.5, what="prometheus to be ready")

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return json.loads(r.read())

    def _ready(self) -> bool:
        assert self.proc.poll() is None, "prometheus exited; see prometheus.log"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def all_alerts(self) -> list[dict[str, Any]]:
        """Every pending or firing alert: labels (alertname included), state, value."""
        alerts: list[dict[str, Any]] = self._get("/api/v1/alerts")["data"]["alerts"]
        return alerts

    def alerts(self, name: str) -> dict[str, str]:
        """{release: state (pending|firing)} of one alert."""
        return {a["labels"].get("app_kubernetes_io_instance", ""): a["state"]
                for a in self.all_alerts() if a["labels"]["alertname"] == name}

    def rules(self) -> list[dict[str, Any]]:
        """Every alerting rule as Prometheus last evaluated it (name, health, lastError, ...)."""
        groups = self._get("/api/v1/rules?type=alert")["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
