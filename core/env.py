"""``${VAR}`` placeholders in settings (database passwords in sink URLs), filled from
the environment.

The bottom layer: imports nothing of sidepath but core/."""
from __future__ import annotations

import os
import re
import typing

from sidepath.core.errors import ConfigError
from sidepath.core.masking import mask_url

__all__ = ["env_names", "expand_env"]


_ENV_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def env_names(text: str) -> list[str]:
    """The ``VAR`` of every ``${VAR}`` placeholder in ``text``, in order."""
    return _ENV_REF.findall(text)


def expand_env(url: str, environ: typing.Mapping[str, str] | None = None) -> str:
    """Fill ``${VAR}`` placeholders (database passwords) from the environment."""
    environ = os.environ if environ is None else environ

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in environ:
            raise ConfigError("sinks.urls", mask_url(url), f"environment variable {m.group(1)} is not set")
        return environ[m.group(1)]

    return _ENV_REF.sub(sub, url)
