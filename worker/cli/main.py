"""The ``sidepath`` command line (click).

Exit codes: 0 success or a clean stop (SIGTERM included), 1 runtime failure,
2 bad configuration or usage.  A ``SidepathError`` prints one line, never a
traceback.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from sidepath.core.errors import ConfigError
from sidepath.worker.cli.context import config_option, load_cli_config
from sidepath.worker.cli.errors import OneLineErrors
from sidepath.worker.config import Config, masked

__all__ = ["cli", "main"]

log = logging.getLogger(__name__)


def _load(ctx: click.Context, overrides: dict[str, Any] | None = None) -> Config:
    return load_cli_config(ctx, overrides)


max_rate_option = click.option(
    "--max-rate", type=click.FloatRange(min=0), default=None, metavar="PER_S",
    help="At most this many messages per second for this worker (engine.max_messages_per_s; 0 = no cap).")


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", default=None, metavar="FILE", envvar="SIDEPATH_CONFIG",
              help="TOML config file (default ./sidepath.toml if present); every key can be overridden by "
                   "SIDEPATH_* variables. Also accepted after the subcommand.")
@click.option("--log-level", default="INFO", show_default=True, envvar="SIDEPATH_LOG_LEVEL",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--log-format", default="auto", show_default=True, envvar="SIDEPATH_LOG_FORMAT",
              type=click.Choice(["auto", "json", "text"]),
              help="json: one object per line (for ELK); text: for a terminal; auto: text on a TTY.")
@click.version_option(package_name="sidepath")
@click.pass_context
def cli(ctx: click.Context, config_path: str, log_level: str, log_format: str) -> None:
    """sidepath: batched, crash-safe offline inference over a Kafka stream."""
    from sidepath.worker.ops.log_format import setup_logging

    setup_logging(log_level.upper(), log_format)
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path   # resolved with the subcommand's --config by cli_config


@cli.command()
@click.option("--from-beginning", is_flag=True, help="Replay the topic from its earliest offsets.")
@click.option("--start-at", metavar="TIME", help="Replay from a time: ISO-8601 (UTC if no zone) or epoch ms.")
@click.option("--until-end", is_flag=True, help="Stop by itself at the end offsets taken at start (a finite run).")
@click.option("--max-messages", type=int, default=0, help="Stop after this many messages (0 = no limit).")
@click.option("--topic", help="Override kafka.topic.")
@click.option("--group", help="Override kafka.group_id.")
@click.option("--model", "model_name", help="Override model.name.")
@click.option("--sink", "sinks", multiple=True, help="Override sinks.urls (repeat for several).")
@config_option
@max_rate_option
@click.pass_context
def run(ctx: click.Context, from_beginning: bool, start_at: str | None, until_end: bool,
        max_messages: int, topic: str | None, group: str | None, model_name: str | None,
        sinks: tuple[str, ...], max_rate: float | None) -> None:
    """Consume the topic, run the model, write results, commit offsets."""
    from sidepath.worker.engine.rebalance import StartAt
    from sidepath.worker.engine.runner import run_worker
    from sidepath.worker.jobs.start_at import parse_start_at

    overrides: dict[str, Any] = {}
    if topic:
        overrides["kafka.topic"] = topic
    if group:
        overrides["kafka.group_id"] = group
    if model_name:
        overrides["model.name"] = model_name
    if sinks:
        overrides["sinks.urls"] = list(sinks)
    if max_rate is not None:
        overrides["engine.max_messages_per_s"] = max_rate
    cfg = _load(ctx, overrides)
    start: StartAt = parse_start_at(start_at) if start_at else ("beginning" if from_beginning else None)
    stats = run_worker(cfg, start=start, until_end=until_end, max_messages=max_messages)
    sys.exit(0 if stats.get("fatal") is None else 1)


@cli.command()
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False),
              help="JSONL file of requests, one per line.")
@click.option("--demo", "demo_count", type=int, default=0,
              help="Generate this many demo requests (images and 3 s videos with sound) and their media.")
@click.option("--media-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write demo media here and point requests at it by path (the worker reads it only under "
                   "decode.file_roots); default: media inline in each message as base64.")
@click.option("--jsonl", "jsonl_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the requests to this JSONL file instead of sending them (input for `sidepath backfill`).")
@click.option("--topic", help="Override kafka.topic.")
@config_option
@click.pass_context
def produce(ctx: click.Context, path: str | None, demo_count: int, media_dir: Path | None,
            jsonl_out: Path | None, topic: str | None) -> None:
    """Send requests to the topic (from a JSONL file, or generated demo requests)."""
    from sidepath.worker.jobs.produce import demo_requests, demo_summary, produce_requests, read_jsonl

    cfg = _load(ctx, {"kafka.topic": topic} if topic else None)
    if bool(path) == bool(demo_count):
        raise ConfigError("--file/--demo", path or demo_count, "give exactly one of --file PATH or --demo N")
    if path:
        n = produce_requests(cfg, read_jsonl(Path(path)))
        click.echo(f"produced {n} requests to {cfg.kafka.topic} at {cfg.kafka.bootstrap_servers}")
        return
    requests = demo_requests(demo_count, media_dir)
    if jsonl_out:
        jsonl_out.write_text("".join(json.dumps(r) + "\n" for r in requests))
        click.echo(f"wrote {len(requests)} demo requests to {jsonl_out} (try `sidepath backfill --input {jsonl_out}`)")
        return
    produce_requests(cfg, requests)
    click.echo(demo_summary(cfg, requests, media_dir))


@cli.group()
def config() -> None:
    """Inspect the effective configuration."""


@config.command("show")
@click.option("--format", "fmt", type=click.Choice(["toml", "json"]), default="json", show_default=True)
@config_option
@click.pass_context
def config_show(ctx: click.Context, fmt: str) -> None:
    """Print the effective config (file + environment) with secrets masked."""
    from sidepath.worker.config import group_budget

    cfg = _load(ctx)
    doc = masked(cfg)
    budget = group_budget(cfg)
    if fmt == "json":
        click.echo(json.dumps({**doc, "derived": {"group_budget": budget}}, indent=2))
    else:
        from sidepath.worker.config import to_toml
        click.echo(to_toml(doc))
        click.echo(f"# group budget (derived, not a key): {budget['note']}")


@config.command("keys")
def config_keys() -> None:
    """List every config key with its type, default, environment variable and meaning."""
    from sidepath.worker.config import describe_keys

    click.echo("| key | type | default | environment variable | meaning |\n|---|---|---|---|---|")
    for key, typ, default, env, meaning in describe_keys():
        click.echo(f"| `{key}` | {typ} | `{default}` | `{env}` | {meaning.replace('|', '/')} |")


@cli.command()
@click.option("--group", help="Consumer group (default kafka.group_id).")
@click.option("--topic", help="Topic (default kafka.topic).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--watch", type=float, default=0, metavar="SECONDS", help="Refresh every SECONDS until Ctrl-C.")
@config_option
@click.pass_context
def lag(ctx: click.Context, group: str | None, topic: str | None, as_json: bool, watch: float) -> None:
    """Show the group's committed offsets, end offsets, lag and last commit age."""
    import time

    from sidepath.worker.jobs.lag import format_table, group_lag

    cfg = _load(ctx)
    while True:
        text = format_table(group_lag(cfg, group, topic), as_json)
        if watch:
            click.clear()
        click.echo(text)
        if not watch:
            return
        time.sleep(watch)


