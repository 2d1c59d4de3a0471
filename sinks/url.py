"""Sink URLs: the scheme that picks the sink, and options from the query string.

Every sink takes its options from its URL's query string
(``file:///r.jsonl?rotate_bytes=64MiB``, ``sqlite:///r.db?table=age&on_conflict=ignore``).
``SinkOptions`` hands them out typed and refuses, in one line, a value it cannot
read or an option no one asked for, so that a typo never passes silently.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NoReturn
from urllib.parse import parse_qsl

from sidepath.core.errors import ConfigError
from sidepath.core.masking import mask_url

__all__ = ["scheme_of", "SinkOptions", "parse_bytes", "split_query"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$")
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def scheme_of(url: str) -> str:
    """The sink's name in a URL: ``postgresql+psycopg://`` -> ``postgresql``; '' if none."""
    m = _SCHEME.match(url.strip())
    return m.group(1).split("+", 1)[0].lower() if m else ""


def split_query(url: str) -> tuple[str, list[tuple[str, str]]]:
    """``(url without its query string, [(name, value), ...])``."""
    base, _, query = url.partition("?")
    return base, parse_qsl(query.partition("#")[0], keep_blank_values=True)


def parse_bytes(text: str) -> int:
    """``"64MiB"`` -> 67108864, ``"10MB"`` -> 10000000, ``"4096"`` -> 4096."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(text)
    unit = (m.group(2) or "").lower().rstrip("b")
    return int(float(m.group(1)) * _UNITS[unit])


class SinkOptions:
    """Typed access to a URL's query options; ``finish()`` refuses the ones left over."""

    def __init__(self, url: str, pairs: Iterable[tuple[str, str]], *, key: str = "sinks.urls") -> None:
        self.url, self.key = url, key
        self._left: dict[str, str] = {}
        for name, value in pairs:
            if name in self._left:
                self._fail(f"option {name!r} is given twice; keep one")
            self._left[name] = value

    def _fail(self, fix: str) -> NoReturn:
        raise ConfigError(self.key, mask_url(self.url), fix)

    def text(self, name: str, default: str) -> str:
        return self._left.pop(name, default)

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._left.pop(name, default).lower()
        if value not in choices:
            self._fail(f"option {name}={value!r} is not valid; use one of {', '.join(choices)}")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        raw = self._left.pop(name, None)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not value >= minimum:
            self._fail(f"option {name}={raw!r} must be a number >= {minimum:g}")
        return value

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        raw = self._left.pop(name, None)
        if raw is None:
            return default
        if not re.fullmatch(r"\d+", raw.strip()) or int(raw) < minimum:
            self._fail(f"option {name}={raw!r} must be a whole number >= {minimum}")
        return int(raw)

    def size(self, name: str, default: int) -> int:
        raw = self._left.pop(name, None)
        if raw is None:
            return default
        try:
            return parse_bytes(raw)
        except ValueError:
            self._fail(f"option {name}={raw!r} is not a size; use bytes or a unit, e.g. 67108864 or 64MiB")

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._left.pop(name, None)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        self._fail(f"option {name}={raw!r} must be true or false")

    def take_rest(self) -> dict[str, str]:
        """Every option not read yet (passed through to a driver or client)."""
        rest, self._left = self._left, {}
        return rest

    def finish(self, known: Iterable[str]) -> None:
        """Refuse options that nothing read: a typo must not pass silently."""
        if self._left:
            name = sorted(self._left)[0]
            self._fail(f"unknown option {name!r}; options of this sink: {', '.join(sorted(known))}")
