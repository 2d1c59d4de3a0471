"""``--config`` wherever users put it: before the subcommand or after it.

Precedence (docs/configuration.md#which-file): the subcommand's ``--config``,
then the group's (``sidepath --config FILE run``), then ``SIDEPATH_CONFIG``,
then ``./sidepath.toml`` when it exists, else the built-in defaults.  A file
that was named (by an option or the variable) must exist; the implicit
``./sidepath.toml`` may be absent.  ``SIDEPATH_*`` key variables apply on top
of whichever file was chosen.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from sidepath.core.errors import ConfigError
from sidepath.worker.config import Config, load_config

__all__ = ["config_option", "load_cli_config", "config_path_of", "DEFAULT_CONFIG"]

DEFAULT_CONFIG = "sidepath.toml"
_SUBCOMMAND_KEY = "sidepath.subcommand_config"
F = TypeVar("F", bound=Callable[..., Any])


def _remember(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta[_SUBCOMMAND_KEY] = value     # meta is shared by the whole context chain


def config_option(f: F) -> F:
    """Decorator: ``--config FILE`` on a subcommand (the command's signature does not change)."""
    return click.option("--config", "subcommand_config", metavar="FILE", default=None, expose_value=False,
                        callback=_remember, is_eager=True,
                        help="TOML config file (same as `sidepath --config FILE ...`; this one wins).")(f)


def config_path_of(ctx: click.Context) -> str | None:
    """The file to read, by the precedence rule above; None = defaults and environment only."""
    named = ctx.meta.get(_SUBCOMMAND_KEY)
    if named is None:
        root = ctx.find_root()
        named = root.params.get("config_path")   # the group's option, or SIDEPATH_CONFIG (click's envvar)
    if named is not None:
        if not Path(named).exists():        # what exists but is no readable file: load_config says
            raise ConfigError("--config", named, "file not found; pass an existing TOML file "
                              "(`sidepath config show --format toml > sidepath.toml` writes one)")
        return str(named)
    return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None


def load_cli_config(ctx: click.Context, overrides: dict[str, Any] | None = None) -> Config:
    """The effective config of a CLI command: the chosen file, ``SIDEPATH_*`` variables, then options."""
    return load_config(config_path_of(ctx), overrides=overrides)
