"""Open sinks from URLs; the URL's scheme picks the implementation.

Result sinks come from the ``sidepath.sinks`` entry-point group (setup.cfg names
file, sqlite, postgresql, mysql and kafka), so another package adds a sink by
declaring, in its own metadata::

    [options.entry_points]
    sidepath.sinks =
        bigquery = mypkg.bq:BigQuerySink

An entry point names a callable that takes the URL (``${VAR}`` placeholders
already filled in from the environment, percent-encoded inside ``user:password@``)
and returns a ``Sink`` whose ``url`` attribute is safe to log (``mask_url``).  Dead-letter
sinks work the same way through ``sidepath.dead_letter_sinks``; file and kafka
are built in.  The built-in names stay available even when the package
metadata is missing (running from a source tree).
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from functools import partial
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import quote

from sidepath.core.env import env_names, expand_env
from sidepath.core.errors import ConfigError
from sidepath.core.masking import mask_url
from sidepath.sinks.base import DeadLetterSink, Sink
from sidepath.sinks.url import scheme_of

__all__ = ["open_sink", "open_dead_letter_sink", "sink_schemes", "dead_letter_schemes", "expand_url",
           "SINK_GROUP", "DEAD_LETTER_GROUP"]

log = logging.getLogger(__name__)

SINK_GROUP = "sidepath.sinks"
DEAD_LETTER_GROUP = "sidepath.dead_letter_sinks"

_BUILTIN_SINKS = {
    "kafka": "sidepath.sinks.kafka:KafkaSink",
    "file": "sidepath.sinks.jsonl:JsonlSink",
    "sqlite": "sidepath.sinks.sql:SqlSink",
    "postgresql": "sidepath.sinks.sql:SqlSink",
    "mysql": "sidepath.sinks.sql:SqlSink",
}
_BUILTIN_DEAD_LETTER = {
    "kafka": "sidepath.sinks.kafka:KafkaDeadLetterSink",
    "file": "sidepath.sinks.jsonl:JsonlDeadLetterSink",
}


def _load_path(path: str) -> Callable[[str], Any]:
    module, _, attr = path.partition(":")
    factory: Callable[[str], Any] = getattr(import_module(module), attr)
    return factory


def _factories(group: str, builtin: dict[str, str]) -> dict[str, Callable[[], Callable[[str], Any]]]:
    """name -> loader; built-ins first (in the order users read them), then plug-ins."""
    table: dict[str, Callable[[], Callable[[str], Any]]] = {
        name: partial(_load_path, path) for name, path in builtin.items()}
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        table[ep.name] = ep.load
    return table


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#]*@)?(.*)$", re.S)


def expand_url(url: str, *, key: str = "sinks.urls") -> str:
    """Fill ``${VAR}``s from the environment; in ``user:password@`` the value is
    percent-encoded, so a password may hold any character (``@``, ``/``, ``%``)."""
    for name in env_names(url):
        if name not in os.environ:
            raise ConfigError(key, mask_url(url), f"environment variable {name} is not set; "
                                                  "export it (secrets come from the environment only)")
    m = _USERINFO.match(url)
    if not m or not m.group(2):
        return expand_env(url)
    quoted = {k: quote(v, safe="") for k, v in os.environ.items()}
    return m.group(1) + expand_env(m.group(2), quoted) + expand_env(m.group(3))


def sink_schemes() -> list[str]:
    return list(_factories(SINK_GROUP, _BUILTIN_SINKS))


def dead_letter_schemes() -> list[str]:
    return list(_factories(DEAD_LETTER_GROUP, _BUILTIN_DEAD_LETTER))


def _open(url: str, *, key: str, kind: str, group: str, builtin: dict[str, str]) -> Any:
    shown = mask_url(url)
    scheme = scheme_of(url)
    table = _factories(group, builtin)
    if scheme not in table:
        what = f"unknown {kind} scheme {scheme!r} in {shown!r}" if scheme else f"no scheme in {shown!r}"
        raise ConfigError(key, shown, f"{what}; use one of {', '.join(table)}")
    try:
        factory = table[scheme]()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(key, shown, f"the {scheme!r} sink could not be loaded ({exc}); "
                                      "install the package that provides it") from exc
    sink = factory(expand_url(url, key=key))
    log.info("opened %s %s", kind, shown)   # as configured: placeholders, not secrets
    return sink


def open_sink(url: str) -> Sink:
    """Open the result sink a URL names; ``ConfigError`` for a bad URL or option."""
    sink: Sink = _open(url, key="sinks.urls", kind="sink", group=SINK_GROUP, builtin=_BUILTIN_SINKS)
    return sink


def open_dead_letter_sink(url: str) -> DeadLetterSink:
    """Open the dead-letter sink a URL names (``file:///x.jsonl`` or ``kafka://host:port/topic``)."""
    dlq: DeadLetterSink = _open(url, key="sinks.dead_letter", kind="dead-letter sink", group=DEAD_LETTER_GROUP,
                                builtin=_BUILTIN_DEAD_LETTER)
    return dlq
