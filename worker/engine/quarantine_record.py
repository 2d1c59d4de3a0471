"""The crash quarantine's durable record: what one partition's committed metadata says.

Field meanings and why the record lives in the commit metadata: docs/reliability.md,
"Crash quarantine".
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sidepath.core.errors import MessageError

__all__ = ["Record", "WorkerKilled", "next_high", "parse_record"]


class WorkerKilled(MessageError):
    """The worker died (signal, out of memory) each time it processed this message."""

    def __init__(self, stage: str, crashes: int) -> None:
        self.stage = stage
        super().__init__(f"the worker was killed while processing this message {crashes} times "
                         "(signal or out of memory); not retried")


@dataclass
class Record:
    """One partition's record (as last committed, or about to be).

    ``hi``: offsets [committed, hi) may be in flight; ``s``: end of a suspect range still to be
    processed in isolation; ``k``: {offset: crashes} of suspects alone in flight at a crash;
    ``iso``: the offset alone in flight now, ``st`` the stage it reached.
    """

    hi: int | None = None
    s: int | None = None
    k: dict[int, int] = field(default_factory=dict)
    iso: int | None = None
    st: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.hi is not None:
            out["hi"] = self.hi
        if self.s is not None:
            out["s"] = self.s
            if self.k:
                out["k"] = {str(o): n for o, n in self.k.items()}
        if self.iso is not None:
            out["iso"], out["st"] = self.iso, self.st
        return out


def parse_record(metadata: str | None) -> Record:
    """The quarantine part of a commit's metadata; an empty record for anything else (older commits)."""
    try:
        q = json.loads(metadata or "{}").get("q") or {}
        return Record(hi=_int(q.get("hi")), s=_int(q.get("s")),
                      k={int(o): int(n) for o, n in (q.get("k") or {}).items()},
                      iso=_int(q.get("iso")), st=str(q.get("st") or "infer"))
    except (ValueError, TypeError, AttributeError):
        return Record()


def next_high(offset: int, *, headroom: int, log_end: int) -> int:
    """The ``hi`` to mark before ``offset`` starts: ``headroom`` offsets past it, so that one marking
    commit covers the next messages too, but never past ``log_end`` (the partition's end as last
    fetched; a negative value: unknown).  Offsets past the end do not exist yet: a mark there would
    leave the next owner a suspect range it cannot finish until new messages arrive."""
    end = offset + 1 + max(0, headroom)
    if log_end >= 0:
        end = min(end, log_end)
    return max(end, offset + 1)


def _int(v: Any) -> int | None:
    return None if v is None else int(v)
