"""The click group behind every sidepath command: a SidepathError is one line and its exit code."""
from __future__ import annotations

import sys
from typing import Any

import click

from sidepath.core.errors import SidepathError

__all__ = ["OneLineErrors"]


class OneLineErrors(click.Group):
    """Config and usage errors exit 2, runtime failures 1 (``SidepathError.exit_code``), no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SidepathError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
