"""Inline payloads: ``data:`` URLs (RFC 2397) and bare base64 (standard or URL-safe)."""
from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote_to_bytes

from sidepath.core.errors import FetchError
from sidepath.decoders.fetched import Fetched
from sidepath.decoders.refs import shown

__all__ = ["decode_inline"]

_SPACE = re.compile(r"\s+")


def _b64(text: str, where: str) -> bytes:
    s = _SPACE.sub("", text).replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FetchError(f"invalid base64 in {where}: {exc}; send standard or URL-safe base64") from exc


def decode_inline(text: str, *, max_bytes: int) -> Fetched:
    """The bytes of an inline reference; refuses oversized payloads before decoding them."""
    where = shown(text)
    content_type = ""
    if text[:5].lower() == "data:":
        header, comma, payload = text[5:].partition(",")
        if not comma:
            raise FetchError(f"malformed data: URL {where!r}: no comma before the payload")
        params = header.split(";")
        content_type = params[0].strip()
        is_b64 = any(p.strip().lower() == "base64" for p in params[1:])
    else:
        payload, is_b64 = text, True
    estimate = len(payload) * 3 // 4 if is_b64 else len(payload)
    if estimate > max_bytes:
        raise FetchError(f"inline data {where} is about {estimate} bytes, over decode.max_bytes={max_bytes}; "
                         f"send a URL instead or raise decode.max_bytes")
    data = _b64(payload, where) if is_b64 else unquote_to_bytes(payload)
    if len(data) > max_bytes:
        raise FetchError(f"inline data {where} is {len(data)} bytes, over decode.max_bytes={max_bytes}; "
                         f"send a URL instead or raise decode.max_bytes")
    return Fetched(source=where, size=len(data), data=data, content_type=content_type)
