"""Finite jobs: `sidepath backfill` and `sidepath drain` (same engine, a stream that ends).

Exit codes: 0 every item done, 1 some item failed (backfill) or a runtime
failure, 2 bad usage or configuration.  See docs/jobs.md.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from sidepath.core.errors import ConfigError
from sidepath.worker.cli.context import config_option, load_cli_config

__all__ = ["backfill", "drain"]


@click.command()
@click.option("--input", "input_path", type=click.Path(exists=True, path_type=Path),
              help="A JSONL or CSV file of requests, or a directory of media files.")
@click.option("--from-sql", "sql_url", metavar="URL",
              help="SQLAlchemy URL of the database to read items from (${VAR} placeholders are filled in).")
@click.option("--query", help="SQL returning postid, uid, seqid and a video/image/audio/data column.")
@click.option("--where", help="Filter: a SQL condition for --from-sql, field=value for files.")
@click.option("--limit", type=click.IntRange(min=0), default=0,
              help="Take only the first N items of the input (after --where); 0 = all.")
@click.option("--overwrite", is_flag=True, help="Redo items already in the destination.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path),
              help="File recording finished keys (for sinks that cannot be queried, e.g. JSONL).")
@click.option("--sink", "sinks", multiple=True, help="Destination sink URL(s); default sinks.urls.")
@click.option("--model", "model_name", help="Override model.name.")
@click.option("--via-kafka", "via_topic", metavar="TOPIC",
              help="Do not process here: produce the items to TOPIC for a worker fleet.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.option("--max-rate", type=click.FloatRange(min=0), default=None, metavar="PER_S",
              help="At most this many items per second (engine.max_messages_per_s; 0 = no cap).")
@click.option("--log-every", "log_every_s", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              metavar="SECONDS", help="Without a progress bar, log the counts this often.")
@config_option
@click.pass_context
def backfill(ctx: click.Context, input_path: Path | None, sql_url: str | None, query: str | None,
             where: str | None, limit: int, overwrite: bool, checkpoint: Path | None, sinks: tuple[str, ...],
             model_name: str | None, via_topic: str | None, progress: bool | None, max_rate: float | None,
             log_every_s: float) -> None:
    """Run the model over existing items to (re)fill a results table; resumable."""
    from sidepath.worker.jobs.backfill import run_backfill
    from sidepath.worker.jobs.backfill_sources import rows_from_dir, rows_from_file, rows_from_sql

    overrides: dict[str, Any] = {}
    if sinks:
        overrides["sinks.urls"] = list(sinks)
    if model_name:
        overrides["model.name"] = model_name
    if max_rate is not None:
        overrides["engine.max_messages_per_s"] = max_rate
    cfg = load_cli_config(ctx, overrides)
    if bool(input_path) == bool(sql_url):
        raise ConfigError("--input/--from-sql", input_path or sql_url, "give exactly one of --input or --from-sql")
    if sql_url and not query:
        raise ConfigError("--query", None, "--from-sql needs --query 'SELECT postid, uid, seqid, video FROM ...'")
    if query and not sql_url:
        raise ConfigError("--query", query, "--query needs --from-sql URL (the database to run it on)")
    if sql_url:
        # the database filters and limits; the row numbers are those of the filtered result
        rows, name = rows_from_sql(sql_url, query or "", where, limit), "sql"
        where = None
    elif input_path and input_path.is_dir():
        rows, name = rows_from_dir(input_path), input_path.resolve().name
        cfg.decode.file_roots = [*cfg.decode.file_roots, str(input_path.resolve())]
    else:
        assert input_path is not None
        rows, name = rows_from_file(input_path), input_path.stem
    if via_topic:
        from sidepath.worker.jobs.backfill_sources import request_value, select_rows
        from sidepath.worker.jobs.produce import produce_requests

        cfg.kafka.topic = via_topic
        n = produce_requests(cfg, (request_value(r) for _i, r in select_rows(rows, where=where, limit=limit)))
        click.echo(f"produced {n} items to {via_topic}; run workers on it (sidepath run --until-end)")
        return
    summary = run_backfill(cfg, rows, name=name, limit=limit, where=where, overwrite=overwrite,
                           checkpoint=checkpoint, progress=progress, log_every_s=log_every_s)
    click.echo(summary.line())
    sys.exit(1 if summary.failed else 0)


@click.command()
@click.option("--topic", required=True, help="The topic to copy (e.g. on the 1-day-retention test cluster).")
@click.option("--sink", "sinks", multiple=True, help="Durable sink URL(s) (SQL or JSONL); default sinks.urls.")
@click.option("--group", help="The drain's own consumer group (default <service>-drain-<topic>).")
@click.option("--warn-hours", type=click.FloatRange(min=0), default=6.0, show_default=True,
              help="Warn when the oldest unread record expires within this many hours.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@config_option
@click.option("--max-rate", type=click.FloatRange(min=0), default=None, metavar="PER_S",
              help="At most this many records per second (engine.max_messages_per_s; 0 = no cap).")
@click.pass_context
def drain(ctx: click.Context, topic: str, sinks: tuple[str, ...], group: str | None, warn_hours: float,
          as_json: bool, max_rate: float | None) -> None:
    """Copy a topic into a durable sink, idempotently and resumably, until its current end."""
    from sidepath.worker.jobs.drain import run_drain

    cfg = load_cli_config(ctx, {"engine.max_messages_per_s": max_rate} if max_rate is not None else None)
    report = run_drain(cfg, topic=topic, sinks=list(sinks), group=group, warn_within_s=warn_hours * 3600)
    if as_json:
        click.echo(json.dumps(report))
    else:
        click.echo(f"drained {report['copied']} records from {topic} into "
                   f"{', '.join(report['sinks'])} ({report['errors']} errors"
                   + (f", {report['expired']} expired before they were read" if report.get("expired") else "")
                   + ")")
    # a record that could not be copied is in the dead-letter sink, not in the table: say so by the exit code
    sys.exit(1 if report.get("fatal") is not None or report["errors"] else 0)
