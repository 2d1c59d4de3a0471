"""JSONL sinks: one JSON object per line, appended in fsync'd batches.

``file:///var/results.jsonl`` (absolute) or ``file://./var/results.jsonl``
(relative to the working directory).  Options in the query string:

    rotate_bytes=64MiB   start a new file before one would grow past this size
    rotate_s=3600        start a new file once the live one is this old
    fsync=false          skip fsync (faster; a power cut may lose the last batches)

Idempotence is the reader's job here: a redelivered result appends a second
line with the same key (model, postid, seqid); ``read_results(path)`` keeps the
last line per key over the rotated files and the live one.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sidepath.core.errors import ConfigError
from sidepath.sinks.base import DeadLetter, Rejected, Result
from sidepath.sinks.json_codec import decode, encode
from sidepath.sinks.jsonl_file import AppendOnlyFile, segments
from sidepath.sinks.url import SinkOptions, split_query

__all__ = ["JsonlSink", "JsonlDeadLetterSink", "path_of_file_url", "read_lines", "read_results", "read_letters"]

log = logging.getLogger(__name__)

_OPTIONS = ("rotate_bytes", "rotate_s", "fsync")


def path_of_file_url(url: str, *, key: str = "sinks.urls") -> Path:
    """``file:///a/b.jsonl`` -> /a/b.jsonl; ``file://./b.jsonl`` -> ./b.jsonl; ``file://~/b.jsonl``."""
    base, _ = split_query(url)
    parts = urlsplit(base)
    host, path = parts.netloc, unquote(parts.path)
    if host in ("", "localhost"):
        text = path
    elif host in (".", "..", "~"):
        text = host + path
    else:
        raise ConfigError(key, url, f"host {host!r} in a file URL; use file:///absolute/path.jsonl "
                                    "or file://./relative/path.jsonl")
    if not text or text.endswith("/"):
        raise ConfigError(key, url, "no file name; use file:///absolute/path.jsonl or file://./relative/path.jsonl")
    return Path(os.path.expanduser(text))


def _open_file(url: str, key: str) -> tuple[AppendOnlyFile, str]:
    path = path_of_file_url(url, key=key)
    opts = SinkOptions(url, split_query(url)[1], key=key)
    rotate_bytes = opts.size("rotate_bytes", 0)
    rotate_s = opts.number("rotate_s", 0.0)
    fsync = opts.boolean("fsync", True)
    opts.finish(_OPTIONS)
    return AppendOnlyFile(path, rotate_bytes=rotate_bytes, rotate_s=rotate_s, fsync=fsync, key=key), url


class JsonlSink:
    """Results as JSON lines; durable on return (fsync per batch)."""

    def __init__(self, url: str) -> None:
        self.file, self.url = _open_file(url, "sinks.urls")

    @property
    def path(self) -> Path:
        return self.file.path

    def write(self, results: Sequence[Result]) -> Sequence[Rejected]:
        self.file.append([r.to_json() + b"\n" for r in results])
        return []

    def close(self) -> None:
        self.file.close()


class JsonlDeadLetterSink:
    """Dead letters as JSON lines (original key/value base64, headers, the failure)."""

    def __init__(self, url: str) -> None:
        self.file, self.url = _open_file(url, "sinks.dead_letter")

    @property
    def path(self) -> Path:
        return self.file.path

    def write_letters(self, letters: Sequence[DeadLetter]) -> None:
        self.file.append([encode(d.to_dict()) + b"\n"
                          for d in letters])

    def close(self) -> None:
        self.file.close()


def read_lines(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every object in the rotated files and the live one, oldest first.

    A line that does not parse (only possible if the file was edited or the
    disk lied) is skipped with a warning rather than ending the read.
    """
    for seg in segments(path):
        with open(seg, "rb") as fh:
            for n, line in enumerate(fh, 1):
                if not line.endswith(b"\n"):
                    break              # a torn tail being written right now
                try:
                    doc = decode(line)
                except ValueError:
                    log.warning("%s line %d is not JSON; skipped", seg, n)
                    continue
                if isinstance(doc, dict):
                    yield doc


def read_results(path: str | os.PathLike[str]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The last line per key (model, postid, seqid): the JSONL sink's idempotent view."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for doc in read_lines(path):
        out[(str(doc.get("model")), str(doc.get("postid")), str(doc.get("seqid")))] = doc
    return out


def read_letters(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every dead letter, oldest first (``key_b64``/``value_b64`` hold the original bytes)."""
    return list(read_lines(path))
