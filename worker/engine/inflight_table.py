"""The intake and completion core that ``sidepath run`` and ``sidepath backfill`` share.

A source (the poll loop's Kafka messages, backfill's rows) hands ``admit`` one
``Inflight`` record per message: its coordinates (``source``), key, value, headers,
size and how many models' results it waits for.  ``admit`` tracks each record,
parses its request and dead-letters one that is not a request (an error result per
model, which flows on like a success); it returns the records to decode, which the
caller submits (the poll loop through the crash quarantine).

``drain`` applies what the sink writer reports (one list of completions per
write): each model's result is counted in (``on_result``: the commit strategy holds
it for its transaction, backfill notes the first errors), and the messages whose
every result is in leave the table and are returned.  What a finished message means
is the caller's: the poll loop marks its offset done, backfill counts and checkpoints it.

Only the caller's thread uses a table, except ``add_bytes`` (decode threads, under a lock).
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable

from sidepath.core.errors import BadRequest
from sidepath.sinks.base import Result, SourceRef
from sidepath.worker.engine.handoff import CompletionQueue
from sidepath.worker.engine.inflight import Completion, Inflight
from sidepath.worker.engine.request import Parse, parse_request
from sidepath.worker.engine.stages import Failures

__all__ = ["InflightTable"]


def _ignore(inf: Inflight, result: Result) -> None:
    pass


class InflightTable:
    """The messages taken from a source whose results are not all durable yet."""

    def __init__(self, completions: CompletionQueue, failures: Failures, *,
                 parse: Parse = parse_request,
                 on_result: Callable[[Inflight, Result], None] = _ignore) -> None:
        self.completions, self.failures, self.parse, self.on_result = completions, failures, parse, on_result
        self.inflight: dict[SourceRef, Inflight] = {}      # never rebound: the crash quarantine holds it too
        self._message_bytes = 0              # the caller's thread only
        self._media_bytes = 0                # added by decode threads, under the lock
        self._bytes_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.inflight)

    @property
    def nbytes(self) -> int:
        """The messages in flight plus their decoded media."""
        return self._message_bytes + self._media_bytes

    def add_bytes(self, inf: Inflight, n: int) -> None:
        """Decode threads: ``n`` bytes of decoded media now held for ``inf``."""
        with self._bytes_lock:
            inf.media_nbytes += n
            self._media_bytes += n

    def admit(self, records: Iterable[Inflight]) -> list[Inflight]:
        """Track ``records`` and parse their requests; returns those to decode (in order).  Runs once
        per message on the critical path: attributes are looked up once per call."""
        inflight, parse, fail = self.inflight, self.parse, self.failures.fail
        ready: list[Inflight] = []
        nbytes = 0
        for inf in records:
            inflight[inf.source] = inf
            nbytes += inf.nbytes
            try:
                inf.request = parse(inf.value, inf.source)
            except BadRequest as exc:
                fail(inf, "parse", exc)
                continue
            ready.append(inf)
        self._message_bytes += nbytes
        return ready

    def drain(self, timeout_s: float) -> list[Inflight]:
        """Apply every completion queued now, waiting up to ``timeout_s`` for the first; returns the
        messages they finished (every model's result in), which have left the table."""
        completions = self.completions
        first = _get_within(completions, timeout_s)
        if first is None:
            return []
        lists = [first]
        while True:
            try:
                lists.append(completions.get_nowait())
            except queue.Empty:
                break
        inflight, on_result = self.inflight, self.on_result
        finished: list[Inflight] = []
        for done in lists:
            for c in done:
                inf = c.inflight
                src = inf.source
                if inflight.get(src) is not inf:          # from a revoked assignment: discard
                    continue
                inf.remaining -= 1
                if c.result.msg:
                    inf.failed = True
                on_result(inf, c.result)
                if inf.remaining > 0:
                    continue
                del inflight[src]
                self.release(inf)
                finished.append(inf)
        return finished

    def release(self, inf: Inflight) -> None:
        """``inf`` has left the table (finished, revoked or dropped): its bytes no longer count."""
        self._message_bytes -= inf.nbytes
        if inf.media_nbytes:
            with self._bytes_lock:
                self._media_bytes -= inf.media_nbytes

    def drop(self, tp: tuple[str, int]) -> None:
        """Forget every message of partition ``tp`` (revoked or lost); their late completions are discarded."""
        inflight = self.inflight
        for src in [s for s in inflight if (s[0], s[1]) == tp]:
            self.release(inflight.pop(src))


def _get_within(q: CompletionQueue, timeout_s: float) -> list[Completion] | None:
    """The next item within ``timeout_s``, or None.  Not ``q.get(timeout=...)``: on the main thread a
    signal (SIGTERM) that interrupts it can leave it waiting for ever (CPython 3.11, seen as a stop
    that hung), so poll in 2 ms steps."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return q.get_nowait()
        except queue.Empty:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(0.002, left))
