"""JSON in and out of the hot path: orjson, with the standard library where they differ.

Every message is parsed once and every result encoded once, so these two calls
are a large share of the engine's per-message cost: orjson does each 5-9x
faster than ``json`` (docs/benchmarks.md).  Its answers are kept identical to
``json``'s where orjson would differ:

- ``decode``: orjson refuses NaN/Infinity, a byte-order mark, UTF-16/32 and
  lone surrogates, which ``json`` accepts; it reads integers beyond 64 bits as
  floats.  Any error, or a run of 19+ digits (the only way to write such an
  integer), goes to ``json.loads``, so values and error texts stay ``json``'s.
- ``encode``: compact UTF-8; numpy values become plain numbers and lists, other
  unknown types their ``str``.  What orjson cannot encode (integers beyond 64
  bits, nesting past 254 levels) goes to ``json.dumps``.  One difference is
  kept on purpose: orjson writes NaN and infinities as ``null`` -- ``json``
  writes ``NaN``, which is not JSON and which consumers of a result topic reject.
"""
from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = ["decode", "encode", "plain"]

_LONG_NUMBER = re.compile(rb"\d{19}")     # 19 digits: -9223372036854775809 is already past int64
_DIGITS = b"0123456789"
_OPTIONS = orjson.OPT_NON_STR_KEYS


def plain(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values; anything else unknown as its text."""
    for attr in ("tolist", "item"):
        if hasattr(value, attr):
            return getattr(value, attr)()
    return str(value)


def decode(data: bytes) -> Any:
    """``json.loads``, fast; raises ValueError (or RecursionError) exactly where it does."""
    # counting digits (in C) first: most messages have too few to need the search
    if len(data) - len(data.translate(None, _DIGITS)) < 19 or _LONG_NUMBER.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def encode(value: Any) -> bytes:
    """Compact UTF-8 JSON bytes of ``value``."""
    try:
        return orjson.dumps(value, default=plain)
    except TypeError:           # orjson.JSONEncodeError is one
        pass
    try:                        # keys that are not strings (json writes them as text): a slower option
        return orjson.dumps(value, default=plain, option=_OPTIONS)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=plain).encode()
