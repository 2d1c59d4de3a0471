"""The poll loop: consume, take, dispatch, backpressure, commit, shutdown.

Only this thread touches the consumer, the offset tracker and the in-flight
table; the stages report back through the completion queue.
The commit order, on every path (timer, count, revoke, shutdown):

1. completions drained: an offset is done when every model's result (or its
   error result + dead letter) is durable;
2. per partition, the lowest offset not yet done (or the position, when
   nothing is pending) is committed -- never past an unwritten result.

The parts, each in its own module: intake and completions (``inflight_table.py``,
shared with backfill), when and what to commit (``commit_schedule.py``), how
(``commit.py``: plain offsets, or with exactly-once a Kafka transaction that writes
the held results below those offsets together with the offsets; step 1 then means
"result ready"), the rebalance callbacks (``rebalance.py``), pausing
(``backpressure.py``) and the crash quarantine (``quarantine.py``).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from sidepath.core.errors import FatalError
from sidepath.models.base import Model
from sidepath.sinks.base import SourceRef
from sidepath.worker.config import EngineConfig
from sidepath.worker.engine.backpressure import Backpressure
from sidepath.worker.engine.commit import CommitStrategy, PlainCommit
from sidepath.worker.engine.commit_schedule import CommitSchedule
from sidepath.worker.engine.consumer_close import bounded, close_consumer
from sidepath.worker.engine.handoff import CompletionQueue
from sidepath.worker.engine.inflight import Inflight
from sidepath.worker.engine.inflight_table import InflightTable
from sidepath.worker.engine.offsets import OffsetTracker
from sidepath.worker.engine.pacing import Pacer
from sidepath.worker.engine.quarantine import Quarantine
from sidepath.worker.engine.rebalance import Rebalance, StartAt
from sidepath.worker.engine.request import Parse, parse_request
from sidepath.worker.engine.stages import DecodeStage, Failures
from sidepath.worker.engine.until_end import EndOffsets
from sidepath.worker.ops.health import Health, PollSnapshot
from sidepath.worker.ops.metrics import Metrics

__all__ = ["Engine", "StartAt"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Stats:
    """The run's counts (for the summary and the tests); the poll loop's alone."""

    taken: int = 0
    done: int = 0
    errors: int = 0
    first_take: float | None = None
    last_done: float | None = None


class Engine:
    def __init__(self, consumer: Consumer, *, topic: str, group: str, models: Sequence[Model],
                 decode_stage: DecodeStage, failures: Failures, completions: CompletionQueue,
                 metrics: Metrics, limits: EngineConfig, start: StartAt = None, until_end: bool = False,
                 max_messages: int = 0, is_blocked: Callable[[], bool] = lambda: False,
                 health: Health | None = None,
                 parse: Parse = parse_request,
                 commit: CommitStrategy | None = None, pacer: Pacer | None = None) -> None:
        self.consumer, self.topic, self.group, self.models = consumer, topic, group, models
        self.decode_stage, self.failures, self.completions = decode_stage, failures, completions
        self.metrics, self.limits = metrics, limits
        self.until_end, self.max_messages, self.is_blocked = until_end, max_messages, is_blocked
        self.health = health
        self.committer: CommitStrategy = commit if commit is not None else PlainCommit(consumer)
        self.pacer = pacer if pacer is not None and pacer.active else None   # budgets, run windows, yielding
        self.tracker = OffsetTracker()
        self.table = InflightTable(completions, failures, parse=parse, on_result=self.committer.result_in)
        self.inflight: dict[SourceRef, Inflight] = self.table.inflight   # a SourceRef is (topic, partition, offset)
        self.flow = Backpressure(limits, metrics, is_blocked=is_blocked, pacer=self.pacer)
        self.stop_event = threading.Event()
        self.fatal: BaseException | None = None
        self.ends = EndOffsets()        # until_end: where each partition stops
        self.last_poll = time.time()
        self.stats = _Stats()
        # crash quarantine (worker/engine/quarantine.py); not with exactly-once, whose offsets move only in transactions
        self.quarantine = Quarantine(self, max_crashes=limits.max_crashes if self.committer.allows_quarantine else 0)
        self.commits = CommitSchedule(consumer, self.tracker, self.committer, limits=limits, metrics=metrics,
                                      ends=self.ends if until_end else None, metadata=self.quarantine.metadata,
                                      on_fatal=self.report_fatal)
        self.rebalance = Rebalance(self, start=start, ends=self.ends if until_end else None)
        self.publish()          # liveness counts from here until the first poll

    # ---- called from other threads -------------------------------------------------
    def request_stop(self) -> None:
        self.stop_event.set()

    def report_fatal(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        self.stop_event.set()

    def add_bytes(self, inf: Inflight, n: int) -> None:
        """Decode threads: media bytes now held for ``inf``."""
        self.table.add_bytes(inf, n)

    # ---- state the other parts read (poll loop) ------------------------------------
    @property
    def paused(self) -> bool:
        """The partitions are paused (backpressure or pacing)."""
        return self.flow.paused

    @property
    def inflight_bytes(self) -> int:
        return self.table.nbytes

    @property
    def assigned_once(self) -> bool:
        return self.rebalance.assigned_once

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's commit callback (async commits)."""
        self.commits.on_commit(err, partitions)

    # ---- the loop --------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        r = self.rebalance
        self.consumer.subscribe([self.topic], on_assign=r.on_assign, on_revoke=r.on_revoke, on_lost=r.on_lost)
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

    def publish(self) -> None:
        """What the HTTP checks read (worker/ops/health.py): never the tracker itself, from their thread."""
        if self.health is not None:
            self.health.publish(PollSnapshot(self.last_poll, tuple(self.tracker.partitions())))

    def _poll_once(self) -> None:
        self.last_poll = time.time()
        self.metrics.last_poll.set(self.last_poll)
        self.publish()
        self.quarantine.retry_parked()        # parked by a refused commit: retried even at the in-flight cap
        if self.flow.over and not self.flow.paused:
            # at a cap: wait for completions rather than take more; pausing (which makes librdkafka
            # drop its prefetched messages and refetch later) only when this lasts -- see worker/engine/backpressure.py
            self.drain_completions(timeout_s=0.05)
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
            self.drain_completions(timeout_s=0.0 if msgs else 0.02)
        self._backpressure()
        if self.commits.due():
            self.commits.commit(asynchronous=True)
        if self.health is not None:
            self.health.tick(self)

    def _take(self, msgs: list[Any]) -> list[Inflight]:
        """Track the messages of one consume() call; returns those ready to decode (a message that is
        not a request is dead-lettered).  Runs once per message on the critical path: attributes are
        looked up once per call.  ``msgs``: confluent_kafka ``Message``s without an error; typed ``Any``
        because the stubs make ``topic()`` and ``offset()`` optional (error events share the class),
        and narrowing them here would cost on every message."""
        records: list[Inflight] = []
        tracker, n_models = self.tracker, len(self.models)
        until_end, end_offsets = self.until_end, self.ends.end
        t0 = time.monotonic()           # one clock reading per call: they were fetched together
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
            epoch = tracker.add(key, offset)
            ts_type, ts = m.timestamp()
            value = m.value()
            headers = m.headers()
            records.append(Inflight(SourceRef(topic, partition, offset), epoch, m.key(), value,
                                    tuple(headers) if headers else (), ts if ts_type else None, None, n_models,
                                    len(value) if value else 0, 0, t0))
        if not records:
            return []
        self.stats.taken += len(records)
        if self.stats.first_take is None:
            self.stats.first_take = t0
        return self.table.admit(records)

    def drain_completions(self, timeout_s: float) -> None:
        """Apply every completion queued now (the sink writer sends one list per write); the offsets of
        the messages they finish are done."""
        finished = self.table.drain(timeout_s)
        if not finished:
            return
        now = time.monotonic()
        tracker, message_done = self.tracker, self.committer.message_done
        latencies: list[float] = []         # one histogram update per drain
        errors = 0
        for inf in finished:
            src = inf.source
            tp = (src.topic, src.partition)
            if tracker.done(tp, src.offset, inf.epoch):
                message_done(tp, src.offset, inf)
            latencies.append(now - inf.t0)
            errors += inf.failed
        self.metrics.end_to_end_seconds.observe_many(latencies)
        self.stats.last_done = now
        self.stats.done += len(latencies)
        self.stats.errors += errors
        self.commits.finished(len(latencies))
        if len(latencies) > errors:
            self.metrics.messages.labels("ok").inc(len(latencies) - errors)
        if errors:
            self.metrics.messages.labels("error").inc(errors)

    def _release(self, inf: Inflight) -> None:
        """``inf`` left the in-flight table (the crash quarantine drops parked messages)."""
        self.table.release(inf)

    def _backpressure(self) -> None:
        n = len(self.inflight) + self.committer.held_messages   # finished, but held until their transaction
        limit_reached = bool(self.max_messages and self.stats.taken >= self.max_messages)
        self.flow.update(self.consumer, n, self.inflight_bytes, limit_reached)

    def _finished(self) -> bool:
        if self.max_messages and self.stats.taken >= self.max_messages and not self.inflight:
            return True
        if not self.until_end or not self.rebalance.assigned_once or self.inflight or self.quarantine.busy:
            return False
        keys = self.tracker.partitions()
        return self.ends.reached(keys, self.commits.positions(keys))

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
            self.drain_completions(timeout_s=0.05)
            self.metrics.last_poll.set(time.time())
        if self.inflight:
            log.warning("stopping with %d unfinished messages (not committed; redone after restart)",
                        len(self.inflight))
        bounded(self._final_commits, self.limits.close_timeout_s / 2, "the final commit")
        self._close_consumer()

    def _final_commits(self) -> None:
        self.commits.commit(asynchronous=False)
        for _ in range(3):      # an aborted last transaction: its results are redone after a restart otherwise
            if not self.committer.held_messages or not self.tracker.committable():
                break
            self.commits.commit(asynchronous=False)
        self.quarantine.close()     # a clean stop leaves no suspects

    def _close_consumer(self) -> None:
        self.rebalance.closing = True     # a revoke from here on commits what is done without waiting
        close_consumer(self.consumer, self.limits.close_timeout_s)

    def summary(self) -> dict[str, Any]:
        s = self.stats
        return {"taken": s.taken, "done": s.done, "errors": s.errors, "commits": self.commits.commits,
                "rebalances": self.rebalance.count, "unfinished": len(self.inflight),
                "isolated": self.quarantine.isolated,
                "busy_s": round(s.last_done - s.first_take, 3) if s.first_take and s.last_done else None,
                "fatal": None if self.fatal is None else str(self.fatal)}
