"""`sidepath skip`: the operator's escape hatch past a message that the workers cannot get through."""
from __future__ import annotations

import click

from sidepath.worker.config import load_config

__all__ = ["skip"]


@click.command()
@click.option("--partition", type=click.IntRange(min=0), required=True, help="The partition to move.")
@click.option("--offset", type=click.IntRange(min=0), required=True,
              help="The last offset to skip: the group resumes at OFFSET + 1.")
@click.option("--topic", help="Topic (default kafka.topic).")
@click.option("--group", help="Consumer group (default kafka.group_id).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def skip(ctx: click.Context, partition: int, offset: int, topic: str | None, group: str | None, yes: bool) -> None:
    """Move a stopped group past OFFSET of one partition; each skipped message goes to the dead-letter sink.

    Every message from the group's committed offset up to OFFSET gets a dead letter (stage skip), then
    the group's offset moves to OFFSET + 1.  The group must have no active member: stop its workers first.
    """
    from sidepath.worker.jobs.skip import plan_skip, run_skip

    cfg = load_config(ctx.obj["config_path"])
    group = group or cfg.kafka.group_id
    topic = topic or cfg.kafka.topic
    plan = plan_skip(cfg, partition=partition, offset=offset, group=group, topic=topic)
    if plan is None:
        click.echo(f"nothing to skip: group {group!r} is already past offset {offset} of {topic}[{partition}]")
        return
    click.echo(plan.describe(cfg.sinks.dead_letter))
    if not yes and not click.confirm("Go on?", default=False):
        click.echo("nothing skipped")
        return
    n = run_skip(cfg, plan)
    click.echo(f"skipped {n} message(s); group {group!r} resumes {topic}[{partition}] at offset {offset + 1}")
