"""What a media reference is: an http(s) URL, a local path, or inline base64.

``classify_ref`` decides once, from the text alone, so that every later error
names the right thing.  ``shown`` shortens a reference and hides credentials
for messages and logs (inline payloads can be megabytes long).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sidepath.core.errors import FetchError
from sidepath.core.masking import mask_url

__all__ = ["Ref", "classify_ref", "shown", "SCHEMES"]

#: schemes a reference may use; anything else is refused with this list in the message
SCHEMES = ("http", "https", "file", "data")

# Raw base64 is recognised by shape: long enough and made of the base64 alphabet
# only (the URL-safe one too).  A relative path such as "clips/a.mp4" has a dot or
# is short, so the two do not collide in practice.
_B64_RE = re.compile(r"[A-Za-z0-9+/_\-\s]+={0,2}\s*")
_MIN_RAW_B64 = 32
_JPEG_B64 = "/9j/"
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")


@dataclass(frozen=True, slots=True)
class Ref:
    """A classified reference: ``kind`` is one of http, file, inline."""

    kind: str
    text: str


def shown(ref: str, limit: int = 120) -> str:
    """The reference as a message may show it: no user:password, at most ``limit`` characters."""
    text = ref.strip()
    if text[:5].lower() == "data:" or (len(text) > limit and _B64_RE.fullmatch(text[:4096])):
        return f"{text[:24]}... ({len(text)} characters inline)"
    text = mask_url(text, keep_user=False)      # signed URLs' tokens too
    return text if len(text) <= limit else text[: limit - 3] + "..."


def classify_ref(ref: str) -> Ref:
    """Classify ``ref`` or raise ``FetchError`` naming the unsupported scheme."""
    if not isinstance(ref, str) or not ref.strip():
        raise FetchError("empty media reference; send an http(s) URL, a local path or base64 data")
    text = ref.strip()
    m = _SCHEME_RE.match(text)
    if m and len(m.group(1)) > 1:                 # "C:" style drive letters are not schemes
        scheme = m.group(1).lower()
        if scheme in ("http", "https"):
            return Ref("http", text)
        if scheme == "file":
            return Ref("file", text)
        if scheme == "data":
            return Ref("inline", text)
        if text[m.end():m.end() + 2] == "//" or scheme in _KNOWN_OTHER_SCHEMES:
            raise FetchError(f"unsupported URL scheme {scheme!r} in {shown(text)!r}; "
                             f"use http(s)://, file://, data: or inline base64")
    # bare base64 of every JPEG starts with "/9j/" (bytes FF D8 FF): not an absolute path
    if text.startswith(_JPEG_B64) and len(text) >= _MIN_RAW_B64 and _B64_RE.fullmatch(text[:4096]):
        return Ref("inline", text)
    if text.startswith(("/", ".", "~")):
        return Ref("file", text)
    if len(text) >= _MIN_RAW_B64 and _B64_RE.fullmatch(text[:4096]):
        return Ref("inline", text)
    return Ref("file", text)


# schemes written without "//" that must never be mistaken for a relative path
_KNOWN_OTHER_SCHEMES = frozenset({"javascript", "mailto", "urn", "tel", "blob", "about", "jar", "gopher"})
