"""The crash quarantine's durable record: what one partition's committed metadata says.

Field meanings and why the record lives in the commit metadata: docs/reliability.md,
"Crash quarantine".
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sidepath.core.errors import MessageError
from sidepath.worker.engine.offsets import TP

if TYPE_CHECKING:
    from sidepath.worker.engine.inflight import Inflight

__all__ = ["Record", "WorkerKilled", "mark_ahead", "next_high", "parse_record"]


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
    fetched; negative: unknown, and then no headroom).  Offsets past the end do not exist yet: a mark
    there would leave the next owner a suspect range it cannot finish until new messages arrive."""
    return max(offset + 1, min(offset + 1 + max(0, headroom), log_end))


def mark_ahead(records: dict[TP, Record], started: dict[TP, int], taken: list[Inflight], *,
               headroom: int, log_end: Callable[[TP], int]) -> set[TP]:
    """Before ``taken`` start: note each partition's last started offset in ``started``; if one of
    them reaches its partition's ``hi``, mark it ahead, and with it every partition that has used
    half of its headroom (one commit instead of one each soon after).  Returns the records changed
    (none: no commit needed).  Runs once per message on the critical path."""
    due = False
    for inf in taken:
        tp, offset = inf.tp, inf.source.offset
        started[tp] = offset
        if not due:
            known = records.get(tp)
            due = known is None or known.hi is None or offset >= known.hi
    changed: set[TP] = set()
    if due:
        half = headroom // 2
        for tp, offset in started.items():
            rec = records.get(tp) or records.setdefault(tp, Record())
            if rec.hi is None or rec.hi - offset <= half:
                hi = next_high(offset, headroom=headroom, log_end=log_end(tp))
                if hi != rec.hi:            # an idle partition at the log end: nothing new to mark
                    rec.hi = hi
                    changed.add(tp)
    return changed


def _int(v: Any) -> int | None:
    return None if v is None else int(v)