@cli.command("models")
def models_cmd() -> None:
    """List installed models with their inputs and options."""
    from sidepath.models.registry import available_models

    for name, cls in sorted(available_models().items()):
        click.echo(f"{name}  version={cls.version}  input={cls.input_kind}  batch_unit={cls.batch_unit}")
        for opt, (default, help_) in getattr(cls, "options", {}).items():
            click.echo(f"    {opt} = {default!r}  {help_}")


@cli.group()
def dev() -> None:
    """Development helpers: a local Apache Kafka broker."""


@dev.group("kafka")
def dev_kafka() -> None:
    """A real single-node Kafka (KRaft) from Maven Central jars, on loopback."""


#: SIDEPATH_DEV_KAFKA_PORT moves the dev broker off 9092 (the docs' own test runs the README this way)
dev_port_option = click.option("--port", default=9092, show_default=True, envvar="SIDEPATH_DEV_KAFKA_PORT",
                               show_envvar=True, help="Broker port (the controller takes the next one).")


def _dev_broker(port: int) -> Any:
    from sidepath.worker.dev.local_kafka import Broker, cache_dir

    return Broker(cache_dir() / f"dev-broker-{port}", port=port, controller_port=port + 1)


@dev_kafka.command("fetch")
def dev_kafka_fetch() -> None:
    """Fetch the Kafka jars with Maven (cached outside the clone)."""
    from sidepath.worker.dev.local_kafka import fetch_jars

    click.echo(f"kafka jars in {fetch_jars()}")


@dev_kafka.command("start")
@dev_port_option
@click.option("--keep-data", is_flag=True, help="Keep the topics of the last run instead of a fresh store.")
def dev_kafka_start(port: int, keep_data: bool) -> None:
    """Format a fresh store (unless --keep-data) and start the broker in the background."""
    b = _dev_broker(port)
    if b.pid():
        click.echo(f"kafka already running (pid {b.pid()}) at {b.bootstrap}")
        return
    if not keep_data or not (b.workdir / "server.properties").exists():
        b.format()
    pid = b.start()
    click.echo(f"kafka started (pid {pid}) at {b.bootstrap}")


@dev_kafka.command("stop")
@dev_port_option
def dev_kafka_stop(port: int) -> None:
    """Stop the broker (controlled shutdown)."""
    click.echo("kafka stopped" if _dev_broker(port).stop() else "kafka was not running")


@dev_kafka.command("status")
@dev_port_option
def dev_kafka_status(port: int) -> None:
    """Say whether the broker runs; exit 1 when it does not."""
    b = _dev_broker(port)
    pid = b.pid()
    click.echo(f"kafka running (pid {pid}) at {b.bootstrap}" if pid else "kafka not running")
    sys.exit(0 if pid else 1)


@dev_kafka.command("tool", context_settings={"ignore_unknown_options": True})
@click.argument("name", type=click.Choice(["topics", "groups", "offsets", "produce", "consume", "configs"]))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def dev_kafka_tool(name: str, args: tuple[str, ...]) -> None:
    """Run one of Kafka's own CLI tools from the same jars (args passed through)."""
    from sidepath.worker.dev.local_kafka import kafka_tool

    r = kafka_tool(name, *args, check=False, stdin=None if sys.stdin.isatty() else sys.stdin.read())
    click.echo(r.stdout, nl=False)
    click.echo(r.stderr, nl=False, err=True)
    sys.exit(r.returncode)


def _register() -> None:
    from sidepath.worker.cli.jobs import backfill, drain
    from sidepath.worker.cli.skip import skip

    cli.add_command(backfill)
    cli.add_command(drain)
    cli.add_command(skip)
    try:
        from sidepath.worker.cli.models import model
    except ImportError:   # pragma: no cover - the model tools are optional
        return
    cli.add_command(model)


_register()


def main() -> None:
    cli(prog_name="sidepath")


if __name__ == "__main__":
    main()
