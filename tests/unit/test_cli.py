from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from sidepath.worker.cli import cli


def test_help_lists_subcommands():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0
    for sub in ("run", "produce", "config", "models", "dev"):
        assert sub in r.output


def test_every_subcommand_has_help():
    def walk(group, path):
        for name, cmd in group.commands.items():
            r = CliRunner().invoke(cli, [*path, name, "--help"])
            assert r.exit_code == 0, (path, name, r.output)
            if hasattr(cmd, "commands"):
                walk(cmd, [*path, name])
    walk(cli, [])


def test_bad_config_value_is_one_line_and_exit_2(tmp_path):
    p = tmp_path / "sidepath.toml"
    p.write_text("[model]\nmax_batch = -3\n")
    r = subprocess.run([sys.executable, "-m", "sidepath.worker.cli", "--config", str(p), "config", "show"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.max_batch=-3" in lines[0] and "greater than 0" in lines[0]


def test_config_show_masks_secrets(tmp_path):
    r = CliRunner(env={"SIDEPATH_KAFKA_SASL_PASSWORD": "topsecret", "SIDEPATH_KAFKA_SECURITY_PROTOCOL":
                       "SASL_SSL", "SIDEPATH_KAFKA_SASL_MECHANISM": "PLAIN"}).invoke(
        cli, ["--config", str(tmp_path / "none.toml"), "config", "show"])
    assert r.exit_code == 2   # the file does not exist: a clear error
    r = CliRunner(env={"SIDEPATH_KAFKA_SASL_PASSWORD": "topsecret", "SIDEPATH_KAFKA_SECURITY_PROTOCOL":
                       "SASL_SSL", "SIDEPATH_KAFKA_SASL_MECHANISM": "PLAIN"}).invoke(cli, ["config", "show"])
    assert r.exit_code == 0 and "topsecret" not in r.output and '"***"' in r.output
