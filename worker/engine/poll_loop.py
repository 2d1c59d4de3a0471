"""The poll loop: consume, dispatch, track, commit, rebalance, backpressure, shutdown.

Only this thread touches the consumer's assignment, the offset tracker and the
in-flight counters; the stages report back through the completion queue.
The commit order, on every path (timer, count, revoke, shutdown):

1. completions drained: an offset is done when every model's result (or its
   error result + dead letter) is durable;
2. per partition, the lowest offset not yet done (or the position, when
   nothing is pending) is committed -- never past an unwritten result.

How step 2 commits is the commit strategy's (``worker/engine/commit.py``): plain
offsets, or with exactly-once a Kafka transaction that writes the held results
below those offsets together with the offsets (step 1 then means "result ready").
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from sidepath.core.errors import BadRequest, FatalError
from sidepath.models.base import Model
from sidepath.sinks.base import SourceRef
from sidepath.worker.config import EngineConfig
from sidepath.worker.engine.backpressure import Backpressure
from sidepath.worker.engine.commit import CommitStrategy, PlainCommit, committed_offsets
from sidepath.worker.engine.consumer_close import close_consumer
from sidepath.worker.engine.inflight import Completion, Inflight
from sidepath.worker.engine.offsets import TP, OffsetTracker
from sidepath.worker.engine.pacing import Pacer
from sidepath.worker.engine.quarantine import Quarantine
from sidepath.worker.engine.request import parse_request
from sidepath.worker.engine.stages import DecodeStage, Failures
from sidepath.worker.engine.until_end import EndOffsets
from sidepath.worker.jobs.lag import commit_metadata
from sidepath.worker.ops.health import Health, PollSnapshot
from sidepath.worker.ops.metrics import Metrics

__all__ = ["Engine", "StartAt"]

log = logging.getLogger(__name__)

#: "beginning", an epoch-ms timestamp, or None (committed offsets / auto.offset.reset)
StartAt = Any


@dataclass
class _Stats:
    taken: int = 0
    done: int = 0
    errors: int = 0
    commits: int = 0
    rebalances: int = 0
    first_take: float | None = None
    last_done: float | None = None


class Engine:
    def __init__(self, consumer: Consumer, *, topic: str, group: str, models: Sequence[Model],
                 decode_stage: DecodeStage, failures: Failures, completions: queue.SimpleQueue[list[Completion]],
                 metrics: Metrics, limits: EngineConfig, start: StartAt = None, until_end: bool = False,
                 max_messages: int = 0, is_blocked: Callable[[], bool] = lambda: False,
                 health: Health | None = None,
                 parse: Callable[[bytes | None, SourceRef], Any] = parse_request,
                 commit: CommitStrategy | None = None, pacer: Pacer | None = None) -> None:
        self.consumer, self.topic, self.group, self.models = consumer, topic, group, models
        self.decode_stage, self.failures, self.completions = decode_stage, failures, completions
        self.metrics, self.limits, self.start = metrics, limits, start
        self.until_end, self.max_messages, self.is_blocked = until_end, max_messages, is_blocked
        self.health, self.parse = health, parse
        self.committer: CommitStrategy = commit if commit is not None else PlainCommit(consumer)
        self.pacer = pacer if pacer is not None and pacer.active else None   # budgets, run windows, yielding
        self.tracker = OffsetTracker()
        self.inflight: dict[SourceRef, Inflight] = {}     # a SourceRef is a (topic, partition, offset) tuple
        self._message_bytes = 0              # poll loop only
        self._media_bytes = 0                # added by decode threads, under the lock
        self._bytes_lock = threading.Lock()
        self.flow = Backpressure(limits, metrics, is_blocked=is_blocked, pacer=self.pacer)
        self.stop_event = threading.Event()
        self.fatal: BaseException | None = None
        self.ends = EndOffsets()        # until_end: where each partition stops
        self._seen_partitions: set[TP] = set()
        self._done_since_commit = 0
        self._last_commit = time.monotonic()
        self.last_poll = time.time()
        self.assigned_once = False
        self.closing = False
        self.stats = _Stats()
        # crash quarantine (worker/engine/quarantine.py); not with exactly-once, whose offsets move only in transactions
        self.quarantine = Quarantine(self, max_crashes=limits.max_crashes if self.committer.allows_quarantine else 0)
        self._publish()         # liveness counts from here until the first poll

    # ---- called from other threads -------------------------------------------------
    def request_stop(self) -> None:
        self.stop_event.set()

    def report_fatal(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        self.stop_event.set()

    @property
    def paused(self) -> bool:
        """The partitions are paused (backpressure or pacing)."""
        return self.flow.paused

    @property
    def inflight_bytes(self) -> int:
        return self._message_bytes + self._media_bytes

    def add_bytes(self, inf: Inflight, n: int) -> None:
        with self._bytes_lock:
            inf.media_nbytes += n
            self._media_bytes += n

    # ---- rebalance callbacks (run inside consume(), on this thread) ----------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.stats.rebalances += 1
        self.metrics.rebalances.labels("assign").inc()
        committed: dict[TP, int | None] = {}
        committed_tps: list[TopicPartition] = []
        try:
            committed_tps = self._committed_tps([(p.topic, p.partition) for p in partitions])
            committed = {(p.topic, p.partition): (p.offset if p.offset >= 0 else None) for p in committed_tps}
        except KafkaException as exc:
            log.warning("could not read committed offsets on assignment: %s", exc)
        for p in partitions:
            key = (p.topic, p.partition)
            self.tracker.assign(key, committed.get(key))
        self._publish()
        fresh = [p for p in partitions if (p.topic, p.partition) not in self._seen_partitions]
        if self.start is not None and fresh:
            self._apply_start(fresh)
        if self.until_end:
            self.ends.record(consumer, fresh, start_given=self.start is not None, committed=committed)
        self._seen_partitions.update((p.topic, p.partition) for p in partitions)
        consumer.incremental_assign(partitions)
        if self.paused:
            consumer.pause(partitions)   # re-apply backpressure to new partitions
        self.assigned_once = True
        log.info("assigned %s", _names(partitions))
        self.quarantine.assigned(committed_tps)

    def _apply_start(self, partitions: list[TopicPartition]) -> None:
        if self.start == "beginning":
            for p in partitions:
                p.offset = OFFSET_BEGINNING
            return
        query = [TopicPartition(p.topic, p.partition, int(self.start)) for p in partitions]
        found = {(t.topic, t.partition): t.offset for t in self.consumer.offsets_for_times(query, timeout=10)}
        for p in partitions:
            off = found.get((p.topic, p.partition), -1)
            if off is None or off < 0:   # no message at or after the time: start at the end
                _lo, off = self.consumer.get_watermark_offsets(p, timeout=10)
            p.offset = off

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.stats.rebalances += 1
        self.metrics.rebalances.labels("revoke").inc()
        keys = [(p.topic, p.partition) for p in partitions]
        # while shutting down the grace period has been spent already: commit what is done, no more waiting
        budget = 0.0 if self.closing else self.limits.revoke_budget_s
        deadline = time.monotonic() + budget
        q = self.quarantine
        while any(self.tracker.pending(k) - q.held_count(k) for k in keys) and time.monotonic() < deadline \
                and self.fatal is None:
            self._drain_completions(timeout_s=0.05)
        self._commit(asynchronous=False, only=keys)
        q.revoked(keys)         # the suspect range (if any) stays in the metadata for the next owner
        # and what is done but not committed (held for a transaction): the next owner redoes them
        dropped = sum(self.tracker.revoke(k) for k in keys) + self.committer.drop(keys)
        self._forget(keys)
        self._publish()
        if dropped:
            log.warning("revoked %s with %d unfinished messages (the next owner redoes them)",
                        _names(partitions), dropped)
        else:
            log.info("revoked %s", _names(partitions))
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("lost").inc()
        keys = [(p.topic, p.partition) for p in partitions]
        dropped = sum(self.tracker.revoke(k) for k in keys) + self.committer.drop(keys)
        self._forget(keys)
        self._publish()
        log.warning("lost %s (%d unfinished messages dropped, nothing committed)", _names(partitions), dropped)
        consumer.incremental_unassign(partitions)

    def _forget(self, keys: list[TP]) -> None:
        self.quarantine.forget(keys)
        if self.health is not None:
            self.health.forget(keys)
        for k in keys:
            self.metrics.forget_partition(k[0], k[1], self.group)
            for inf_key in [ik for ik in self.inflight if (ik[0], ik[1]) == k]:
                self._release(self.inflight.pop(inf_key))

    # ---- the loop --------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        try:
            while not self.stop_event.is_set():
                self._poll_once()
                if self._finished():
                    log.info("reached the end offsets taken at start; stopping")
                    break
            self._shutdown()
        except KafkaException as exc:
            self.fatal = self.fatal or FatalError(f"Kafka: {exc.args[0]}")
            self._close_consumer()
        return self.summary()

    def _publish(self) -> None:
        """What the HTTP checks read (worker/ops/health.py): never the tracker itself, from their thread."""
        if self.health is not None:
            self.health.publish(PollSnapshot(self.last_poll, tuple(self.tracker.partitions())))

    def _poll_once(self) -> None:
        self.last_poll = time.time()
        self.metrics.last_poll.set(self.last_poll)
        self._publish()
        if self.flow.over and not self.flow.paused:
            # at a cap: wait for completions rather than take more; pausing (which makes librdkafka
            # drop its prefetched messages and refetch later) only when this lasts -- see worker/engine/backpressure.py
            self._drain_completions(timeout_s=0.05)
        else:
            # never take more than the caps leave room for
            n = max(1, min(self.limits.consume_batch, self.limits.max_inflight_messages - len(self.inflight)))
            if self.max_messages:
                n = max(1, min(n, self.max_messages - self.stats.taken))
            if self.pacer is not None:
                n = self.pacer.room(n)
            msgs = self.quarantine.filter(self.consumer.consume(n, self.quarantine.consume_wait_s(0.1)))
            if self.pacer is not None and msgs:
                self.pacer.charge(len(msgs), sum(len(m) for m in msgs))
            taken = self._take(msgs)
            self.quarantine.start(taken)      # marks them durably, then hands them to the decode stage
            self._drain_completions(timeout_s=0.0 if msgs else 0.02)
        self._backpressure()
        if (self._done_since_commit >= self.limits.commit_every
                or time.monotonic() - self._last_commit >= self.limits.commit_interval_s):
            self._commit(asynchronous=True)
        if self.health is not None:
            self.health.tick(self)

    def _take(self, msgs: list[Any]) -> list[Inflight]:
        """Track the messages of one consume() call; returns those ready to decode.
        Runs once per message on the critical path: attributes are looked up once per call."""
        taken: list[Inflight] = []
        tracker, inflight, parse, n_models = self.tracker, self.inflight, self.parse, len(self.models)
        until_end, end_offsets = self.until_end, self.ends.end
        t0 = time.monotonic()           # one clock reading per call: they were fetched together
        nbytes_total = tracked = 0
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.fatal():
                    raise KafkaException(err)
                log.warning("consumer error: %s", err.str())
                continue
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            key = (topic, partition)
            if not tracker.owns(key):           # fetched before a revoke: the next owner has it
                continue
            if until_end and offset >= end_offsets.get(key, offset + 1):
                continue                        # produced after the start: left for the next run
            source = SourceRef(topic, partition, offset)
            epoch = tracker.add(key, offset)
            ts_type, ts = m.timestamp()
            value = m.value()
            headers = m.headers()
            nbytes = len(value) if value else 0
            inf = Inflight(source, epoch, m.key(), value, tuple(headers) if headers else (),
                           ts if ts_type else None, None, n_models, nbytes, 0, t0)
            inflight[source] = inf
            nbytes_total += nbytes
            tracked += 1
            try:
                inf.request = parse(value, source)
            except BadRequest as exc:
                self.failures.fail(inf, "parse", exc)
                continue
            taken.append(inf)
        if tracked:
            self._message_bytes += nbytes_total
            self.stats.taken += tracked
            if self.stats.first_take is None:
                self.stats.first_take = t0
        return taken

    def _drain_completions(self, timeout_s: float) -> None:
        """Apply every completion queued now (the sink writer sends one list per write)."""
        try:
            done = self.completions.get(timeout=timeout_s) if timeout_s > 0 else self.completions.get_nowait()
        except queue.Empty:
            return
        lists = [done]
        while True:
            try:
                lists.append(self.completions.get_nowait())
            except queue.Empty:
                break
        now = time.monotonic()
        latencies: list[float] = []         # of the messages finished now: one histogram update per drain
        errors = 0
        for done in lists:
            errors += self._complete(done, now, latencies)
        if latencies:
            self.metrics.end_to_end_seconds.observe_many(latencies)
            self.stats.last_done = now
            self.stats.done += len(latencies)
            self.stats.errors += errors
            self._done_since_commit += len(latencies)
            if len(latencies) > errors:
                self.metrics.messages.labels("ok").inc(len(latencies) - errors)
            if errors:
                self.metrics.messages.labels("error").inc(errors)

    def _complete(self, done: list[Completion], now: float, latencies: list[float]) -> int:
        """Apply one model's results; a message is done when every model's result is in.  Appends
        the latency of each message done to ``latencies``; returns how many of them failed."""
        inflight, tracker = self.inflight, self.tracker
        result_in, message_done = self.committer.result_in, self.committer.message_done
        errors = 0
        for c in done:
            inf = c.inflight
            src = inf.source
            if inflight.get(src) is not inf:          # from a revoked assignment: discard
                continue
            inf.remaining -= 1
            if c.result.msg:
                inf.failed = True
            result_in(inf, c.result)
            if inf.remaining > 0:
                continue
            del inflight[src]
            self._release(inf)
            if tracker.done((src.topic, src.partition), src.offset, inf.epoch):
                message_done((src.topic, src.partition), src.offset, inf)
            latencies.append(now - inf.t0)
            errors += inf.failed
        return errors

    def _release(self, inf: Inflight) -> None:
        self._message_bytes -= inf.nbytes
        if inf.media_nbytes:
            with self._bytes_lock:
                self._media_bytes -= inf.media_nbytes

    def _backpressure(self) -> None:
        n = len(self.inflight) + self.committer.held_messages   # finished, but held until their transaction
        limit_reached = bool(self.max_messages and self.stats.taken >= self.max_messages)
        self.flow.update(self.consumer, n, self.inflight_bytes, limit_reached)

    def committed_offsets(self, keys: list[TP]) -> dict[TP, int | None]:
        """The group's committed offsets (raises KafkaException when the broker cannot say)."""
        return committed_offsets(self.consumer, keys)

    def _committed_tps(self, keys: list[TP]) -> list[TopicPartition]:
        """The group's committed offsets with their metadata."""
        result: list[TopicPartition] = self.consumer.committed([TopicPartition(t, p) for t, p in keys], timeout=10)
        return result

    def _positions(self, keys: list[TP]) -> dict[TP, int]:
        try:
            pos = {(p.topic, p.partition): p.offset
                   for p in self.consumer.position([TopicPartition(t, q) for t, q in keys])}
        except KafkaException:
            return {}
        return self.ends.clamp(pos) if self.until_end else pos

    def _commit(self, *, asynchronous: bool, only: list[TP] | None = None) -> None:
        self._last_commit = time.monotonic()
        keys = only if only is not None else self.tracker.partitions()
        drained = [k for k in keys if self.tracker.pending(k) == 0]
        offsets = self.tracker.committable(self._positions(drained) if drained else None)
        if only is not None:
            offsets = {k: v for k, v in offsets.items() if k in only}
        if not offsets:
            return
        meta, quarantine = commit_metadata(), self.quarantine
        try:
            landed = self.committer.commit(offsets, lambda tp: quarantine.metadata(tp, meta),
                                           asynchronous=asynchronous)
        except FatalError as exc:
            self.report_fatal(exc)
            return
        if not landed:
            self.metrics.commit_failures.inc()
            return
        self.metrics.commits.inc()
        self.stats.commits += 1
        for (t, p), o in offsets.items():
            self.tracker.mark_committed((t, p), o)
        self._done_since_commit = 0

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's commit callback (async commits): count failures."""
        failed = [p for p in partitions if err is not None or p.error is not None]
        if failed:
            self.metrics.commit_failures.inc()
            log.warning("async commit failed (%s); committing again next round", err or failed[0].error)
        for p in failed:   # e.g. ILLEGAL_GENERATION during a rebalance: never leave it uncommitted
            self.tracker.commit_failed((p.topic, p.partition), p.offset)

    def _finished(self) -> bool:
        if self.max_messages and self.stats.taken >= self.max_messages and not self.inflight:
            return True
        if not self.until_end or not self.assigned_once or self.inflight or self.quarantine.busy:
            return False
        keys = self.tracker.partitions()
        return self.ends.reached(keys, self._positions(keys))

    # ---- shutdown ------------------------------------------------------------------
    def _shutdown(self) -> None:
        """Stop taking work, drain within the grace period, commit, leave the group."""
        try:
            self.consumer.pause(self.consumer.assignment())
        except KafkaException:
            pass
        self.quarantine.drop_parked()
        deadline = time.monotonic() + self.limits.shutdown_grace_s
        while self.inflight and time.monotonic() < deadline and self.fatal is None:
            self._drain_completions(timeout_s=0.05)
            self.metrics.last_poll.set(time.time())
        if self.inflight:
            log.warning("stopping with %d unfinished messages (not committed; redone after restart)",
                        len(self.inflight))
        self._commit(asynchronous=False)
        for _ in range(3):      # an aborted last transaction: its results are redone after a restart otherwise
            if not self.committer.held_messages or not self.tracker.committable():
                break
            self._commit(asynchronous=False)
        self.quarantine.close()     # a clean stop leaves no suspects
        self._close_consumer()

    def _close_consumer(self) -> None:
        self.closing = True     # a revoke from here on commits what is done without waiting
        close_consumer(self.consumer, self.limits.close_timeout_s)

    def summary(self) -> dict[str, Any]:
        s = self.stats
        return {"taken": s.taken, "done": s.done, "errors": s.errors, "commits": s.commits,
                "rebalances": s.rebalances, "unfinished": len(self.inflight),
                "isolated": self.quarantine.isolated,
                "busy_s": round(s.last_done - s.first_take, 3) if s.first_take and s.last_done else None,
                "fatal": None if self.fatal is None else str(self.fatal)}


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
