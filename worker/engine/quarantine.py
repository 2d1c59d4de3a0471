"""Crash quarantine: a message that kills the process must not stop its partition for good.

The engine's hooks (poll thread only).  Before messages start, the partition's record in the
group's committed metadata says which offsets may be in flight (``hi``, marked ahead with
headroom so that one synchronous commit covers several batches); a worker assigned a partition
whose committed offset lies below that mark knows its predecessor died with them in flight and
runs that range one message at a time, counting crashes per message.  The record and the
design: worker/engine/quarantine_record.py and docs/reliability.md, "Crash quarantine".
"""
from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaException, TopicPartition

from sidepath.core.logs import Throttle
from sidepath.worker.engine.offsets import TP
from sidepath.worker.engine.quarantine_hold import HeldBack
from sidepath.worker.engine.quarantine_record import Record, WorkerKilled, mark_ahead, parse_record
from sidepath.worker.ops.lag_figures import commit_metadata

if TYPE_CHECKING:
    from sidepath.worker.engine.inflight import Inflight

__all__ = ["Quarantine", "WorkerKilled", "parse_record"]

log = logging.getLogger(__name__)

_RETRY_EVERY_S = 0.5      # parked messages: how often their refused record commit is tried again


class Quarantine:
    """Engine hooks (all on the poll thread): ``assigned``, ``revoked``, ``filter``, ``before_start``,
    ``metadata``, ``close``.  Disabled (every hook a no-op) when ``max_crashes`` is 0."""

    def __init__(self, engine: Any, *, max_crashes: int, mark_ahead: int | None = None) -> None:
        """``engine``: the poll loop's Engine (which imports this module: not the class, no cycle).
        ``mark_ahead``: how far past a starting message ``hi`` is marked (0: just past it); by
        default ``engine.max_inflight_messages``, so a crash's suspect range at most about doubles."""
        self.engine, self.max_crashes = engine, max_crashes
        self.mark_ahead = engine.limits.max_inflight_messages if mark_ahead is None else mark_ahead
        self.enabled = max_crashes > 0
        self.records: dict[TP, Record] = {}           # durable state, as last committed
        self.suspects: dict[TP, int] = {}             # partition -> end of its suspect range
        self.held = HeldBack(engine)                  # messages consumed while isolating, not started
        self.iso: Inflight | None = None              # the message alone in flight
        self.marks = 0                                # marking commits of ``hi`` (tests, benchmarks)
        self._started: dict[TP, int] = {}             # the last offset started per partition
        self._unsynced: set[TP] = set()               # records changed here whose commit failed
        self._warn = Throttle()
        self.isolated = 0                             # messages run alone (for the summary)
        self._stages: dict[TP, dict[int, str]] = {}   # the stage each suspect last reached
        self.iso_pending = False                      # filter() handed out a suspect: start() runs it alone
        self.parked: list[Inflight] = []              # taken, not started: their record did not commit yet
        self._retry_at = 0.0                          # when retry_parked() may try their commit again

    @property
    def active(self) -> bool:
        return bool(self.suspects)

    @property
    def busy(self) -> bool:
        """Holding messages back: an --until-end run is not finished."""
        return self.active or bool(self.held)

    def assigned(self, committed: list[TopicPartition]) -> None:
        """After incremental_assign: read each partition's record; suspects start isolation."""
        if not self.enabled:
            return
        for tp in committed:
            key = (tp.topic, tp.partition)
            rec = parse_record(tp.metadata)
            c = tp.offset if tp.offset >= 0 else None
            end = max(rec.hi or -1, rec.s or -1)
            if c is None or end <= c:
                self.records[key] = Record()
                if self.active:
                    self.held.watch(key)
                continue
            counts = {o: n for o, n in rec.k.items() if o >= c}
            if rec.iso is not None and rec.iso >= c:
                counts[rec.iso] = counts.get(rec.iso, 0) + 1
                log.warning("the worker died while processing %s[%d] offset %d alone (%s stage; crash %d of %d)",
                            key[0], key[1], rec.iso, rec.st, counts[rec.iso], self.max_crashes,
                            extra={"topic": key[0], "partition": key[1], "offset": rec.iso})
            self.records[key] = Record(s=end, k=counts)
            self._stages[key] = {rec.iso: rec.st} if rec.iso is not None else {}
            self.suspects[key] = end
            log.warning("%s[%d]: offsets %d..%d were in flight when the previous owner died; processing them "
                        "one at a time", key[0], key[1], c, end - 1,
                        extra={"topic": key[0], "partition": key[1], "offset": c})

    def held_count(self, key: TP) -> int:
        return self.held.count(key)

    def revoked(self, keys: list[TP]) -> None:
        """After the revoke's commit: a revoke is no crash, so no ``hi`` and no ``iso``; the suspect
        range (if any) stays for the next owner."""
        if not self.enabled:
            return
        dirty = []
        for k in keys:
            rec = self.records.get(k)
            if rec is not None and (rec.hi is not None or rec.iso is not None):
                rec.hi, rec.iso = None, None
                dirty.append(k)
        if dirty:
            self.commit(dirty)

    def forget(self, keys: list[TP]) -> None:
        """After the revoke (or a loss): nothing of these partitions is ours any more."""
        for k in keys:
            self.records.pop(k, None)
            self.suspects.pop(k, None)
            self.held.forget(k)
            self._started.pop(k, None)
            self._unsynced.discard(k)
            if self.iso is not None and self.iso.tp == k:
                self.iso = None
        if not self.suspects:
            self._end_isolation()

    def consume_wait_s(self, normal_s: float) -> float:
        """While isolating, consume() must not block: the loop is waiting for one completion."""
        return 0.0 if self.enabled and self.active else normal_s

    def filter(self, msgs: list[Any]) -> list[Any]:
        """While isolating: hold back what was consumed, and hand out at most one suspect at a time."""
        if not self.enabled:
            return msgs
        if not self.active and not self.held:
            if self.held.paused:
                self.held.cap(isolating=False)     # resume what was paused for holding too much
            return msgs
        out = []
        tracker = self.engine.tracker
        for m in msgs:
            if m.error() is not None:
                out.append(m)
                continue
            key = (m.topic(), m.partition())
            if not tracker.owns(key):
                continue
            tracker.add(key, m.offset())       # never commit past a held message
            self.held.hold(key, m)
        self.held.cap(isolating=self.active)
        if self.active:
            if self.engine.inflight:
                return out
            self.iso, self.iso_pending = None, False
            while self.suspects:
                found, m = self._next_suspect()
                if found is None:
                    return out
                if m is None:
                    continue                       # that partition's range is done; look again
                crashes = self.records[found].k.get(m.offset(), 0)
                if crashes >= self.max_crashes:
                    self._give_up(m, crashes)
                    continue
                self.iso_pending = True
                return out + [m]
            self._end_isolation()
        # isolation over: what was held back goes, in order, as the in-flight cap leaves room
        room = max(0, self.engine.limits.max_inflight_messages - len(self.engine.inflight))
        return out + self.held.release(room)

    def _next_suspect(self) -> tuple[TP | None, Any]:
        """(partition, its next held suspect); (partition, None) when that partition's range is done;
        (None, None) when no suspect has been fetched yet."""
        for key, end in list(self.suspects.items()):
            first = self.held.first(key)
            if first is not None:
                if first.offset() < end:
                    return key, self.held.pop_first(key)
                self._range_done(key)
                return key, None
            try:
                pos = self.engine.consumer.position([TopicPartition(*key)])[0].offset
            except KafkaException:
                pos = -1
            if pos >= end:
                self._range_done(key)
                return key, None
        return None, None

    def _range_done(self, key: TP) -> None:
        self.suspects.pop(key, None)
        rec = self.records.get(key)
        if rec is not None:
            rec.s, rec.k = None, {}
        log.info("%s[%d]: the suspect range is done; back to normal processing", *key)

    def _give_up(self, m: Any, crashes: int) -> None:
        """An error result for every model and a dead letter, instead of running it again."""
        key = (m.topic(), m.partition())
        stage = self._stages.get(key, {}).get(m.offset(), "infer")
        for inf in self.engine._take([m]):
            self.engine.failures.fail(inf, stage, WorkerKilled(stage, crashes))

    def _end_isolation(self) -> None:
        """Partitions paused for holding too much resume as their backlog drains (``HeldBack.cap``)."""
        self.iso = None

    def before_start(self, taken: list[Inflight]) -> bool:
        """Make durable that these messages are about to start (a synchronous commit), before they do.

        A partition's ``hi`` is written only when a message reaches it, and then ``mark_ahead``
        past that message (within the fetched log), so one commit covers many batches; the price
        is a wider suspect range after a crash (docs/reliability.md).  Partitions whose marks are
        half used go along in the same commit, so that they do not each need their own soon."""
        if not self.enabled or not taken:
            return True
        changed = set(self._unsynced)        # a failed commit's records: retried before anything starts
        if self.active and self.iso_pending and len(taken) == 1:
            inf = taken[0]
            self.iso = inf
            rec = self.records.setdefault(inf.tp, Record())
            rec.iso, rec.st = inf.source.offset, "decode" if not self.engine.decode_stage.inline else "infer"
            self._stages.setdefault(inf.tp, {})[inf.source.offset] = rec.st
            changed.add(inf.tp)
        else:
            marked = mark_ahead(self.records, self._started, taken, headroom=self.mark_ahead,
                                log_end=self._log_end)
            if marked:
                self.marks += 1
                changed |= marked
        # other partitions' records ride along (their iso, if any, is finished)
        for k, rec in self.records.items():
            if rec.iso is not None and k not in changed:
                rec.iso = None
                changed.add(k)
        if not self.commit(changed):
            self._unsynced |= changed
            return False
        self._unsynced.clear()
        return True

    def _log_end(self, key: TP) -> int:
        """The partition's high watermark as last fetched (no broker call); -1 when not known."""
        try:
            return int(self.engine.consumer.get_watermark_offsets(TopicPartition(*key), cached=True)[1])
        except KafkaException:
            return -1

    def start(self, taken: list[Inflight]) -> None:
        """Mark ``taken`` durably, then start them.  A suspect runs alone: fetch and decode on this
        thread, so that its stage is on record (``infer`` once decoded) before the model sees it."""
        stage = self.engine.decode_stage
        if not self.enabled:
            if taken:
                stage.submit(taken)
            return
        if self.parked:         # their record failed to commit (a rebalance): try again, first
            inflight = self.engine.inflight
            taken = [inf for inf in self.parked if inflight.get(inf.source) is inf] + taken
            self.parked = []
        if not taken:
            return
        if not self.before_start(taken):
            # never start a message without its record: a killer among them would crash-loop unseen
            self.parked = taken
            return
        if self.iso_pending:
            self.iso_pending = False
            self.isolated += 1
        if self.iso is None or taken[0] is not self.iso:
            stage.submit(taken)
            return
        inf = self.iso
        if stage.inline:
            stage.submit(taken)
            return
        media = stage._run(inf)
        if media is None:
            return                              # failed and dead-lettered at fetch or decode
        rec = self.records.get(inf.tp)
        if rec is not None and rec.iso == inf.source.offset:
            rec.st = "infer"
            self._stages.setdefault(inf.tp, {})[inf.source.offset] = "infer"
            self.commit({inf.tp})
        stage._prepare([inf], [media])

    def retry_parked(self) -> None:
        """Start the parked messages once their record commits.  Called on every turn of the poll loop,
        not only when more messages come in: parked messages count as in flight, so at the in-flight
        cap nothing more comes in, and waiting for that would wait for ever.  At most every 0.5 s, so a
        rebalance that keeps refusing the commit is not asked again at the loop's pace."""
        if not self.parked:
            return                        # the usual case, on every turn of the loop: no clock read
        now = time.monotonic()
        if now >= self._retry_at:
            self._retry_at = now + _RETRY_EVERY_S
            self.start([])

    def metadata(self, key: TP, base: str) -> str:
        """The commit metadata of ``key``: the engine's (commit time) plus the quarantine record."""
        rec = self.records.get(key) if self.enabled else None
        if rec is None:
            return base
        q = rec.to_json()
        if not q:
            return base
        doc = json.loads(base)
        doc["q"] = q
        return json.dumps(doc, separators=(",", ":"))

    def commit(self, keys: set[TP] | list[TP]) -> bool:
        """Commit the safe offset of ``keys`` with their records, synchronously."""
        eng = self.engine
        base = commit_metadata()
        tps = []
        for k in keys:
            off = eng.tracker.safe_offset(k)
            if off is None:
                continue
            tps.append(TopicPartition(k[0], k[1], off, metadata=self.metadata(k, base)))
        if not tps:
            return True
        try:
            eng.consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            eng.metrics.commit_failures.inc()
            if self._warn.due("commit"):
                log.warning("quarantine commit failed (%s); the messages wait until their crash record "
                            "is committed", exc.args[0])
            return False
        for tp in tps:
            eng.tracker.mark_committed((tp.topic, tp.partition), tp.offset)
        return True

    def drop_parked(self) -> None:
        """Shutting down: messages that never started are not waited for (they stay uncommitted)."""
        inflight = self.engine.inflight
        for inf in self.parked:
            if inflight.get(inf.source) is inf:
                del inflight[inf.source]
                self.engine._release(inf)
        self.parked = []

    def close(self) -> None:
        """Clean shutdown: no ``hi``, no ``iso`` (an unfinished suspect range is kept)."""
        if not self.enabled:
            return
        dirty = [k for k, rec in self.records.items() if rec.hi is not None or rec.iso is not None]
        for k in dirty:
            self.records[k].hi, self.records[k].iso = None, None
        if dirty:
            self.commit(dirty)

