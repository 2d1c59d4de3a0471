"""A test run leaves the checkout clean: report writers refuse tracked docs unless asked."""
from __future__ import annotations

import pytest

from bench.report import ROOT, check_docs_write, write_block
from tests.reliability.report import DOC, SCRATCH, Row, report_path, write_rows

ROW = Row("kill -9", 10, 1, 10, 10, 0, 0, 1, "1 s", "guard test")


def test_the_reliability_table_goes_to_var_unless_write_docs_is_set():
    assert report_path({}) == SCRATCH and SCRATCH.is_relative_to(ROOT / "var")
    assert report_path({"SIDEPATH_WRITE_DOCS": "1"}) == DOC


def test_report_writers_refuse_tracked_docs_under_pytest(monkeypatch):
    monkeypatch.delenv("SIDEPATH_WRITE_DOCS", raising=False)
    before = DOC.read_bytes()
    with pytest.raises(RuntimeError, match="may not rewrite docs/reliability.md.*SIDEPATH_WRITE_DOCS=1"):
        write_rows([ROW], "fast", command="pytest", doc=DOC)
    with pytest.raises(RuntimeError, match="may not rewrite docs/benchmarks.md"):
        write_block("benchmarks.md", "guard-test", "x")
    with pytest.raises(RuntimeError, match="README.md"):
        check_docs_write(ROOT / "README.md")
    assert DOC.read_bytes() == before


def test_report_writers_may_write_untracked_paths_and_docs_when_asked(monkeypatch, tmp_path):
    out = write_rows([ROW], "fast", command="pytest", doc=tmp_path / "r.md")
    assert "| kill -9 | 10 |" in out.read_text()
    monkeypatch.setenv("SIDEPATH_WRITE_DOCS", "1")
    check_docs_write(DOC)           # allowed: no exception (nothing is written here)
