"""Docs that are generated from code stay true as the code changes."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sidepath.worker.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_key_table_is_current():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    table = doc.split("<!-- keys -->\n", 1)[1].split("<!-- /keys -->", 1)[0]
    out = CliRunner().invoke(cli, ["config", "keys"]).output
    assert table.strip() == out.strip(), "regenerate with: sidepath config keys"


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
