"""Parse and validate one input message into a ``Request``.

Input contract (DESIGN.md): JSON object with ``postid``, ``uid``, ``seqid``
(strings or integers) and at least one of ``video``, ``image``, ``audio``,
``data`` (URL, path or inline base64).  Other fields are carried through.
Anything else raises ``BadRequest`` with a one-line reason.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from sidepath.core.errors import BadRequest
from sidepath.decoders.base import MEDIA_KINDS
from sidepath.sinks.base import SourceRef
from sidepath.sinks.json_codec import decode

__all__ = ["Request", "Parse", "parse_request", "ids_from_raw", "MAX_MESSAGE_BYTES", "MAX_DEPTH"]

ID_FIELDS = ("postid", "uid", "seqid")
MAX_MESSAGE_BYTES = 1_000_000
MAX_ID_CHARS = 256
MAX_DEPTH = 64                 # nesting of objects and arrays in one message
_NOT_EXTRA = frozenset((*ID_FIELDS, *MEDIA_KINDS))


# not frozen: one is built per message, and a frozen dataclass costs 2-3x to construct; never mutated
@dataclass(slots=True)
class Request:
    postid: str
    uid: str
    seqid: str
    kind: str                      # which media field is used
    ref: str                       # URL, path or base64 payload
    source: SourceRef
    extra: dict[str, Any] = field(default_factory=dict)


def _as_id(name: str, value: Any) -> str:
    """An id that is not a plain string of 1..MAX_ID_CHARS characters (``parse_request`` lets
    those through without a call): an integer becomes its text, anything else is refused."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequest(f"field {name!r} must be a string or an integer, got {type(value).__name__}")
    text = str(value)
    if not text or len(text) > MAX_ID_CHARS:
        raise BadRequest(f"field {name!r} must be 1..{MAX_ID_CHARS} characters, got {len(text)}")
    return text


def _deeper_than(doc: Any, limit: int) -> bool:
    """Whether objects and arrays nest more than ``limit`` levels (walked without recursion)."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children)
    return False


#: a message's value and coordinates -> its Request (raises BadRequest); tests may pass their own
Parse: TypeAlias = "Callable[[bytes | None, SourceRef], Request]"


def parse_request(value: bytes | None, source: SourceRef) -> Request:
    if value is None:
        raise BadRequest("empty message (null value); send a JSON object with postid, uid, seqid and a media field")
    if len(value) > MAX_MESSAGE_BYTES:
        raise BadRequest(f"message is {len(value)} bytes, over the {MAX_MESSAGE_BYTES}-byte cap; "
                         "send media by URL rather than inline")
    try:
        doc = decode(value)
    except RecursionError:
        raise BadRequest(f"not JSON: nested too deeply to parse; at most {MAX_DEPTH} levels are accepted") from None
    except ValueError as exc:
        raise BadRequest(f"not JSON: {str(exc)[:120]}") from None
    if type(doc) is not dict:
        raise BadRequest(f"JSON must be an object, got {type(doc).__name__}")
    # depth <= the number of opening brackets: counting them (in C) spares the walk for most messages
    if value.count(b"{") + value.count(b"[") > MAX_DEPTH and _deeper_than(doc, MAX_DEPTH):
        # extra fields are carried into every result: a sink would hit the recursion limit
        # encoding them and retry that batch until the worker gives up (a poison message)
        raise BadRequest(f"JSON nested more than {MAX_DEPTH} levels deep; flatten the extra fields")
    # once per message on the poll loop: the common case (string ids, one media field) is checked
    # inline; anything else takes the general checks, which word the errors
    try:
        postid, uid, seqid = doc["postid"], doc["uid"], doc["seqid"]
    except KeyError:
        missing = [f for f in ID_FIELDS if f not in doc]
        raise BadRequest(f"missing field(s) {', '.join(missing)}; every request needs postid, uid and seqid") from None
    if not (type(postid) is str and 0 < len(postid) <= MAX_ID_CHARS):
        postid = _as_id("postid", postid)
    if not (type(uid) is str and 0 < len(uid) <= MAX_ID_CHARS):
        uid = _as_id("uid", uid)
    if not (type(seqid) is str and 0 < len(seqid) <= MAX_ID_CHARS):
        seqid = _as_id("seqid", seqid)
    for kind in MEDIA_KINDS:
        ref = doc.get(kind)
        if ref:
            break
    else:
        raise BadRequest(f"no media: set one of {', '.join(MEDIA_KINDS)} to a URL, path or base64 payload")
    if type(ref) is not str:
        raise BadRequest(f"field {kind!r} must be a string (URL, path or base64), got {type(ref).__name__}")
    # most messages carry nothing else: ids + one media field
    extra = {k: v for k, v in doc.items() if k not in _NOT_EXTRA} if len(doc) > 4 else {}
    return Request(postid, uid, seqid, kind, ref, source, extra)


def ids_from_raw(value: bytes | None) -> tuple[str, str, str]:
    """Best-effort ids of a message that failed to parse, for its error result."""
    try:
        doc = decode(value or b"")
    except (ValueError, RecursionError):
        return ("", "", "")
    if not isinstance(doc, dict):
        return ("", "", "")
    out = []
    for f in ID_FIELDS:
        v = doc.get(f)
        out.append(str(v)[:MAX_ID_CHARS] if isinstance(v, (str, int)) and not isinstance(v, bool) else "")
    return tuple(out)  # type: ignore[return-value]
