from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from sidepath.worker.cli.main import cli


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
    r = subprocess.run([sys.executable, "-m", "sidepath.worker.cli.main", "--config", str(p), "config", "show"],
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


def _topic_shown(args, env=None):
    r = CliRunner(env=env).invoke(cli, args)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)["kafka"]["topic"]


@pytest.fixture()
def two_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIDEPATH_CONFIG", raising=False)
    monkeypatch.delenv("SIDEPATH_KAFKA_TOPIC", raising=False)
    for name in ("a", "b"):
        (tmp_path / f"{name}.toml").write_text(f'[kafka]\ntopic = "topic-{name}"\n')
    return tmp_path


def test_config_is_accepted_after_the_subcommand(two_configs):
    assert _topic_shown(["config", "show", "--config", "a.toml"]) == "topic-a"
    assert _topic_shown(["--config", "a.toml", "config", "show"]) == "topic-a"


def test_config_precedence_subcommand_then_group_then_env_then_local_file(two_configs):
    assert _topic_shown(["--config", "a.toml", "config", "show", "--config", "b.toml"]) == "topic-b"
    assert _topic_shown(["config", "show"], env={"SIDEPATH_CONFIG": "a.toml"}) == "topic-a"
    assert _topic_shown(["--config", "b.toml", "config", "show"], env={"SIDEPATH_CONFIG": "a.toml"}) == "topic-b"
    assert _topic_shown(["config", "show", "--config", "b.toml"], env={"SIDEPATH_CONFIG": "a.toml"}) == "topic-b"
    assert _topic_shown(["config", "show"]) == "posts"                    # no file: the defaults
    (two_configs / "sidepath.toml").write_text('[kafka]\ntopic = "topic-local"\n')
    assert _topic_shown(["config", "show"]) == "topic-local"
    assert _topic_shown(["config", "show"], env={"SIDEPATH_CONFIG": "a.toml"}) == "topic-a"
    # key variables apply on top of whichever file was chosen
    assert _topic_shown(["config", "show", "--config", "b.toml"], env={"SIDEPATH_KAFKA_TOPIC": "env"}) == "env"


def test_a_named_config_file_must_exist_wherever_it_is_named(two_configs):
    for args in (["config", "show", "--config", "missing.toml"], ["--config", "missing.toml", "config", "show"]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2 and "missing.toml" in r.output and "file not found" in r.output
    r = CliRunner(env={"SIDEPATH_CONFIG": "missing.toml"}).invoke(cli, ["config", "show"])
    assert r.exit_code == 2 and "missing.toml" in r.output


def test_every_subcommand_that_reads_the_config_takes_config_after_it(two_configs):
    """Walk the command tree: a command that loads the config must accept --config (the bug: run did not)."""
    (two_configs / "bad.toml").write_text("[model]\nmax_batch = -3\n")
    readers = [("run",), ("produce", "--demo", "1"), ("config", "show"), ("lag",), ("backfill",),
               ("drain", "--topic", "t")]
    for path in readers:
        r = CliRunner().invoke(cli, [*path, "--config", "bad.toml"])
        assert r.exit_code == 2 and "model.max_batch=-3" in r.output, (path, r.output)


@pytest.mark.parametrize("content, says", [
    (b'{"postid": "a", "uid": "u", "seqid": 1, "data": "eA=="}\n{not json\n', ":2': line is not JSON"),
    (b'{"postid": "a", "uid": "u", "seqid": 1, "data": "eA=="}\n{"postid": "caf\xe9"}\n',
     ":2': line is not UTF-8 text (byte 15); save the file as UTF-8"),
])
def test_produce_file_with_a_bad_line_is_one_line_and_exit_2_before_anything_is_sent(tmp_path, content, says):
    src = tmp_path / "requests.jsonl"
    src.write_bytes(content)
    r = subprocess.run([sys.executable, "-m", "sidepath.worker.cli.main", "produce", "--file", str(src)],
                       capture_output=True, text=True, cwd=tmp_path,
                       env={"PATH": "/usr/bin:/bin", "SIDEPATH_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], r.stderr
